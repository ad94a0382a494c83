import Foundation

/// A real mosquitto broker for tests: `/usr/sbin/mosquitto -c <generated config>` listening on a
/// free port of 127.0.0.1, with its own temporary directory for the configuration, the password
/// and ACL files and the persistence database. The directory is removed and the broker killed when
/// the object goes away.
///
/// `stop()` and `start()` restart it on the same port (for reconnect tests); `kill()` ends it
/// without its shutdown sequence. The broker logs everything (`log_type all`) to the captured
/// output, so tests can wait for what it did with `waitForLog`.
///
///     let broker = try await MosquittoBroker(.init(allowAnonymous: false, users: ["alice": "secret"]))
///     let watcher = try await broker.subscriber(["-t", "bridge/#", "-v"])
///     try await broker.publish(["-t", "bridge/state", "-m", "online"])
public final class MosquittoBroker: @unchecked Sendable {
    // @unchecked: `process` is guarded by `lock`; everything else is immutable.

    public struct Options: Sendable {
        /// Clients without user name may connect (mosquitto 2.0 refuses them by default).
        public var allowAnonymous: Bool
        /// User name → password, written to a password file with `mosquitto_passwd -b`.
        public var users: [String: String]
        /// Contents of an ACL file (`acl_file`); nil for none (everything allowed).
        public var acl: String?
        /// Keep retained messages and sessions across restarts (`persistence true`).
        public var persistence: Bool
        /// Raw configuration lines appended at the end (plugins, extra listeners, …). `{dir}` is
        /// replaced by the broker's directory.
        public var extraConfiguration: String
        /// Files written into the broker's directory before it starts, by name (a dynamic-security
        /// JSON file, TLS certificates, …); refer to them as `{dir}/<name>` in `extraConfiguration`.
        public var files: [String: String]

        public init(
            allowAnonymous: Bool = true, users: [String: String] = [:], acl: String? = nil, persistence: Bool = false,
            extraConfiguration: String = "", files: [String: String] = [:]
        ) {
            self.allowAnonymous = allowAnonymous
            self.users = users
            self.acl = acl
            self.persistence = persistence
            self.extraConfiguration = extraConfiguration
            self.files = files
        }

        /// Loads mosquitto's dynamic-security plugin with `configuration` as its JSON file
        /// (`{dir}/dynamic-security.json`, which the plugin rewrites when changed over MQTT).
        public mutating func useDynamicSecurity(_ configuration: String) {
            files["dynamic-security.json"] = configuration
            extraConfiguration += """

                plugin \(MosquittoBroker.dynamicSecurityPlugin)
                plugin_opt_config_file {dir}/dynamic-security.json

                """
        }
    }

    public static let executable = "/usr/sbin/mosquitto"
    public static let dynamicSecurityPlugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
    public let host = "127.0.0.1"
    public let port: UInt16
    public let options: Options
    /// The broker's private directory (configuration, password file, ACL, persistence).
    public let directory: URL
    public var configurationFile: URL { directory.appendingPathComponent("mosquitto.conf") }

    private let lock = NSLock()
    private var process: ChildProcess?

