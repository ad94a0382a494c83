import Foundation

/// A TCP relay on 127.0.0.1 standing between a client and the broker, so a test can break the
/// connection the way a network failure does: `cut()` shuts down every relayed connection at once.
/// The broker then sees the connection end without a DISCONNECT (and publishes the will); the
/// client sees it lost. New connections are still relayed after a cut. Call `close()` at the end.
final class TCPRelay: @unchecked Sendable {
    // @unchecked: `connections` and `closed` are guarded by `lock`; the descriptors are closed
    // only by the thread that owns them, after removing them under the lock.
    let port: UInt16
    private let targetPort: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var connections: [Int32] = []
    private var closed = false

    init(to targetPort: UInt16) throws {
        self.targetPort = targetPort
        let (listener, port) = try Self.listeningSocket()
        self.listener = listener
        self.port = port
        Thread { [self] in acceptConnections() }.start()
    }

    /// Breaks every connection relayed right now.
    func cut() {
        lock.withLock {
            for descriptor in connections { shutdown(descriptor, Int32(SHUT_RDWR)) }
        }
    }

    /// Stops accepting and breaks every connection.
    func close() {
        let wasClosed = lock.withLock {
            defer { closed = true }
            return closed
        }
        guard !wasClosed else { return }
        shutdown(listener, Int32(SHUT_RDWR))  // wakes accept()
        cut()
    }

    /// A listening socket on 127.0.0.1 that never accepts: connections complete (the kernel does
    /// the handshake) but nobody ever reads or answers. Close `descriptor` when done.
    static func silentListener() throws -> (descriptor: Int32, port: UInt16) {
        try listeningSocket()
    }

    // MARK: Internals

    struct RelayError: Error, CustomStringConvertible {
        let description: String
        init(_ call: String, _ code: Int32) { description = "\(call): \(String(cString: strerror(code)))" }
    }

    /// A TCP socket listening on a free port of 127.0.0.1.
    private static func listeningSocket() throws -> (descriptor: Int32, port: UInt16) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw RelayError("socket", errno) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(descriptor, $0, length) }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else {
            let error = RelayError("bind/listen", errno)
            Glibc.close(descriptor)
            throw error
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return (descriptor, UInt16(bigEndian: address.sin_port))
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return address
    }

    private func acceptConnections() {
        defer { Glibc.close(listener) }
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: targetPort)
            let connected = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            let accepted: Bool = lock.withLock {
                guard connected == 0, !closed else { return false }
                connections += [client, upstream]
                return true
            }
            guard accepted else {
                Glibc.close(client)
                Glibc.close(upstream)
                continue
            }
            Thread { [self] in relay(client, upstream) }.start()
        }
    }

    /// Copies bytes both ways until either side ends or the connection is cut.
    private func relay(_ first: Int32, _ second: Int32) {
        var descriptors = [
            pollfd(fd: first, events: Int16(POLLIN), revents: 0), pollfd(fd: second, events: Int16(POLLIN), revents: 0),
        ]
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        pumping: while true {
            guard poll(&descriptors, 2, -1) > 0 else {
                if errno == EINTR { continue }
                break
            }
            for index in 0..<2 where descriptors[index].revents != 0 {
                let count = read(descriptors[index].fd, &buffer, buffer.count)
                guard count > 0 else { break pumping }
                let destination = descriptors[1 - index].fd
                var sent = 0
                while sent < count {
                    let written = buffer[sent..<count].withUnsafeBytes { write(destination, $0.baseAddress, $0.count) }
                    guard written > 0 else { break pumping }
                    sent += written
                }
            }
        }
        lock.withLock {
            shutdown(first, Int32(SHUT_RDWR))
            shutdown(second, Int32(SHUT_RDWR))
            connections.removeAll { $0 == first || $0 == second }
        }
        Glibc.close(first)
        Glibc.close(second)
    }
}
