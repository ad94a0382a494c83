import Dispatch
import Foundation
import Logging
import TLS

/// One HTTP request as the pairing endpoints see it.
public struct HTTPRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [String: String]
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: [UInt8]
    /// The peer's IP address (IPv4 dotted, or IPv6), as the TCP connection shows it.
    public var peer: String
    /// The address the peer reached us on (the bridge's address on the peer's network).
    public var localAddress: String = ""
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String = "text/plain", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    /// A plain-text answer with no trailing newline (EmonESP compares bodies byte for byte).
    public static func text(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, body: Array(text.utf8))
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 202: "Accepted"
        case 400: "Bad Request"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 413: "Payload Too Large"
        case 429: "Too Many Requests"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}

/// A small HTTP/1.1 server for the pairing endpoints, plain or over TLS.
///
/// Contract:
/// - One request per connection (`Connection: close`); headers up to 8 KiB, bodies up to 8 KiB;
///   every read and write times out after 5 s, so a slow or silent client holds a connection at
///   most that long.
/// - At most `maxConnections` connections are served at once, each on a thread of its own; further
///   connections are closed at once. A flood therefore costs little and cannot starve the daemon.
/// - The handler is async and may take its time (it runs in a task); the connection's thread
///   waits for it.
public final class HTTPServer: @unchecked Sendable {
    // @unchecked: `active` is guarded by `lock`; the rest is immutable (`listener` is thread-safe).
    public typealias Handler = @Sendable (HTTPRequest) async -> HTTPResponse

    public let port: UInt16
    private let listener: AcceptLoop
    private let tls: TLSServerContext?
    private let handler: Handler
    private let maxConnections: Int
    private let lock = NSLock()
    private var active = 0
    private let logger = Logger(label: "pairing.http")

    public struct BindError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(
        host: String, port: UInt16, tls: TLSServerContext?, maxConnections: Int = 32,
        handler: @escaping Handler
    ) throws(BindError) {
        self.tls = tls
        self.handler = handler
        self.maxConnections = maxConnections
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BindError(description: "socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(fd)
            throw BindError(description: "'\(host)' is not an IPv4 address")
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw BindError(description: "cannot listen on \(host):\(port): \(reason)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.port = UInt16(bigEndian: address.sin_port)
        listener = AcceptLoop(descriptor: fd, label: "tradfri.pairing.accept")
    }

    public func start() {
        listener.start(onReadable: { [weak self] in self?.acceptAll() })
    }

    public func stop() {
        listener.stop()
    }

    private func acceptAll() {
        while true {
            var peer = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let client = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listener.descriptor, $0, &length) }
            }
            guard client >= 0 else { return }
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &peer.sin_addr, &text, socklen_t(text.count))
            let address = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let admitted: Bool = lock.withLock {
                guard active < maxConnections else { return false }
                active += 1
                return true
            }
            guard admitted else {
                close(client)
                continue
            }
            var local = sockaddr_in()
            var localLength = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(client, $0, &localLength) }
            }
            var localText = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &local.sin_addr, &localText, socklen_t(localText.count))
            let localAddress = String(
                decoding: localText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let thread = Thread { [self] in
                serve(client, peer: address, local: localAddress)
                close(client)
                lock.withLock { active -= 1 }
            }
            thread.stackSize = 256 * 1024
            thread.start()
        }
    }

    private func serve(_ fd: Int32, peer: String, local: String) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let stream: ByteStream
        if let tls {
            do {
                stream = .tls(try tls.accept(socket: fd))
            } catch {
                logger.debug("TLS handshake failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
                return
            }
        } else {
            stream = .plain(fd)
        }
        defer { stream.shutdown() }
        let response: HTTPResponse
        switch Self.readRequest(stream, peer: peer) {
        case .success(var parsed):
            parsed.localAddress = local
            let request = parsed
            let handler = self.handler
            response = waitOnThread(placeholder: .text(503, "unavailable")) { await handler(request) }
        case .failure(let problem):
            guard let status = problem.status else { return }
            response = .text(status, problem.message)
        }
        var head = "HTTP/1.1 \(response.status) \(HTTPResponse.reason(response.status))\r\n"
        head += "Content-Type: \(response.contentType)\r\nContent-Length: \(response.body.count)\r\n"
        head += "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        stream.write(Array(head.utf8) + response.body)
    }

    // MARK: Parsing

    struct Problem: Error {
        var status: Int?
        var message: String
    }

    enum ByteStream {
        case plain(Int32)
        case tls(TLSConnection)

        func read(_ count: Int) -> [UInt8] {
            switch self {
            case .plain(let fd):
                var buffer = [UInt8](repeating: 0, count: count)
                let read = recv(fd, &buffer, count, 0)
                return read > 0 ? Array(buffer.prefix(read)) : []
            case .tls(let connection):
                return connection.read(count)
            }
        }

        func write(_ bytes: [UInt8]) {
            switch self {
            case .plain(let fd):
                var offset = 0
                while offset < bytes.count {
                    let sent = bytes[offset...].withUnsafeBytes {
                        send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                    }
                    guard sent > 0 else { return }
                    offset += sent
                }
            case .tls(let connection):
                connection.write(bytes)
            }
        }

        func shutdown() {
            if case .tls(let connection) = self { connection.shutdown() }
        }
    }

    /// Reads until `HTTPRequestParser` has a whole request (or a reason to refuse it).
    static func readRequest(_ stream: ByteStream, peer: String) -> Result<HTTPRequest, Problem> {
        var data: [UInt8] = []
        while true {
            switch HTTPRequestParser.parse(data, peer: peer) {
            case .request(let request): return .success(request)
            case .failure(let failure): return .failure(Problem(status: failure.status, message: failure.message))
            case .needMore(let count):
                let chunk = stream.read(count)
                guard !chunk.isEmpty else { return .failure(Problem(status: nil, message: "closed")) }
                data += chunk
            }
        }
    }
}
