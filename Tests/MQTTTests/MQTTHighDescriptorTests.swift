import Foundation
import MQTT
import TestSupport
import Testing

/// A client whose sockets have descriptors of 1024 (FD_SETSIZE) or more, as in a daemon with many
/// open connections. libmosquitto's own loop, `mosquitto_loop`, waits with select(2) and refuses
/// such a client (`MOSQ_ERR_INVAL`), so it could never connect; the session's poll(2) loop serves
/// it like any other.
@Suite struct MQTTHighDescriptorTests {
    /// select(2)'s limit (`FD_SETSIZE` in <sys/select.h>).
    static let selectLimit: Int32 = 1024

    @Test func connectsPublishesAndReceivesWithDescriptorsAbove1024() async throws {
        let broker = try await MosquittoBroker()
        let filler = try DescriptorFiller(upTo: 1100)
        defer { filler.close() }

        // The descriptors below 1100 are all taken, so the client's gets higher ones, unless a
        // test running alongside closes one of its own meanwhile; then fill again and retry.
        var connection: (client: MQTTClient, events: EventLog)?
        for _ in 1...3 {
            filler.fillHoles()
            let (client, events) = try await connectedClient(configuration(for: broker))
            let sockets = try tcpSockets(connectedTo: broker.port)
            if let socket = sockets.first, sockets.count == 1, socket >= Self.selectLimit {
                connection = (client, events)
                break
            }
            await client.disconnect()
        }
        let (client, events) = try #require(connection, "the client never got a descriptor ≥ 1024")

        #expect(try await client.subscribe(["fd/#"], qos: .atLeastOnce) == [.atLeastOnce])
        try client.publish(MQTTMessage(topic: "fd/zero", text: "qos 0"))
        let zero = try await events.message(on: "fd/zero")
        #expect(zero.text == "qos 0")
        try await client.publish(
            MQTTMessage(topic: "fd/one", text: "qos 1", qos: .atLeastOnce), acknowledgedWithin: .seconds(5))
        let one = try await events.message(on: "fd/one")
        #expect(one.text == "qos 1")
        #expect(one.qos == .atLeastOnce)

        // And from another client, through the broker.
        try await broker.publish(["-t", "fd/other", "-m", "from mosquitto_pub", "-q", "1"])
        #expect(try await events.message(on: "fd/other").text == "from mosquitto_pub")

        await client.disconnect()
        try await events.end()
    }
}

/// Holds open /dev/null descriptors so that every number below `upTo` is taken, raising the soft
/// RLIMIT_NOFILE if it is too low for that (and putting it back on `close()`).
private final class DescriptorFiller: @unchecked Sendable {
    // @unchecked: used by one test, on one task at a time; `lock` guards `descriptors` anyway.
    private let lock = NSLock()
    private var descriptors: [Int32] = []
    private let target: Int32
    private let originalLimit: rlimit

    init(upTo target: Int32) throws {
        self.target = target
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw SystemCallFailed.current("getrlimit") }
        originalLimit = limit
        let needed = rlim_t(target) + 512
        if limit.rlim_cur < needed {
            guard limit.rlim_max >= needed else {
                throw SystemCallFailed(description: "the hard RLIMIT_NOFILE \(limit.rlim_max) is below \(needed)")
            }
            limit.rlim_cur = needed
            guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
                throw SystemCallFailed.current("setrlimit")
            }
        }
        fillHoles()
    }

    /// Opens descriptors until one gets a number of at least `target` (the kernel hands out the
    /// lowest free number, so every lower one is then taken).
    func fillHoles() {
        lock.withLock {
            while true {
                let descriptor = open("/dev/null", O_RDONLY | O_CLOEXEC)
                guard descriptor >= 0 else { return }
                descriptors.append(descriptor)
                if descriptor >= target { return }
            }
        }
    }

    func close() {
        lock.withLock {
            for descriptor in descriptors { _ = Glibc.close(descriptor) }
            descriptors.removeAll()
            var limit = originalLimit
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
    }
}

private struct SystemCallFailed: Error, CustomStringConvertible {
    let description: String

    /// `what` failed, for the reason in `errno`.
    static func current(_ what: String) -> Self {
        Self(description: "\(what): \(String(cString: strerror(errno)))")
    }
}

/// This process's descriptors of established TCP connections to `port` (found through the
/// socket inodes in /proc/net/tcp{,6} and the links in /proc/self/fd).
private func tcpSockets(connectedTo port: UInt16) throws -> [Int32] {
    var inodes: Set<String> = []
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = readProcFile(table) else { continue }
        // "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …"
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 9 else { continue }
            let remote = fields[2].split(separator: ":")
            guard remote.count == 2, UInt16(remote[1], radix: 16) == port, fields[3] == "01" else { continue }
            inodes.insert("socket:[\(fields[9])]")
        }
    }
    let manager = FileManager.default
    return try manager.contentsOfDirectory(atPath: "/proc/self/fd").compactMap { name in
        guard let target = try? manager.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
            inodes.contains(target)
        else { return nil }
        return Int32(name)
    }
}

/// The whole of a /proc file. (Read to the end by hand: the kernel hands out such a table a page
/// per read, and `String(contentsOfFile:)` took the first page for all of it.)
private func readProcFile(_ path: String) -> String? {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return count == 0 ? String(decoding: bytes, as: UTF8.self) : nil }
        bytes += chunk[..<count]
    }
}
