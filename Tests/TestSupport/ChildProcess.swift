import Foundation

/// A program the test started: the real mosquitto, coap-client-openssl, the simulator or the
/// bridge binary. Output (stdout and stderr, merged) is collected line by line; tests wait for a
/// line with a deadline instead of sleeping. The process is killed when the object goes away.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `lock`.
    public let name: String
    private let process = Process()
    private let lock = NSLock()
    private var collected: [String] = []
    private var partial = Data()
    private var rawText = ""
    private var textWaiters:
        [(id: Int, predicate: (String) -> Bool, continuation: CheckedContinuation<Void, any Error>)] = []
    private var waiters:
        [(id: Int, predicate: (String) -> Bool, continuation: CheckedContinuation<String, any Error>)] = []
    private var nextWaiter = 0
    private var exitWaiters: [CheckedContinuation<Int32, Never>] = []
    private var exitStatus: Int32?
    private var outputEnded = false
    private var outputEndWaiters: [CheckedContinuation<Void, Never>] = []

    private var input: FileHandle?

    /// Starts `executable` (a path, or a name looked up on PATH) with `arguments`.
    /// - Parameter interactive: give the program a pipe on standard input (see `send(_:)`);
    ///   otherwise it reads /dev/null.
    public init(
        _ executable: String, _ arguments: [String] = [], environment: [String: String] = [:],
        name: String? = nil, interactive: Bool = false
    ) throws {
        self.name = name ?? (executable as NSString).lastPathComponent
        process.executableURL = URL(fileURLWithPath: try Self.locate(executable))
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        // The test process's own bus switch (InProcessSystemBus) is for its in-process avahi
        // clients: a child given no bus talks to this machine's system bus, not to whichever lab
        // host the switch points at this instant.
        if env["DBUS_SYSTEM_BUS_ADDRESS"] == InProcessSystemBus.address { env["DBUS_SYSTEM_BUS_ADDRESS"] = nil }
        env.merge(environment) { _, new in new }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        if interactive {
            let stdin = Pipe()
            process.standardInput = stdin
            input = stdin.fileHandleForWriting
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        process.terminationHandler = { [weak self] process in
            Survivors.shared.remove(process.processIdentifier)
            self?.exited(process.terminationStatus)
        }
        try Self.runWithSignalsUnblocked(process)
        Survivors.shared.add(process.processIdentifier)
        if !process.isRunning { Survivors.shared.remove(process.processIdentifier) }  // exited already
        startReading(pipe.fileHandleForReading)
    }

    /// Every child still running, killed when the test process exits: a test that fails before
    /// its clean-up, or an object kept alive to the end, must not leave a broker or a
    /// mosquitto_sub behind on the machine.
    private final class Survivors: @unchecked Sendable {
        // @unchecked: `running` is guarded by `lock`.
        static let shared: Survivors = {
            let survivors = Survivors()
            atexit { Survivors.shared.killAll() }
            return survivors
        }()
        private let lock = NSLock()
        private var running: Set<pid_t> = []

        func add(_ pid: pid_t) { lock.withLock { _ = running.insert(pid) } }
        func remove(_ pid: pid_t) { lock.withLock { _ = running.remove(pid) } }
        func killAll() {
            for pid in lock.withLock({ running }) { kill(pid, SIGKILL) }
        }
    }

    /// Reads the output with blocking reads on a thread of its own until end of file. Not with
    /// `readabilityHandler`: tearing down many dispatch read sources concurrently corrupts
    /// libdispatch's epoll bookkeeping on Linux and crashes the test process in
    /// `_dispatch_event_loop_drain` (swift-corelibs-libdispatch#949, swift-corelibs-foundation#3276).
    private func startReading(_ reader: FileHandle) {
        Thread { [weak self] in
            let descriptor = reader.fileDescriptor  // `reader` stays alive (and open) until the loop ends
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = read(descriptor, &buffer, buffer.count)
                if count > 0 {
                    self?.append(Data(buffer[0..<count]))
                } else if count < 0, errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            self?.finishOutput()
        }.start()
    }

    /// Starts `process` from a fresh thread with an empty signal mask. A child inherits the mask
    /// of the spawning thread, and the threads Swift concurrency runs on block SIGTERM, SIGINT,
    /// SIGHUP and SIGUSR1/2: a program started from them would ignore `stop()` and SIGUSR1.
    /// Spawning is serialised: a pipe made for one child must not leak into another child spawned
    /// in the same instant (its output would then only end when that other child exits).
    private static let spawning = NSLock()

    private static func runWithSignalsUnblocked(_ process: Process) throws {
        spawning.lock()
        defer { spawning.unlock() }
        final class Outcome: @unchecked Sendable {
            // @unchecked: written by the spawning thread before `done` is signalled, read after.
            var error: (any Error)?
            let done = DispatchSemaphore(value: 0)
        }
        let outcome = Outcome()
        Thread {
            var none = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, nil)
            do { try process.run() } catch { outcome.error = error }
            outcome.done.signal()
        }.start()
        outcome.done.wait()
        if let error = outcome.error { throw error }
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Every line printed so far.
    public var output: [String] {
        lock.withLock { collected }
    }

    /// Everything printed so far, including a last line without its newline yet.
    public var outputText: String {
        lock.withLock {
            let partialText = String(decoding: partial, as: UTF8.self)
            return (collected + (partialText.isEmpty ? [] : [partialText])).joined(separator: "\n")
        }
    }

    /// The number of lines printed so far; pass it as `after:` to wait only for newer lines.
    public var lineCount: Int { lock.withLock { collected.count } }

    /// Waits until a line (already printed or yet to come) satisfies `predicate`.
    @discardableResult
    public func waitForLine(
        within limit: Duration = .seconds(10), _ what: String? = nil, after: Int = 0,
        where predicate: @escaping @Sendable (String) -> Bool
    ) async throws -> String {
        let id: Int = lock.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        let description = what ?? "a matching line"
        return try await withDeadline(limit, "\(description) from \(self.name); output so far:\n\(self.outputText)") {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    self.register(id: id, after: after, predicate: predicate, continuation: continuation)
                }
            } onCancel: {
                self.cancelWaiter(id)
            }
        }
    }

    /// Waits until everything printed so far, including an unfinished last line, contains `text`
    /// (for programs such as coap-client that print payloads without newlines).
    public func waitForOutput(containing text: String, within limit: Duration = .seconds(10)) async throws {
        let id: Int = lock.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        try await withDeadline(limit, "'\(text)' from \(self.name); output so far:\n\(self.outputText)") {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    self.lock.withLock {
                        if self.rawText.contains(text) {
                            continuation.resume()
                        } else {
                            self.textWaiters.append((id, { $0.contains(text) }, continuation))
                        }
                    }
                }
            } onCancel: {
                self.cancelWaiter(id)
            }
        }
    }

    @discardableResult
    public func waitForLine(containing text: String, within limit: Duration = .seconds(10)) async throws -> String {
        try await waitForLine(within: limit, "a line containing '\(text)'") { $0.contains(text) }
    }

    /// Writes one line to the program's standard input (interactive children only).
    public func send(_ line: String) {
        // A child that already exited must not take the test down (EPIPE, not SIGPIPE).
        _ = Self.ignoreBrokenPipes
        try? lock.withLock { input }?.write(contentsOf: Data((line + "\n").utf8))
    }

    public func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits for the process to exit and returns its status (the signal number if it was killed).
    public func waitForExit(within limit: Duration = .seconds(10)) async throws -> Int32 {
        try await withDeadline(limit, "exit of \(self.name)") {
            await withCheckedContinuation { continuation in
                self.lock.withLock {
                    if let status = self.exitStatus {
                        continuation.resume(returning: status)
                    } else {
                        self.exitWaiters.append(continuation)
                    }
                }
            }
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    public func stop(grace: Duration = .seconds(5)) async {
        signal(SIGTERM)
        if (try? await waitForExit(within: grace)) == nil {
            signal(SIGKILL)
            _ = try? await waitForExit(within: .seconds(5))
        }
    }

    // MARK: Internals

    private func register(
        id: Int, after: Int, predicate: @escaping (String) -> Bool, continuation: CheckedContinuation<String, any Error>
    ) {
        lock.withLock {
            if let line = collected.dropFirst(after).first(where: predicate) {
                continuation.resume(returning: line)
            } else {
                waiters.append((id, predicate, continuation))
            }
        }
    }

    private func cancelWaiter(_ id: Int) {
        lock.withLock {
            if let index = waiters.firstIndex(where: { $0.id == id }) {
                waiters.remove(at: index).continuation.resume(throwing: CancellationError())
            }
            if let index = textWaiters.firstIndex(where: { $0.id == id }) {
                textWaiters.remove(at: index).continuation.resume(throwing: CancellationError())
            }
        }
    }

    private func append(_ data: Data) {
        lock.withLock {
            rawText += String(decoding: data, as: UTF8.self)
            textWaiters.removeAll { waiter in
                guard waiter.predicate(rawText) else { return false }
                waiter.continuation.resume()
                return true
            }
            partial.append(data)
            while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: partial[partial.startIndex..<newline], as: UTF8.self)
                partial.removeSubrange(partial.startIndex...newline)
                deliver(line)
            }
        }
    }

    private func finishOutput() {
        let waiters: [CheckedContinuation<Void, Never>] = lock.withLock {
            if !partial.isEmpty {
                deliver(String(decoding: partial, as: UTF8.self))
                partial.removeAll()
            }
            outputEnded = true
            defer { outputEndWaiters.removeAll() }
            return outputEndWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until the program's output pipe is closed (everything it printed has been read).
    public func waitForOutputEnd(within limit: Duration = .seconds(5)) async throws {
        try await withDeadline(limit, "the end of \(self.name)'s output") {
            await withCheckedContinuation { continuation in
                let done: Bool = self.lock.withLock {
                    if self.outputEnded { return true }
                    self.outputEndWaiters.append(continuation)
                    return false
                }
                if done { continuation.resume() }
            }
        }
    }

    /// Called with the lock held.
    private func deliver(_ line: String) {
        collected.append(line)
        var remaining: [(id: Int, predicate: (String) -> Bool, continuation: CheckedContinuation<String, any Error>)] =
            []
        for waiter in waiters {
            if waiter.predicate(line) {
                waiter.continuation.resume(returning: line)
            } else {
                remaining.append(waiter)
            }
        }
        waiters = remaining
    }

    private func exited(_ status: Int32) {
        lock.withLock {
            exitStatus = status
            for waiter in exitWaiters { waiter.resume(returning: status) }
            exitWaiters.removeAll()
        }
    }

    private static let ignoreBrokenPipes: Void = { _ = Glibc.signal(SIGPIPE, SIG_IGN) }()

    public static func locate(_ executable: String) throws -> String {
        if executable.contains("/") { return executable }
        if let built = BuildProducts.path(of: executable) { return built }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(executable)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw ChildProcessError.notFound(executable)
    }
}

public enum ChildProcessError: Error, CustomStringConvertible {
    case notFound(String)
    case failed(command: String, status: Int32, output: String)

    public var description: String {
        switch self {
        case .notFound(let name): "executable '\(name)' not found (built products or PATH)"
        case .failed(let command, let status, let output): "'\(command)' exited with \(status):\n\(output)"
        }
    }
}

/// The binaries this package builds, found next to the test bundle.
public enum BuildProducts {
    public static var directory: String {
        // The test bundle runs from .build/<triple>/<configuration>/; products live there too.
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return (executable as NSString).deletingLastPathComponent
    }

    public static func path(of product: String) -> String? {
        let candidate = "\(directory)/\(product)"
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }
}

/// Runs a command to completion and returns its merged output; throws if it does not exit in
/// time, or (with `check`) if it exits non-zero.
@discardableResult
public func runCommand(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:],
    within limit: Duration = .seconds(30), check: Bool = true
) async throws -> (status: Int32, output: String) {
    let child = try ChildProcess(executable, arguments, environment: environment)
    let status: Int32
    do {
        status = try await child.waitForExit(within: limit)
    } catch {
        // Say whether it is still at work, or exited without us hearing of it (a zombie).
        let state =
            (try? String(contentsOfFile: "/proc/\(child.pid)/stat", encoding: .utf8))?
            .split(separator: ")").last?.split(separator: " ").first.map(String.init) ?? "gone"
        child.signal(SIGKILL)
        throw ChildProcessError.failed(
            command: ([executable] + arguments).joined(separator: " "), status: -1,
            output: "no exit within \(limit) (process state \(state)); output so far:\n\(child.outputText)")
    }
    // The pipe can deliver its last bytes just after the exit notification.
    try? await child.waitForOutputEnd()
    let output = child.outputText
    if check, status != 0 {
        throw ChildProcessError.failed(
            command: ([executable] + arguments).joined(separator: " "), status: status, output: output)
    }
    return (status, output)
}

/// A TCP or UDP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
public func freePort(udp: Bool = false) -> UInt16 {
    let fd = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return UInt16(bigEndian: address.sin_port)
}
