import Foundation

/// systemd's side of `$NOTIFY_SOCKET`: a datagram socket bound at a fresh path that records
/// every notification a service sends (`READY=1`, `STATUS=…`, `WATCHDOG=1`, …) with the time it
/// arrived, and waits for them with deadlines. A service started with `environment` talks to it
/// as it would to systemd (with `watchdog`, also `WATCHDOG_USEC`).
public final class FakeSystemd: @unchecked Sendable {
    // @unchecked: `received` and `waiters` are guarded by `lock`; `descriptor` is immutable.
    public struct Notification: Sendable {
        /// Monotonic arrival time.
        public let time: ContinuousClock.Instant
        /// `KEY=value` lines, in order.
        public let lines: [String]

        public func value(_ key: String) -> String? {
            lines.first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
    }

    public let path: String
    private let descriptor: Int32
    private let lock = NSLock()
    private var received: [Notification] = []
    private var waiters:
        [Int: (predicate: (Notification) -> Bool, continuation: CheckedContinuation<Notification, any Error>)] = [:]
    private var nextWaiter = 0
    private var listWaiters: [(condition: ([Notification]) -> Bool, continuation: CheckedContinuation<Void, Never>)] =
        []

    public init() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "notify-\(UUID().uuidString.prefix(8))"
        ).path
        self.path = path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard fd >= 0, bound == 0 else { throw POSIXError(.EADDRNOTAVAIL) }
        descriptor = fd
        let thread = Thread { [weak self, fd] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = recv(fd, &buffer, buffer.count, 0)
                if count < 0, errno == EINTR { continue }
                guard count >= 0 else { return }
                let text = String(decoding: buffer[0..<count], as: UTF8.self)
                guard let self else { return }
                self.deliver(Notification(time: .now, lines: text.split(separator: "\n").map(String.init)))
            }
        }
        thread.start()
    }

    deinit {
        close()
    }

    /// Stops listening (the reading thread ends) and removes the socket file.
    public func close() {
        shutdown(descriptor, Int32(SHUT_RDWR))
        unlink(path)
    }

    /// What a service needs to find this socket; with `watchdog`, the watchdog is on with that
    /// interval.
    public func environment(watchdog: Duration? = nil) -> [String: String] {
        var environment = ["NOTIFY_SOCKET": path]
        if let watchdog {
            let (seconds, attoseconds) = watchdog.components
            environment["WATCHDOG_USEC"] = "\(seconds * 1_000_000 + attoseconds / 1_000_000_000_000)"
        }
        return environment
    }

    /// Every notification so far.
    public var notifications: [Notification] { lock.withLock { received } }

    public var count: Int { lock.withLock { received.count } }

    /// The notifications since index `start` that carry `key` (`WATCHDOG`, `STATUS`, …).
    public func values(of key: String, from start: Int = 0) -> [String] {
        notifications.dropFirst(start).compactMap { $0.value(key) }
    }

    /// The arrival times of `WATCHDOG=1` since index `start`.
    public func pings(from start: Int = 0) -> [ContinuousClock.Instant] {
        notifications.dropFirst(start).filter { $0.value("WATCHDOG") == "1" }.map(\.time)
    }

    /// Waits for a notification at index `from` or later (received already, or still to come)
    /// that satisfies `predicate`.
    @discardableResult
    public func wait(
        within limit: Duration = .seconds(10), _ what: String, from start: Int = 0,
        where predicate: @escaping @Sendable (Notification) -> Bool
    ) async throws -> Notification {
        let id: Int = lock.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        return try await withDeadline(limit, "\(what); notifications so far:\n\(self.describe())") {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    self.lock.withLock {
                        if let found = self.received.dropFirst(start).first(where: predicate) {
                            continuation.resume(returning: found)
                        } else {
                            self.waiters[id] = (predicate, continuation)
                        }
                    }
                }
            } onCancel: {
                self.lock.withLock { self.waiters.removeValue(forKey: id) }?.continuation.resume(
                    throwing: CancellationError())
            }
        }
    }

    /// Waits for `KEY=value` (with `value` nil: any value of `key`).
    @discardableResult
    public func wait(
        for key: String, _ value: String? = nil, within limit: Duration = .seconds(10), from start: Int = 0
    ) async throws -> Notification {
        try await wait(within: limit, "\(key)=\(value ?? "…")", from: start) {
            guard let found = $0.value(key) else { return false }
            return value == nil || found == value
        }
    }

    /// Waits until `count` notifications have arrived in all.
    public func waitForCount(_ count: Int, within limit: Duration = .seconds(10)) async throws {
        try await waitUntil(within: limit, "\(count) notifications") { $0.count >= count }
    }

    /// Waits until `count` pings have arrived since index `start`.
    public func waitForPings(_ count: Int, from start: Int = 0, within limit: Duration = .seconds(10)) async throws {
        try await waitUntil(within: limit, "\(count) pings") { list in
            list.dropFirst(start).count { $0.value("WATCHDOG") == "1" } >= count
        }
    }

    /// Waits until `condition` holds for every notification received so far.
    public func waitUntil(
        within limit: Duration, _ what: String, _ condition: @escaping @Sendable ([Notification]) -> Bool
    ) async throws {
        try await withDeadline(limit, "\(what); so far:\n\(self.describe())") {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done: Bool = self.lock.withLock {
                    if condition(self.received) { return true }
                    self.listWaiters.append((condition, continuation))
                    return false
                }
                if done { continuation.resume() }
            }
        }
    }

    public func describe() -> String {
        guard let first = notifications.first?.time else { return "(none)" }
        return notifications.map { "\($0.time - first): \($0.lines.joined(separator: " | "))" }.joined(separator: "\n")
    }

    private func deliver(_ notification: Notification) {
        let (ready, counted): ([CheckedContinuation<Notification, any Error>], [CheckedContinuation<Void, Never>]) =
            lock.withLock {
                received.append(notification)
                let matching = waiters.filter { $0.value.predicate(notification) }
                for id in matching.keys { waiters[id] = nil }
                let list = received
                let counted = listWaiters.filter { $0.condition(list) }.map(\.continuation)
                listWaiters.removeAll { $0.condition(list) }
                return (matching.values.map(\.continuation), counted)
            }
        for continuation in ready { continuation.resume(returning: notification) }
        for continuation in counted { continuation.resume() }
    }
}