    /// Writes the configuration, starts the broker and returns once it accepts connections.
    public init(_ options: Options = Options()) async throws {
        self.options = options
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mosquitto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        do {
            try await Self.writeFiles(options, in: directory)
            // A port that was free a moment ago can be taken before mosquitto binds it (another
            // test's connection, say): then pick another.
            var attempt = 0
            while true {
                attempt += 1
                let candidate = freePort()
                try Self.configuration(options, port: candidate, directory: directory)
                    .write(to: directory.appendingPathComponent("mosquitto.conf"), atomically: true, encoding: .utf8)
                do {
                    let process = try await Self.launch(directory.appendingPathComponent("mosquitto.conf"))
                    self.port = candidate
                    self.process = process
                    return
                } catch BrokerError.addressInUse where attempt < 5 {
                    continue
                }
            }
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    deinit {
        // ChildProcess kills the broker when released.
        lock.withLock { process = nil }
        try? FileManager.default.removeItem(at: directory)
    }

    /// "mqtt://127.0.0.1:<port>"
    public var url: String { "mqtt://\(host):\(port)" }

    public var isRunning: Bool { lock.withLock { process?.isRunning ?? false } }

    /// Starts the broker again on the same port, after `stop()` or `kill()`.
    public func start() async throws {
        guard !isRunning else { return }
        let process = try await Self.launch(configurationFile)
        lock.withLock { self.process = process }
    }

    /// Stops the broker the way an administrator would (SIGTERM): clients see their connection
    /// closed; with persistence, the database is saved. Returns once it has exited.
    public func stop() async {
        guard let process = lock.withLock({ self.process }) else { return }
        await process.stop()
    }

    /// Kills the broker with SIGKILL (no shutdown sequence). Returns once it has exited.
    public func kill() async {
        guard let process = lock.withLock({ self.process }) else { return }
        process.signal(SIGKILL)
        _ = try? await process.waitForExit()
    }

    /// Sends `signal` to the broker process (SIGSTOP freezes it: connections stay open and
    /// nothing is answered, as with a broker on a host that hangs; SIGCONT resumes it).
    public func signal(_ signal: Int32) {
        lock.withLock { process }?.signal(signal)
    }

    /// The current broker process's log so far.
    public var log: [String] { lock.withLock { process?.output ?? [] } }

    /// Waits until the current broker process logged a line containing `text` (from its line
    /// `after` on).
    @discardableResult
    public func waitForLog(
        containing text: String, after: Int = 0, within limit: Duration = .seconds(10)
    ) async throws -> String {
        guard let process = lock.withLock({ self.process }) else { throw BrokerError.notRunning }
        return try await process.waitForLine(within: limit, "a line containing '\(text)'", after: after) {
            $0.contains(text)
        }
    }

    // MARK: The mosquitto command-line clients

    /// `-h 127.0.0.1 -p <port>`, for mosquitto_pub and mosquitto_sub.
    public var clientArguments: [String] { ["-h", host, "-p", String(port)] }

    /// Runs `mosquitto_pub` against this broker to completion (throws if it fails).
    public func publish(_ arguments: [String], within limit: Duration = .seconds(10)) async throws {
        try await runCommand("mosquitto_pub", clientArguments + arguments, within: limit)
    }

    /// Starts `mosquitto_sub` against this broker and returns once the broker has acknowledged
    /// the subscription (it logs its SUBACK), so nothing published afterwards is missed. With `-v`
    /// each message arrives as a line "<topic> <payload>". A client id (`-i`) is added unless
    /// `arguments` has one.
    public func subscriber(_ arguments: [String], within limit: Duration = .seconds(10)) async throws -> ChildProcess {
        var arguments = arguments
        let clientID: String
        if let index = arguments.firstIndex(where: { $0 == "-i" || $0 == "--id" }), index + 1 < arguments.count {
            clientID = arguments[index + 1]
        } else {
            clientID = "sub-\(UUID().uuidString.prefix(8))"
            arguments += ["-i", clientID]
        }
        let child = try ChildProcess("mosquitto_sub", clientArguments + arguments, name: "mosquitto_sub")
        // mosquitto_sub flushes its output per message but not its debug lines (-d), so the broker's
        // log is the reliable sign that the subscription is in place.
        try await waitForLog(containing: "Sending SUBACK to \(clientID)", within: limit)
        return child
    }

    // MARK: Internals

    enum BrokerError: Error, CustomStringConvertible {
        case addressInUse
        case failedToStart(String)
        case notRunning

        var description: String {
            switch self {
            case .addressInUse: "mosquitto: address already in use"
            case .failedToStart(let output): "mosquitto did not start:\n\(output)"
            case .notRunning: "mosquitto is not running"
            }
        }
    }

    private static func writeFiles(_ options: Options, in directory: URL) async throws {
        if !options.users.isEmpty {
            let file = directory.appendingPathComponent("passwords").path
            var create = true
            for (user, password) in options.users.sorted(by: { $0.key < $1.key }) {
                try await runCommand("mosquitto_passwd", (create ? ["-c"] : []) + ["-b", file, user, password])
                create = false
            }
        }
        for (name, contents) in options.files {
            try contents.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        if let acl = options.acl {
            try acl.write(to: directory.appendingPathComponent("acl"), atomically: true, encoding: .utf8)
        }
        if options.persistence {
            try FileManager.default.createDirectory(
                at: directory.appendingPathComponent("data"), withIntermediateDirectories: true)
        }
    }

    private static func configuration(_ options: Options, port: UInt16, directory: URL) -> String {
        var lines = [
            "# Generated by MosquittoBroker (TestSupport)",
            "listener \(port) 127.0.0.1",
            "allow_anonymous \(options.allowAnonymous)",
            "log_dest stderr",
            "log_type all",
            "connection_messages true",
        ]
        // As root, mosquitto would switch to the 'mosquitto' user, which cannot read our files.
        if getuid() == 0 { lines.insert("user root", at: 1) }
        if !options.users.isEmpty {
            lines.append("password_file \(directory.appendingPathComponent("passwords").path)")
        }
        if options.acl != nil { lines.append("acl_file \(directory.appendingPathComponent("acl").path)") }
        if options.persistence {
            lines.append("persistence true")
            lines.append("persistence_location \(directory.appendingPathComponent("data").path)/")
        } else {
            lines.append("persistence false")
        }
        if !options.extraConfiguration.isEmpty {
            lines.append(options.extraConfiguration.replacingOccurrences(of: "{dir}", with: directory.path))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Starts a program from a fresh thread with no blocked signals.
    ///
    /// A child inherits the signal mask of the thread that spawns it, and the threads Swift
    /// concurrency runs on (libdispatch workers) block SIGHUP, SIGINT, SIGTERM, SIGUSR1 and
    /// SIGUSR2. Mosquitto started from one of them never sees SIGTERM (so it cannot be stopped
    /// gracefully) nor SIGHUP (so it cannot reload).
    static func spawnWithSignalsUnblocked(
        _ executable: String, _ arguments: [String], name: String
    ) async throws -> ChildProcess {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                var none = sigset_t()
                sigemptyset(&none)
                pthread_sigmask(SIG_SETMASK, &none, nil)
                continuation.resume(with: Result { try ChildProcess(executable, arguments, name: name) })
            }.start()
        }
    }

    /// Starts mosquitto and waits for its "running" line (logged once the listener is open).
    private static func launch(_ configurationFile: URL) async throws -> ChildProcess {
        let process = try await spawnWithSignalsUnblocked(
            executable, ["-c", configurationFile.path], name: "mosquitto")
        let line = try await process.waitForLine(within: .seconds(10), "mosquitto start-up") { line in
            (line.contains("mosquitto version") && line.contains("running")) || line.contains("Error")
        }
        guard line.contains("Error") else { return process }
        // Let the rest of the error reach the output before reporting it.
        _ = try? await process.waitForExit(within: .seconds(2))
        if process.outputText.contains("Address already in use") { throw BrokerError.addressInUse }
        throw BrokerError.failedToStart(process.outputText)
    }
}
