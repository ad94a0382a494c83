import Foundation

/// A program the benchmark started (mosquitto, the bridge, the raw CoAP observer), with its
/// standard output and error read line by line on a thread of its own.
///
/// Started with `posix_spawn` and an empty signal mask: the threads Swift concurrency runs on
/// block SIGTERM, and a child inherits that mask, so it could not be stopped gracefully.
final class Spawned: @unchecked Sendable {
    // @unchecked: `lines`, `waiters`, `closed` and `reaped` are guarded by `lock`; the rest is immutable.
    let name: String
    let pid: pid_t
    private let lock = NSLock()
    private var lines: [String] = []
    private var waiters: [(predicate: (String) -> Bool, continuation: CheckedContinuation<String?, Never>)] = []
    private var closed = false
    private var reaped: Int32?
    private let onLine: (@Sendable (String) -> Void)?

    /// - Parameter onLine: called on the reader thread for every line, as it arrives.
    init(_ executable: String, _ arguments: [String], onLine: (@Sendable (String) -> Void)? = nil) throws {
        name = (executable as NSString).lastPathComponent
        self.onLine = onLine
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw BenchError("pipe: \(String(cString: strerror(errno)))") }
        let (readEnd, writeEnd) = (fds[0], fds[1])

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        posix_spawn_file_actions_addclose(&actions, readEnd)
        posix_spawn_file_actions_addclose(&actions, writeEnd)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        close(writeEnd)
        guard code == 0 else {
            close(readEnd)
            throw BenchError("cannot start \(executable): \(String(cString: strerror(code)))")
        }
        self.pid = pid
        Thread { [self] in readLines(readEnd) }.start()
    }

    deinit {
        if reaped == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    private func readLines(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var partial: [UInt8] = []
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            var start = 0
            for index in 0..<count where buffer[index] == UInt8(ascii: "\n") {
                partial.append(contentsOf: buffer[start..<index])
                deliver(String(decoding: partial, as: UTF8.self))
                partial.removeAll(keepingCapacity: true)
                start = index + 1
            }
            partial.append(contentsOf: buffer[start..<count])
        }
        close(fd)
        if !partial.isEmpty { deliver(String(decoding: partial, as: UTF8.self)) }
        let waiting = lock.withLock {
            closed = true
            defer { waiters.removeAll() }
            return waiters
        }
        for waiter in waiting { waiter.continuation.resume(returning: nil) }
    }

    private func deliver(_ line: String) {
        onLine?(line)
        let ready: [CheckedContinuation<String?, Never>] = lock.withLock {
            lines.append(line)
            if lines.count > 10_000 { lines.removeFirst(5_000) }
            var ready: [CheckedContinuation<String?, Never>] = []
            waiters.removeAll { waiter in
                guard waiter.predicate(line) else { return false }
                ready.append(waiter.continuation)
                return true
            }
            return ready
        }
        for continuation in ready { continuation.resume(returning: line) }
    }

    /// The output so far (the last lines, for error messages).
    var output: String { lock.withLock { lines.suffix(40).joined(separator: "\n") } }

    /// Waits for a line matching `predicate` (also one already printed); nil once the output ended.
    func waitForLine(within limit: Duration, _ predicate: @escaping @Sendable (String) -> Bool) async -> String? {
        let watchdog = Task { [weak self] in
            try? await Task.sleep(for: limit)
            self?.cancelWaiters()
        }
        defer { watchdog.cancel() }
        return await withCheckedContinuation { continuation in
            let found: String?? = lock.withLock {
                if let line = lines.first(where: predicate) { return .some(line) }
                if closed { return .some(nil) }
                waiters.append((predicate, continuation))
                return nil
            }
            if let found { continuation.resume(returning: found) }
        }
    }

    private func cancelWaiters() {
        let waiting = lock.withLock {
            defer { waiters.removeAll() }
            return waiters
        }
        for waiter in waiting { waiter.continuation.resume(returning: nil) }
    }

    func signal(_ number: Int32) {
        if exitStatus() == nil { kill(pid, number) }
    }

    /// The exit status once the process has ended (a negative signal number if a signal ended
    /// it), nil while it runs. Never blocks; reaps the process once and remembers the status.
    func exitStatus() -> Int32? {
        lock.withLock {
            if let reaped { return reaped }
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
            reaped = (status & 0x7f) == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
            return reaped
        }
    }

    /// Waits up to `limit` for the process to end by itself; its exit status, or nil if it still runs.
    func waitForExit(within limit: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let status = exitStatus() { return status }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return exitStatus()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit (then SIGKILL). Returns the exit status.
    @discardableResult
    func stop(within limit: Duration = .seconds(10)) async -> Int32? {
        signal(SIGTERM)
        if let status = await waitForExit(within: limit) { return status }
        kill(pid, SIGKILL)
        return nil
    }

    /// Kills the process at once (SIGKILL, as a power cut or `kill -9`) and reaps it.
    func killNow() async {
        signal(SIGKILL)
        _ = await waitForExit(within: .seconds(10))
    }

    // MARK: /proc

    /// Peak, current and private (anonymous) resident set size in KiB (VmHWM, VmRSS, RssAnon).
    func memory() -> (peak: Int, current: Int, anonymous: Int) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0, 0) }
        func value(_ key: String) -> Int {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return 0 }
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return (value("VmHWM"), value("VmRSS"), value("RssAnon"))
    }

    /// User plus system CPU time of the whole process (threads that ended included), from
    /// /proc/<pid>/stat, in milliseconds (clock-tick resolution, 10 ms).
    func cpuMilliseconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) * 1000 / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Per-thread counters by thread id: CPU time in nanoseconds
    /// (/proc/<pid>/task/<tid>/schedstat) and context switches, i.e. how often the thread went to
    /// sleep and was woken or preempted (/proc/<pid>/task/<tid>/status).
    func threadCounters() -> [Int: (cpuNanoseconds: UInt64, switches: Int)] {
        let directory = "/proc/\(pid)/task"
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [:] }
        var result: [Int: (UInt64, Int)] = [:]
        for task in tasks {
            guard let tid = Int(task) else { continue }
            var cpu: UInt64 = 0
            var switches = 0
            if let schedstat = try? String(contentsOfFile: "\(directory)/\(task)/schedstat", encoding: .utf8),
                let first = schedstat.split(separator: " ").first, let value = UInt64(first)
            {
                cpu = value
            }
            if let status = try? String(contentsOfFile: "\(directory)/\(task)/status", encoding: .utf8) {
                for line in status.split(separator: "\n") where line.contains("ctxt_switches:") {
                    switches +=
                        Int(line.split(separator: "\t").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "") ?? 0
                }
            }
            result[tid] = (cpu, switches)
        }
        return result
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
