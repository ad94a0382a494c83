import Dispatch
import Foundation

/// A UDP relay that loses a fraction of datagrams in each direction, in front of the simulator's
/// DTLS endpoint (`--drop-rate`), and on request exactly the next few of one direction
/// (`dropNext`). Each client address gets its own upstream socket, so the endpoint sees one peer
/// per client as it would without the relay.
final class LossyRelay: @unchecked Sendable {
    // @unchecked: all state is touched only on `queue`.
    private let queue = DispatchQueue(label: "tradfri.sim.relay")
    private let dropRate: Double
    private var random: SplitMix64
    private let listener: Int32
    private let upstreamPort: UInt16
    private var listenerSource: (any DispatchSourceRead)?
    private var peers: [String: Peer] = [:]
    /// Datagrams still to lose on purpose, towards the gateway and from it.
    private var scriptedToGateway = 0
    private var scriptedFromGateway = 0
    let port: UInt16

    private final class Peer {
        let socket: Int32
        let client: sockaddr_in
        var source: (any DispatchSourceRead)?
        init(socket: Int32, client: sockaddr_in) {
            self.socket = socket
            self.client = client
        }
    }

    enum Failure: Error, CustomStringConvertible {
        case bind(String)
        var description: String {
            switch self {
            case .bind(let message): "relay: \(message)"
            }
        }
    }

    init(listenHost: String, listenPort: UInt16, upstreamPort: UInt16, dropRate: Double, seed: UInt64?) throws {
        self.dropRate = dropRate
        random = SplitMix64(seed: seed ?? UInt64.random(in: 0...UInt64.max))
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = listenPort.bigEndian
        guard inet_pton(AF_INET, listenHost, &address.sin_addr) == 1 else {
            throw Failure.bind("'\(listenHost)' is not an IPv4 address")
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            close(fd)
            throw Failure.bind("cannot bind \(listenHost):\(listenPort): \(String(cString: strerror(errno)))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        let source = DispatchSource.makeReadSource(fileDescriptor: listener, queue: queue)
        source.setEventHandler { [weak self] in self?.fromClient() }
        listenerSource = source
        source.resume()
    }

    func stop() {
        queue.sync {
            listenerSource?.cancel()
            for peer in peers.values {
                peer.source?.cancel()
                close(peer.socket)
            }
            peers.removeAll()
            close(listener)
        }
    }

    /// Loses the next `toGateway` datagrams from clients and the next `fromGateway` datagrams to
    /// them (on top of the random loss).
    func dropNext(toGateway: Int, fromGateway: Int) {
        queue.sync {
            scriptedToGateway += max(toGateway, 0)
            scriptedFromGateway += max(fromGateway, 0)
        }
    }

    private func dropped(toGateway: Bool) -> Bool {
        if toGateway, scriptedToGateway > 0 {
            scriptedToGateway -= 1
            return true
        }
        if !toGateway, scriptedFromGateway > 0 {
            scriptedFromGateway -= 1
            return true
        }
        return dropRate > 0 && Double(random.next() >> 11) / Double(1 << 53) < dropRate
    }

    private func fromClient() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var client = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let count = withUnsafeMutablePointer(to: &client) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(listener, &buffer, buffer.count, 0, $0, &length)
            }
        }
        guard count > 0, !dropped(toGateway: true) else { return }
        let key = "\(client.sin_addr.s_addr):\(client.sin_port)"
        let peer = peers[key] ?? connectPeer(client, key: key)
        _ = send(peer.socket, buffer, count, 0)
    }

    private func connectPeer(_ client: sockaddr_in, key: String) -> Peer {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var upstream = sockaddr_in()
        upstream.sin_family = sa_family_t(AF_INET)
        upstream.sin_port = upstreamPort.bigEndian
        upstream.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &upstream) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        let peer = Peer(socket: fd, client: client)
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setEventHandler { [weak self, weak peer] in
            guard let self, let peer else { return }
            self.fromServer(peer)
        }
        peer.source = source
        source.resume()
        peers[key] = peer
        return peer
    }

    private func fromServer(_ peer: Peer) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(peer.socket, &buffer, buffer.count, 0)
        guard count > 0, !dropped(toGateway: false) else { return }
        var client = peer.client
        _ = withUnsafePointer(to: &client) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(listener, buffer, count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }
}

/// A small seedable generator (SplitMix64), so a given `--drop-seed` loses the same datagrams
/// every run (and the soak's seed chooses the same lights and commands).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
