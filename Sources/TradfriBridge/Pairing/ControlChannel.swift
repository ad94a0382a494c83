import Dispatch
import Foundation
import HubModel
import Logging
import TradfriModel

/// The local control channel between `tradfri-bridge pair` and the daemon: a Unix socket that
/// only its owner (the daemon's user) and root can open (mode 0600, and the peer's uid is checked
/// with SO_PEERCRED). Never a port on the LAN.
///
/// Protocol: one JSON object per line. A request `{"command": "...", ...}` gets one answer
/// `{"ok": true, "data": …}` or `{"ok": false, "error": "…"}`. After `{"command":"watch"}` the
/// connection stays open and carries events `{"event": "...", "data": …}` until it is closed.
public final class ControlServer: @unchecked Sendable {
    // @unchecked: every stored property is immutable (`listener` is thread-safe).
    public typealias Handler = @Sendable (JSON) async -> JSON
    /// Registers a watcher; the watcher's `send` returns false once the client is gone.
    public typealias Watch = @Sendable (_ send: @escaping @Sendable (JSON) -> Bool) async -> Void

    public let path: String
    private let listener: AcceptLoop
    private let handler: Handler
    private let watch: Watch
    private let logger = Logger(label: "pairing.control")

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init(path: String, handler: @escaping Handler, watch: @escaping Watch) throws(Failure) {
        self.path = path
        self.handler = handler
        self.watch = watch
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o750])
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw Failure(description: "control socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes + [0]) }
        // Created with no access for others, then bound.
        let previous = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        umask(previous)
        guard bound == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "cannot create the control socket \(path): \(reason)")
        }
        chmod(path, 0o600)
        listener = AcceptLoop(descriptor: fd, label: "tradfri.control")
    }

    public func start() {
        let path = self.path
        listener.start(onReadable: { [weak self] in self?.acceptAll() }, onClose: { unlink(path) })
    }

    public func stop() {
        listener.stop()
    }

    private func acceptAll() {
        while true {
            let client = accept(listener.descriptor, nil, nil)
            guard client >= 0 else { return }
            var credentials = PeerCredentials()
            var length = socklen_t(MemoryLayout<PeerCredentials>.size)
            let known = getsockopt(client, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0
            guard known, credentials.uid == 0 || credentials.uid == getuid() else {
                logger.warning(
                    "refused a control connection from another user", metadata: ["uid": "\(credentials.uid)"])
                close(client)
                continue
            }
            Thread { [self] in
                serve(client)
            }.start()
        }
    }

    private func serve(_ fd: Int32) {
        let connection = LineConnection(fd: fd)
        defer { connection.close() }
        while let line = connection.readLine() {
            guard let request = try? JSON(parsing: line), request.objectValue != nil else {
                _ = connection.write(["ok": false, "error": "not a JSON object"])
                continue
            }
            if request["command"] == "watch" {
                _ = connection.write(["ok": true, "data": [:]])
                let finished = DispatchSemaphore(value: 0)
                let watch = self.watch
                Task {
                    await watch { event in
                        let alive = connection.write(event)
                        if !alive { finished.signal() }
                        return alive
                    }
                }
                // Also notice a client that hangs up while nothing happens.
                Thread {
                    while connection.readLine() != nil {}
                    connection.markClosed()
                    finished.signal()
                }.start()
                finished.wait()
                return
            }
            let handler = self.handler
            let answer = waitOnThread(placeholder: ["ok": false, "error": "no answer"] as JSON) {
                await handler(request)
            }
            guard connection.write(answer) else { return }
        }
    }
}

/// `struct ucred` (pid, uid, gid) as SO_PEERCRED fills it; glibc only declares it with _GNU_SOURCE.
private struct PeerCredentials {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Newline-delimited JSON over a connected socket (both ends of the control channel use it).
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
