import Foundation

/// The broker for one benchmark run: `/usr/sbin/mosquitto` on a free loopback port, with a
/// throw-away configuration (anonymous, no persistence, errors and warnings logged only).
final class Mosquitto: Sendable {
    let port: UInt16
    let directory: String
    let process: Spawned

    init(executable: String = "/usr/sbin/mosquitto") async throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw BenchError("\(executable) not found (install the 'mosquitto' package)")
        }
        directory = NSTemporaryDirectory() + "tradfri-bench-mosquitto-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var lastOutput = ""
        for _ in 0..<5 {
            let port = freeTCPPort()
            var lines = [
                "listener \(port) 127.0.0.1", "allow_anonymous true", "persistence false",
                "log_dest stderr", "log_type error", "log_type warning",
            ]
            // As root, mosquitto would switch to the 'mosquitto' user.
            if getuid() == 0 { lines.append("user root") }
            let file = directory + "/mosquitto.conf"
            try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let process = try Spawned(executable, ["-c", file])
            if await Self.accepts(port: port, within: .seconds(5)) {
                self.port = port
                self.process = process
                return
            }
            lastOutput = process.output
        }
        throw BenchError("mosquitto did not start:\n\(lastOutput)")
    }

    func stop() async {
        await process.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func accepts(port: UInt16, within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = loopback(port)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            close(fd)
            if connected == 0 { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

func loopback(_ port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    return address
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freeTCPPort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopback(0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return UInt16(bigEndian: address.sin_port)
}
