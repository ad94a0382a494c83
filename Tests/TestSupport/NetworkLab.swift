import CTestSupport
import Foundation

/// A throwaway LAN for tests that need real multicast (mDNS discovery of the gateway and the
/// broker, pairing): a few named hosts, each a Linux network namespace with its own D-Bus system
/// bus and avahi-daemon, all on one Ethernet segment. Nothing runs in, or touches the network
/// of, the machine's own namespace.
///
/// Topology (one lab):
///
///     netns tradfri-lab-<id>            bridge br0 (multicast snooping off), ports p0, p1, ...
///     netns tradfri-lab-<id>-<host>     lo up; eth0 (veth to p<i>) with 10.77.0.<10+i>/24
///
/// Each host also has a private `/run`: every process started in a host runs in its own mount
/// namespace (`unshare --mount`) with the host's directory `<lab dir>/<host>/run` bind-mounted
/// over `/run`. So dbus-daemon listens on `/run/dbus/system_bus_socket` and avahi-daemon keeps
/// its pid file and socket in `/run/avahi-daemon`, as on a normal machine, yet each host has its
/// own. From outside, a host's bus is the real path `systemBusSocket`, which is how the test
/// process connects to it (see `Host.withSystemBus` and `InProcessSystemBus`).
///
/// avahi-daemon uses Debian's stock configuration plus `host-name=<host name>`, so host
/// `gateway` answers as `gateway.local`. Labs are isolated from each other, so the same host
/// names and addresses can be used by labs running in parallel.
///
/// Cleanup: `shutdown()` (also run by `deinit` and by `NetworkLab.with`) kills every process in
/// the lab's namespaces and deletes them, which also deletes the veths and the bridge. Labs
/// left behind by a process that crashed are removed when the next lab starts.
///
/// Usage:
///
///     @Test(.enabled(if: NetworkLab.availability.isAvailable)) func finds() async throws {
///         try await NetworkLab.with(hosts: ["gateway", "bridge"]) { lab in
///             let publisher = try lab["gateway"].spawn("avahi-publish", ["-s", "gw-1", "_coap._udp", "5684"])
///             try await publisher.waitForLine(containing: "Established")
///             let client = try lab["bridge"].withSystemBus { try MDNSClient() }
///             ...
///         }
///     }
public final class NetworkLab: @unchecked Sendable {
    // @unchecked: the only mutable state (`isShutDown`) is guarded by `lock`.

    /// Where labs keep their per-host directories (not under /run: the hosts' /run is replaced).
    public static let baseDirectory = "/tmp/tradfri-lab"
    static let namespacePrefix = "tradfri-lab-"

    /// Whether labs can run here, and if not, why (for a test trait's comment).
    public struct Availability: Sendable {
        public let isAvailable: Bool
        public let reason: String
    }

    /// Checked once per process: root, the tools, and creating a network namespace and a mount
    /// namespace inside it.
    public static let availability: Availability = {
        _ = InProcessSystemBus.installed
        return probe()
    }()

    public let id: String
    public let hosts: [Host]
    public let directory: String
    /// The namespace holding the bridge.
    public let hubNamespace: String
    private let lock = NSLock()
    private var isShutDown = false

    /// The host called `name`; traps if there is none (a typo in a test).
    public subscript(_ name: String) -> Host {
        guard let host = hosts.first(where: { $0.name == name }) else {
            preconditionFailure("no host '\(name)' in the lab (hosts: \(hosts.map(\.name)))")
        }
        return host
    }

    /// Builds a lab, runs `body`, and shuts the lab down whether `body` succeeds or throws.
    public static func with<T>(
        hosts: [String], subnet: String = "10.77.0", avahi: Bool = true,
        _ body: (NetworkLab) async throws -> T
    ) async throws -> T {
        let lab = try await start(hosts: hosts, subnet: subnet, avahi: avahi)
        defer { lab.shutdown() }
        return try await body(lab)
    }

