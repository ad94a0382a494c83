#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// systemd's notification protocol (`sd_notify(3)`), spoken directly: one datagram of
/// newline-separated `KEY=value` lines to the AF_UNIX socket named by `$NOTIFY_SOCKET`. No
/// libsystemd: the protocol is a stable interface (systemd's "Notify socket" documentation) and
/// this is all of it a service needs.
///
/// Contract:
/// - `init(environment:)` gives nil when the process was not started by a service manager that
///   listens (no `NOTIFY_SOCKET`, or an address family this does not speak, such as `vsock:`).
/// - `send(_:)` sends one datagram and never blocks for long (datagram sockets to a local
///   listener; a full queue fails with `EAGAIN`, which is reported, not waited out).
/// - Values never break the protocol: a newline in a value (a `STATUS=` text) becomes a space.
/// - Safe from any thread; each call opens, uses and closes its own socket, as `sd_notify` does.
public struct NotifySocket: Sendable, CustomStringConvertible {
    /// The socket's path; a leading `@` names an abstract socket (Linux), as systemd writes it.
    public let path: String

    /// The notify socket of `environment` (the process's own by default), if there is one.
    public init?(environment: [String: String]? = nil) {
        let value = environment.map { $0["NOTIFY_SOCKET"] } ?? Self.variable("NOTIFY_SOCKET")
        guard let value, value.hasPrefix("/") || value.hasPrefix("@"), value.utf8.count < Self.maximumPathLength
        else { return nil }
        path = value
    }

    public var description: String { path }

    /// One notification. See `sd_notify(3)` for what systemd does with each.
    public enum Message: Sendable, Equatable {
        /// Start-up is finished (`Type=notify`: the unit becomes active).
        case ready
        /// The service is stopping.
        case stopping
        /// A line of text for `systemctl status`.
        case status(String)
        /// The keep-alive ping of the watchdog (`WatchdogSec=`).
        case watchdog
        /// Tells systemd to act as if the watchdog expired now.
        case watchdogTrigger
        /// The main process (when it is not the one systemd started).
        case mainPID(Int32)

        var line: String {
            switch self {
            case .ready: "READY=1"
            case .stopping: "STOPPING=1"
            case .status(let text): "STATUS=" + text.map { $0.isNewline ? " " : String($0) }.joined()
            case .watchdog: "WATCHDOG=1"
            case .watchdogTrigger: "WATCHDOG=trigger"
            case .mainPID(let pid): "MAINPID=\(pid)"
            }
        }
    }

    /// Why a notification could not be sent (`errno` and what failed).
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let operation: String
        public let code: Int32
        public var description: String { "\(operation): \(String(cString: strerror(code)))" }
    }

    /// Sends `messages` as one datagram.
    public func send(_ messages: [Message]) throws(Failure) {
        let text = messages.map(\.line).joined(separator: "\n")
        try Self.send(Array(text.utf8), to: Array(path.utf8))
    }

    public func send(_ message: Message) throws(Failure) {
        try send([message])
    }

    /// The interval the service manager expects `.watchdog` within (`WATCHDOG_USEC`), if the
    /// watchdog is on for this process: unset, zero, unparseable or meant for another process
    /// (`WATCHDOG_PID`) is nil, as with `sd_watchdog_enabled(3)`.
    public static func watchdogInterval(environment: [String: String]? = nil) -> Duration? {
        func value(_ name: String) -> String? { environment.map { $0[name] } ?? variable(name) }
        guard let text = value("WATCHDOG_USEC"), let microseconds = UInt64(text), microseconds > 0 else { return nil }
        if let pid = value("WATCHDOG_PID") {
            guard let owner = Int32(pid), owner == getpid() else { return nil }
        }
        return .microseconds(microseconds)
    }

    // MARK: The socket

    /// `sun_path`'s size, less the terminating zero of a path.
    private static let maximumPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    private static func variable(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    private static func send(_ payload: [UInt8], to path: [UInt8]) throws(Failure) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(operation: "socket", code: errno) }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        // The address: the path's bytes in sun_path; an abstract address starts with a zero byte
        // instead of '@' and its length counts exactly its bytes (no terminating zero).
        var bytes = path
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        // Safe: `init` refused paths of `maximumPathLength` bytes or more, so `bytes` fits in
        // `sun_path` (a fixed-size tuple of CChar inside `address`, which lives on this frame and
        // is only reached through this pointer while the closure runs), with room for the zero
        // that `sockaddr_un()` already put after it.
        withUnsafeMutableBytes(of: &address.sun_path) { sunPath in
            sunPath.copyBytes(from: bytes)
        }
        let length = socklen_t(
            MemoryLayout.offset(of: \sockaddr_un.sun_path)! + bytes.count + (path.first == 0x40 ? 0 : 1))
        let sent = payload.withUnsafeBytes { buffer in
            // Safe: `address` is a complete sockaddr_un for the whole call; rebinding its memory to
            // the generic `sockaddr` is how the socket API takes every address family, and
            // `length` says how much of it the kernel may read.
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), generic, length)
                }
            }
        }
        guard sent == payload.count else {
            throw Failure(
                operation: "sendto \(String(decoding: path, as: UTF8.self))", code: sent < 0 ? errno : EMSGSIZE)
        }
    }
}
