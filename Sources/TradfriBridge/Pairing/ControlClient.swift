import Foundation
import HubModel
import TradfriModel

/// Newline-delimited JSON over a connected socket, blocking (the `pair` command's end of the
/// control channel; the daemon's end is `ControlServer`).
final class LineConnection: @unchecked Sendable {
    // @unchecked: reads happen on one thread at a time; writes are serialised by `lock`.
    private let fd: Int32
    private var buffer: [UInt8] = []
    private let lock = NSLock()
    private var closed = false

    init(fd: Int32) {
        self.fd = fd
    }

    func readLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            guard buffer.count < 1 << 20 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { return nil }
            buffer += chunk.prefix(count)
        }
    }

    @discardableResult
    func write(_ json: JSON) -> Bool {
        let bytes = Array((json.description + "\n").utf8)
        return lock.withLock {
            guard !closed else { return false }
            var offset = 0
            while offset < bytes.count {
                let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard sent > 0 else {
                    closed = true
                    return false
                }
                offset += sent
            }
            return true
        }
    }

    func markClosed() {
        lock.withLock { closed = true }
    }

    func close() {
        lock.withLock {
            closed = true
            Glibc.shutdown(fd, Int32(SHUT_RDWR))
        }
        Glibc.close(fd)
    }
}

/// The client side, for `tradfri-bridge pair`.
public final class ControlClient: @unchecked Sendable {
    // @unchecked: used by one task at a time (the CLI).
    private let connection: LineConnection

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init(path: String) throws(Failure) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) {
            $0.copyBytes(from: Array(path.utf8).prefix($0.count - 1) + [0])
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let reason =
                errno == EACCES
                ? "permission denied (run as root or as the bridge's user)"
                : errno == ENOENT || errno == ECONNREFUSED
                    ? "the bridge is not running with pairing enabled"
                    : String(cString: strerror(errno))
            Glibc.close(fd)
            throw Failure(description: "cannot reach the bridge at \(path): \(reason)")
        }
        connection = LineConnection(fd: fd)
    }

    /// Sends a request and returns `data`; throws the daemon's error text.
    public func send(_ request: JSON) throws(Failure) -> JSON {
        guard connection.write(request), let line = connection.readLine(), let answer = try? JSON(parsing: line) else {
            throw Failure(description: "the bridge closed the control connection")
        }
        guard answer["ok"] == true else { throw Failure(description: answer["error"]?.stringValue ?? "failed") }
        return answer["data"] ?? .null
    }

    /// Starts watching; then `nextEvent()` blocks until the next event (nil when the bridge is gone).
    public func watch() throws(Failure) {
        _ = try send(["command": "watch"])
    }

    public func nextEvent() -> JSON? {
        connection.readLine().flatMap { try? JSON(parsing: $0) }
    }

    public func close() {
        connection.close()
    }
}
