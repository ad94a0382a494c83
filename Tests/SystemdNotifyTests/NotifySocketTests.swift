import Foundation
import SystemdNotify
import TestSupport
import Testing

/// The notify protocol as systemd reads it: a datagram of `KEY=value` lines on the socket
/// `$NOTIFY_SOCKET` names (a path, or an abstract name written with `@`).
@Suite struct NotifySocketTests {
    @Test func aNotificationArrivesAsOneDatagramOfLines() async throws {
        let systemd = try FakeSystemd()
        defer { systemd.close() }
        let socket = try #require(NotifySocket(environment: systemd.environment()))
        try socket.send([.ready, .status("1 of 1 gateway connected\nsecond line"), .watchdog])
        let notification = try await systemd.wait(for: "READY", "1")
        #expect(
            notification.lines == ["READY=1", "STATUS=1 of 1 gateway connected second line", "WATCHDOG=1"],
            "a newline in a value would start a line of its own")
        try socket.send(.stopping)
        try await systemd.wait(for: "STOPPING", "1")
    }

    @Test func anAbstractSocketIsReachedByItsAtName() async throws {
        let name = "tradfri-test-\(UUID().uuidString.prefix(8))"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(bound == 0)
        let socket = try #require(NotifySocket(environment: ["NOTIFY_SOCKET": "@" + name]))
        try socket.send(.watchdog)
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(String(decoding: buffer.prefix(max(0, count)), as: UTF8.self) == "WATCHDOG=1")
    }

    @Test func withoutASocketThereIsNothingToTalkTo() {
        #expect(NotifySocket(environment: [:]) == nil)
        #expect(NotifySocket(environment: ["NOTIFY_SOCKET": ""]) == nil)
        #expect(NotifySocket(environment: ["NOTIFY_SOCKET": "vsock:2:999"]) == nil, "not a family spoken here")
        #expect(NotifySocket(environment: ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)]) == nil)
    }

    @Test func aSocketNobodyListensOnIsAnErrorNotAHang() throws {
        let socket = try #require(NotifySocket(environment: ["NOTIFY_SOCKET": "/nonexistent/notify"]))
        #expect(throws: NotifySocket.Failure.self) { try socket.send(.ready) }
    }

    /// As `sd_watchdog_enabled(3)`: on only with a positive WATCHDOG_USEC, and only for the
    /// process WATCHDOG_PID names, if it names one.
    @Test func theWatchdogIntervalIsHonouredForThisProcessOnly() {
        let me = "\(getpid())"
        #expect(NotifySocket.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000"]) == .seconds(30))
        #expect(
            NotifySocket.watchdogInterval(environment: ["WATCHDOG_USEC": "2500000", "WATCHDOG_PID": me])
                == .milliseconds(2500))
        #expect(NotifySocket.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"]) == nil)
        #expect(NotifySocket.watchdogInterval(environment: ["WATCHDOG_USEC": "0"]) == nil)
        #expect(NotifySocket.watchdogInterval(environment: ["WATCHDOG_USEC": "soon"]) == nil)
        #expect(NotifySocket.watchdogInterval(environment: [:]) == nil)
    }
}