    /// Builds a lab with one host per name (lower-case letters, digits and '-'), addresses
    /// `<subnet>.10`, `<subnet>.11`, ... in host order, a system bus on every host, and
    /// avahi-daemon on every host if `avahi` (ready, i.e. its host name established, on return).
    /// - Throws: if the lab cannot run here (see `availability`) or any step fails; whatever was
    ///   created by then is removed.
    public static func start(
        hosts names: [String], subnet: String = "10.77.0", avahi: Bool = true
    ) async throws
        -> NetworkLab
    {
        guard availability.isAvailable else { throw LabError.unavailable(availability.reason) }
        precondition(!names.isEmpty && Set(names).count == names.count, "host names must be unique")
        for name in names {
            precondition(
                name.count <= 30 && name.first?.isLetter == true
                    && name.allSatisfy { ($0.isLetter && $0.isLowercase) || $0.isNumber || $0 == "-" },
                "host name '\(name)' must be lower-case letters, digits and '-'")
        }
        _ = removeStaleLabs
        let lab = try NetworkLab(names: names, subnet: subnet)
        do {
            try await lab.build()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for host in lab.hosts {
                    group.addTask { try await host.startSystemBus() }
                }
                try await group.waitForAll()
            }
            if avahi {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for host in lab.hosts {
                        group.addTask { try await host.startAvahi() }
                    }
                    try await group.waitForAll()
                }
            }
        } catch {
            lab.shutdown()
            throw error
        }
        return lab
    }

    private init(names: [String], subnet: String) throws {
        let id = String(format: "%08x", UInt32.random(in: 0...UInt32.max))
        self.id = id
        directory = "\(Self.baseDirectory)/\(id)"
        hubNamespace = "\(Self.namespacePrefix)\(id)"
        hosts = names.enumerated().map { index, name in
            Host(
                name: name, index: index, namespace: "\(Self.namespacePrefix)\(id)-\(name)",
                directory: "\(Self.baseDirectory)/\(id)/\(name)", address: "\(subnet).\(10 + index)")
        }
        // The owner file comes first: a namespace of this lab without it would look stale.
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.processIdentity(getpid()).write(toFile: "\(directory)/owner", atomically: true, encoding: .utf8)
    }

    deinit {
        shutdown()
    }

    private func build() async throws {
        try await ip(["netns", "add", hubNamespace])
        try await ip(["-n", hubNamespace, "link", "set", "lo", "up"])
        try await ip(["-n", hubNamespace, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"])
        try await ip(["-n", hubNamespace, "link", "set", "br0", "up"])
        for host in hosts {
            let port = "p\(host.index)"
            try await ip(["netns", "add", host.namespace])
            try await ip(["-n", host.namespace, "link", "set", "lo", "up"])
            // Created directly inside the two namespaces; the names never exist in the main one.
            try await ip([
                "link", "add", Host.interface, "netns", host.namespace, "type", "veth",
                "peer", "name", port, "netns", hubNamespace,
            ])
            try await ip(["-n", hubNamespace, "link", "set", port, "master", "br0"])
            try await ip(["-n", hubNamespace, "link", "set", port, "up"])
            try await ip([
                "-n", host.namespace, "addr", "add", "\(host.address)/\(Host.prefixLength)", "dev", Host.interface,
            ])
            try await ip(["-n", host.namespace, "link", "set", Host.interface, "up"])
            try host.writeConfiguration()
        }
    }

    /// Kills every process in the lab's namespaces, deletes the namespaces (and with them the
    /// veths and the bridge) and the lab's directory. Idempotent; synchronous, so it can run in
    /// `defer` and `deinit`.
    public func shutdown() {
        let first = lock.withLock {
            defer { isShutDown = true }
            return !isShutDown
        }
        guard first else { return }
        for host in hosts { host.forgetProcesses() }
        Self.deleteNamespaces(hosts.map(\.namespace) + [hubNamespace])
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: Errors

    public enum LabError: Error, CustomStringConvertible {
        case unavailable(String)
        case commandFailed(String)

        public var description: String {
            switch self {
            case .unavailable(let reason): "the network lab cannot run here: \(reason)"
            case .commandFailed(let what): "network lab: \(what)"
            }
        }
    }
}

// MARK: - Hosts

extension NetworkLab {
    /// One machine on the lab LAN.
    public final class Host: @unchecked Sendable {
        // @unchecked: mutable state (address, daemons, processes) is guarded by `lock`.
        public static let interface = "eth0"
        public static let prefixLength = 24

        /// The name given to the lab; also the avahi host name (`<name>.local`).
        public let name: String
        let index: Int
        /// The network namespace (`ip netns exec <namespace> ...`).
        public let namespace: String
        /// The host's directory (configuration files, `run/`).
        public let directory: String
        /// Bind-mounted over `/run` for every process started in the host.
        public let runDirectory: String
        /// The host's D-Bus system bus socket, as a path valid outside the host.
        public let systemBusSocket: String

        private let lock = NSLock()
        private var currentAddress: String
        private var dbusDaemon: ChildProcess?
        private var avahiDaemon: ChildProcess?
        private var processes: [ChildProcess] = []

        init(name: String, index: Int, namespace: String, directory: String, address: String) {
            self.name = name
            self.index = index
            self.namespace = namespace
            self.directory = directory
            self.runDirectory = "\(directory)/run"
            self.systemBusSocket = "\(directory)/run/dbus/system_bus_socket"
            self.currentAddress = address
        }

        /// The host's IPv4 address on the LAN (changes with `setAddress`).
        public var address: String { lock.withLock { currentAddress } }
        /// The name avahi-daemon answers for, e.g. `gateway.local`.
        public var mdnsHostName: String { "\(name).local" }
        /// `DBUS_SYSTEM_BUS_ADDRESS` for this host's bus, valid inside and outside the host.
        public var systemBusAddress: String { "unix:path=\(systemBusSocket)" }

        /// avahi-daemon's output so far (for failure messages), "" if it is not running.
        public var avahiLog: String { lock.withLock { avahiDaemon?.outputText ?? "" } }

        // MARK: Running programs

        /// Starts a long-running program inside the host: its network namespace, its private
        /// `/run`, and `DBUS_SYSTEM_BUS_ADDRESS` set to its bus. `executable` is a path, a built
        /// product of this package, or a name on PATH. The process is killed at lab shutdown at
        /// the latest.
        public func spawn(
            _ executable: String, _ arguments: [String] = [], environment: [String: String] = [:], name: String? = nil
        ) throws -> ChildProcess {
            let path = try NetworkLab.locate(executable)
            var env = environment
            env["DBUS_SYSTEM_BUS_ADDRESS"] = env["DBUS_SYSTEM_BUS_ADDRESS"] ?? systemBusAddress
            let child = try ChildProcess(
                try NetworkLab.locate("ip"),
                [
                    "netns", "exec", namespace, "unshare", "--mount", "--propagation", "private", "sh", "-c",
                    Self.hostShell, runDirectory, path,
                ] + arguments,
                environment: env, name: name ?? "\(self.name)/\((path as NSString).lastPathComponent)")
            lock.withLock { processes.append(child) }
            return child
        }

        /// Runs inside the host's network and mount namespaces: puts the host's `/run` in place,
        /// then runs the program as a child and forwards SIGTERM/SIGHUP/SIGUSR1/SIGUSR2 to it.
        ///
        /// Not `exec`: Foundation's `Process` learns that a child exited when a socket the child
        /// inherited is closed, and avahi-daemon closes every inherited descriptor at startup
        /// (daemons may). Foundation then blocks in `waitpid` for the live daemon and stops
        /// noticing any other child exit in the whole test process. The shell keeps the socket
        /// open until the program has really exited. SIGKILL reaches only the shell; the program
        /// is then killed at lab shutdown, with everything else in the namespace.
        static let hostShell = #"""
            mount --bind "$0" /run || exit 125
            "$@" &
            child=$!
            for signal in TERM HUP USR1 USR2; do trap "kill -$signal $child 2>/dev/null" $signal; done
            while :; do
                wait $child
                status=$?
                kill -0 $child 2>/dev/null || exit $status
            done
            """#

        /// Runs a program inside the host to completion (see `spawn`) and returns its merged
        /// output; throws if it does not exit within `limit` or, with `check`, exits non-zero.
        @discardableResult
        public func run(
            _ executable: String, _ arguments: [String] = [], environment: [String: String] = [:],
            within limit: Duration = .seconds(30), check: Bool = true
        ) async throws -> (status: Int32, output: String) {
            let child = try spawn(executable, arguments, environment: environment)
            defer { forget(child) }
            let status = try await NetworkLab.waitForExit(of: child, within: limit)
            // The pipe can deliver its last bytes just after the exit notification.
            _ = try? await child.waitForLine(within: .milliseconds(200), "end of output") { _ in false }
            guard let status else {
                throw DeadlineExceeded(
                    what:
                        "[\(name)] \(([executable] + arguments).joined(separator: " ")) to exit; output:\n\(child.outputText)",
                    after: limit)
            }
            if check, status != 0 {
                throw ChildProcessError.failed(
                    command: "[\(name)] " + ([executable] + arguments).joined(separator: " "), status: status,
                    output: child.outputText)
            }
            return (status, child.outputText)
        }

        /// Runs `body`, which should create in-process D-Bus clients (e.g. `MDNSClient()`), with
        /// this process's system bus pointing at this host's bus. The clients then act as
        /// programs on this host. See `InProcessSystemBus`.
        public func withSystemBus<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
            try InProcessSystemBus.connect(toSocket: systemBusSocket, body)
        }

        // MARK: Daemons

        /// Starts the host's dbus-daemon (system bus, permissive policy) and waits until it listens.
        public func startSystemBus() async throws {
            let daemon = try spawn(
                "dbus-daemon", ["--config-file=\(directory)/dbus.conf", "--nofork", "--nopidfile", "--print-address"],
                name: "\(name)/dbus-daemon")
            lock.withLock { dbusDaemon = daemon }
            try await daemon.waitForLine(within: .seconds(15), "dbus-daemon on \(name) to listen") {
                $0.hasPrefix("unix:")
            }
        }

        /// Stops the host's dbus-daemon (avahi-daemon on it exits too).
        public func stopSystemBus() async {
            let daemon = lock.withLock {
                defer { dbusDaemon = nil }
                return dbusDaemon
            }
            if let daemon { await NetworkLab.terminate(daemon) }
        }

        /// Starts avahi-daemon and waits until it has established its host name.
        public func startAvahi() async throws {
            let daemon = try spawn(
                "avahi-daemon",
                ["-f", "\(directory)/avahi-daemon.conf", "--no-chroot", "--no-drop-root", "--no-rlimits"],
                name: "\(name)/avahi-daemon")
            lock.withLock { avahiDaemon = daemon }
            try await daemon.waitForLine(within: .seconds(20), "avahi-daemon on \(name) to start") {
                $0.contains("Server startup complete")
            }
        }

        /// Stops avahi-daemon (SIGTERM: it sends goodbye packets first) and waits for it to exit.
        public func stopAvahi() async {
            let daemon = lock.withLock {
                defer { avahiDaemon = nil }
                return avahiDaemon
            }
            if let daemon { await NetworkLab.terminate(daemon) }
        }

        // MARK: Network changes

        /// Moves the host to a new IPv4 address (as after a new DHCP lease): the old address is
        /// removed, then the new one added, in the same /24 or not.
        public func setAddress(_ newAddress: String) async throws {
            let old = address
            try await ip(["-n", namespace, "addr", "del", "\(old)/\(Self.prefixLength)", "dev", Self.interface])
            try await ip(["-n", namespace, "addr", "add", "\(newAddress)/\(Self.prefixLength)", "dev", Self.interface])
            lock.withLock { currentAddress = newAddress }
        }

        /// Adds another address to eth0, e.g. a 169.254.x.x/16 link-local one next to the real one.
        public func addAddress(_ address: String, prefixLength: Int = 24) async throws {
            try await ip(["-n", namespace, "addr", "add", "\(address)/\(prefixLength)", "dev", Self.interface])
        }

        public func removeAddress(_ address: String, prefixLength: Int = 24) async throws {
            try await ip(["-n", namespace, "addr", "del", "\(address)/\(prefixLength)", "dev", Self.interface])
        }

        /// Takes eth0 down (the host drops off the LAN without saying goodbye) or brings it up.
        public func setLink(up: Bool) async throws {
            try await ip(["-n", namespace, "link", "set", Self.interface, up ? "up" : "down"])
        }

        // MARK: Internals

        func writeConfiguration() throws {
            let files = FileManager.default
            try files.createDirectory(atPath: "\(runDirectory)/dbus", withIntermediateDirectories: true)
            try files.createDirectory(atPath: "\(runDirectory)/avahi-daemon", withIntermediateDirectories: true)
            // A system bus that lets anyone own names and call anything: avahi-daemon owns
            // org.freedesktop.Avahi, clients call it. No service activation (nothing starts
            // avahi-daemon behind a test's back).
            let dbusConfiguration = """
                <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
                 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
                <busconfig>
                  <type>system</type>
                  <listen>unix:path=/run/dbus/system_bus_socket</listen>
                  <auth>EXTERNAL</auth>
                  <policy context="default">
                    <allow user="*"/>
                    <allow own="*"/>
                    <allow send_type="method_call"/>
                    <allow send_type="signal"/>
                    <allow send_type="method_return"/>
                    <allow send_type="error"/>
                    <allow receive_type="method_call"/>
                    <allow receive_type="method_return"/>
                    <allow receive_type="error"/>
                    <allow receive_type="signal"/>
                  </policy>
                </busconfig>

                """
            try dbusConfiguration.write(toFile: "\(directory)/dbus.conf", atomically: true, encoding: .utf8)
            // Debian's stock configuration (a minimal one joined no interface in the spike), with
            // this host's name.
            let stock = (try? String(contentsOfFile: "/etc/avahi/avahi-daemon.conf", encoding: .utf8)) ?? "[server]\n"
            var lines = stock.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                .filter { !$0.hasPrefix("host-name=") }
            if let server = lines.firstIndex(of: "[server]") {
                lines.insert("host-name=\(name)", at: server + 1)
            } else {
                lines = ["[server]", "host-name=\(name)"] + lines
            }
            try lines.joined(separator: "\n").write(
                toFile: "\(directory)/avahi-daemon.conf", atomically: true, encoding: .utf8)
        }

        private func forget(_ child: ChildProcess) {
            lock.withLock { processes.removeAll { $0 === child } }
        }

        /// Drops the references to the host's processes (their deinit kills them); namespace
        /// deletion kills whatever is left.
        func forgetProcesses() {
            let all = lock.withLock {
                defer {
                    processes.removeAll()
                    dbusDaemon = nil
                    avahiDaemon = nil
                }
                return processes
            }
            for child in all { child.signal(SIGKILL) }
        }
    }
}

// MARK: - Namespaces, stale labs, availability

extension NetworkLab {
    /// Runs `ip` in the main namespace (only ever with `netns`/`-n`/`link add ... netns`, i.e.
    /// acting on lab namespaces).
    static func ip(_ arguments: [String]) async throws {
        let (status, output) = try await runCommand(try locate("ip"), arguments, within: .seconds(20), check: false)
        guard status == 0 else {
            throw LabError.commandFailed("ip \(arguments.joined(separator: " ")) exited with \(status): \(output)")
        }
    }

    private func ip(_ arguments: [String]) async throws {
        try await Self.ip(arguments)
    }

    /// Like `ChildProcess.locate`, but also looks in the sbin directories (where `ip` and the
    /// daemons live), which a non-login PATH may lack.
    static func locate(_ executable: String) throws -> String {
        if let path = try? ChildProcess.locate(executable) { return path }
        for directory in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
            let candidate = "\(directory)/\(executable)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw ChildProcessError.notFound(executable)
    }

    /// Waits for `child` to exit; stops it (SIGTERM, then SIGKILL 3 s later) and returns nil if
    /// it has not exited within `limit`.
    static func waitForExit(of child: ChildProcess, within limit: Duration) async throws -> Int32? {
        if let status = try? await child.waitForExit(within: limit) { return status }
        await child.stop(grace: .seconds(3))
        return nil
    }

    /// SIGTERM, then SIGKILL after `grace`; returns once the process has exited.
    static func terminate(_ child: ChildProcess, grace: Duration = .seconds(5)) async {
        child.signal(SIGTERM)
        _ = try? await waitForExit(of: child, within: grace)
    }

    /// The device and inode of a network namespace file (`/run/netns/x` or `/proc/<pid>/ns/net`).
    private static func namespaceIdentity(_ path: String) -> (dev_t, ino_t)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (info.st_dev, info.st_ino)
    }

    /// Kills every process in the namespaces, then deletes them (what `ip netns del` does:
    /// unmount and remove the name; the namespace dies with its last process).
    static func deleteNamespaces(_ names: [String]) {
        let identities = names.compactMap { namespaceIdentity("/run/netns/\($0)") }
        if !identities.isEmpty {
            for _ in 0..<50 {
                let members = pids().filter { pid in
                    guard let identity = namespaceIdentity("/proc/\(pid)/ns/net") else { return false }
                    return identities.contains { $0 == identity }
                }
                if members.isEmpty { break }
                // Opened before the kill, so a recycled pid can never be mistaken for a member.
                let exits = members.map(ctestsupport_process_pidfd).filter { $0 >= 0 }
                for pid in members { kill(pid, SIGKILL) }
                waitUntilReadable(exits, within: .seconds(2))
                exits.forEach { close($0) }
            }
        }
        for name in names {
            let path = "/run/netns/\(name)"
            umount2(path, Int32(MNT_DETACH))
            unlink(path)
        }
    }

    /// Blocks until every descriptor is readable (a process pidfd: the process has exited) or
    /// `limit` has passed.
    private static func waitUntilReadable(_ descriptors: [Int32], within limit: Duration) {
        let deadline = ContinuousClock.now + limit
        var pending = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        while !pending.isEmpty {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return }
            let milliseconds = Int32(
                left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
            guard poll(&pending, nfds_t(pending.count), max(milliseconds, 1)) >= 0 || errno == EINTR else { return }
            pending = pending.filter { $0.revents == 0 }.map { pollfd(fd: $0.fd, events: $0.events, revents: 0) }
        }
    }

    private static func pids() -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
    }

    /// "pid starttime": identifies a process even if its pid is reused later.
    static func processIdentity(_ pid: pid_t) -> String {
        "\(pid) \(startTime(of: pid) ?? "?")"
    }

    private static func startTime(of pid: pid_t) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after "pid (comm)": state is field 3, starttime field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }

    private static func isAlive(identity: String) -> Bool {
        guard let pid = pid_t(identity.split(separator: " ").first ?? "") else { return false }
        return processIdentity(pid) == identity
    }

    /// Removes labs (namespaces, processes, directories) and bus links left by dead processes.
    /// Runs once per process, before its first lab.
    static let removeStaleLabs: Void = {
        let files = FileManager.default
        var live: Set<String> = []
        for entry in (try? files.contentsOfDirectory(atPath: baseDirectory)) ?? [] {
            let path = "\(baseDirectory)/\(entry)"
            if entry.hasPrefix("bus-") || entry.hasPrefix("no-such-bus-") {
                let pidText = entry.split(separator: "-").last.map { String($0.split(separator: ".")[0]) } ?? ""
                if let pid = pid_t(pidText), kill(pid, 0) != 0, errno == ESRCH {
                    try? files.removeItem(atPath: path)
                }
                continue
            }
            if let owner = try? String(contentsOfFile: "\(path)/owner", encoding: .utf8), isAlive(identity: owner) {
                live.insert(entry)
            }
        }
        let namespaces = ((try? files.contentsOfDirectory(atPath: "/run/netns")) ?? []).filter {
            $0.hasPrefix(namespacePrefix)
        }
        var stale: [String] = []
        for namespace in namespaces {
            let rest = namespace.dropFirst(namespacePrefix.count)
            if rest.hasPrefix("probe-") {
                if let pid = pid_t(rest.split(separator: "-")[1]), kill(pid, 0) != 0, errno == ESRCH {
                    stale.append(namespace)
                }
            } else if !live.contains(String(rest.prefix(8))) {
                stale.append(namespace)
            }
        }
        deleteNamespaces(stale)
        for entry in (try? files.contentsOfDirectory(atPath: baseDirectory)) ?? []
        where !entry.hasPrefix("bus-") && !entry.hasPrefix("no-such-bus-") && !live.contains(entry) {
            // A lab directory whose owner is dead (or a lab that is just starting and has not
            // written its owner file: those have no namespaces yet, and recreate the directory).
            let path = "\(baseDirectory)/\(entry)"
            if (try? String(contentsOfFile: "\(path)/owner", encoding: .utf8)) != nil {
                try? files.removeItem(atPath: path)
            }
        }
    }()

    private static func probe() -> Availability {
        guard geteuid() == 0 else {
            return Availability(isAvailable: false, reason: "needs root (creates network namespaces)")
        }
        for tool in ["ip", "unshare", "mount", "sh", "dbus-daemon", "avahi-daemon"] {
            guard (try? locate(tool)) != nil else {
                return Availability(isAvailable: false, reason: "'\(tool)' is not installed (PATH or /usr/sbin)")
            }
        }
        let name = "\(namespacePrefix)probe-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        defer { deleteNamespaces([name]) }
        if let failure = runNow("ip", ["netns", "add", name]) {
            return Availability(isAvailable: false, reason: "cannot create a network namespace: \(failure)")
        }
        if let failure = runNow(
            "ip", ["netns", "exec", name, "unshare", "--mount", "--propagation", "private", "true"])
        {
            return Availability(isAvailable: false, reason: "cannot create a mount namespace: \(failure)")
        }
        return Availability(isAvailable: true, reason: "network namespaces work")
    }

    /// Runs a command synchronously; nil on success, else what went wrong.
    private static func runNow(_ executable: String, _ arguments: [String]) -> String? {
        let process = Process()
        guard let path = try? locate(executable) else { return "\(executable) not found" }
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try process.run()
        } catch {
            return "\(error)"
        }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            return "'\(executable) \(arguments.joined(separator: " "))' exited with \(process.terminationStatus): "
                + String(decoding: output, as: UTF8.self)
        }
        return nil
    }
}
