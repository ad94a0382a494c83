import Foundation
import TestSupport
import Testing

/// The broker and the gateway configured by host name, and the name server takes the queries but
/// never answers (a router that is down at boot, a resolver that hangs). What a user and systemd
/// notice: the watchdog keeps being pinged while the lookups hang (waiting on DNS is not a stuck
/// loop; systemd must not restart the bridge in a loop through a DNS outage), and `systemctl
/// stop` ends it within 2 s, in the middle of the lookups.
@Suite struct DNSOutageTests {
    @Test(arguments: [SIGTERM, SIGINT])
    func whileLookupsHangTheWatchdogIsPingedAndAStopEndsTheBridgeAtOnce(_ signal: Int32) async throws {
        let harness = try await BridgeHarness()
        // A name server of its own on a loopback address of its own (several run at once), seen
        // only by the bridge: a private mount of /etc/resolv.conf (unshare -m).
        let nameServer = "127.0.\(Int.random(in: 1...254)).\(Int.random(in: 2...254))"
        let server = try ChildProcess(
            "python3",
            [
                "-u", "-c",
                """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("\(nameServer)", 53))
                print("listening", flush=True)
                while True:
                    data, peer = s.recvfrom(4096)
                    labels, i = [], 12
                    while i < len(data) and data[i] != 0:
                        labels.append(data[i + 1:i + 1 + data[i]].decode("ascii", "replace"))
                        i += 1 + data[i]
                    print("query", ".".join(labels), flush=True)
                """,
            ], name: "silent-dns")
        try await server.waitForLine(containing: "listening")
        let resolv = harness.directory.appendingPathComponent("resolv.conf").path
        try "nameserver \(nameServer)\noptions timeout:30 attempts:1\n".write(
            toFile: resolv, atomically: true, encoding: .utf8)

        var configuration = harness.testConfiguration()
        configuration = configuration.replacingOccurrences(
            of: "address: \(harness.gateway)", with: "address: gateway.dns-outage.test:\(harness.gatewayPort)")
        configuration = configuration.replacingOccurrences(
            of: "server: \(harness.broker.url)", with: "server: mqtt://broker.dns-outage.test:\(harness.broker.port)")
        #expect(configuration.contains("gateway.dns-outage.test") && configuration.contains("broker.dns-outage.test"))
        let configFile = harness.directory.appendingPathComponent("dns-outage.yaml").path
        try configuration.write(toFile: configFile, atomically: true, encoding: .utf8)
        let binary = try ChildProcess.locate("tradfri-bridge")
        let systemd = try FakeSystemd()
        defer { systemd.close() }
        // unshare and sh exec the bridge: the process signalled below is the bridge itself.
        let bridge = try ChildProcess(
            "unshare",
            [
                "-m", "--propagation", "private", "sh", "-c",
                "mount --bind \"$0\" /etc/resolv.conf && exec \"$1\" run --config \"$2\"", resolv, binary, configFile,
            ], environment: systemd.environment(watchdog: .seconds(4)), name: "bridge")
        try await harness.run(killing: [bridge, server]) {
            // Both lookups are under way: the name server saw the broker's and the gateway's.
            for name in ["broker.dns-outage.test", "gateway.dns-outage.test"] {
                do {
                    try await server.waitForLine(containing: "query \(name)", within: .seconds(20))
                } catch {
                    Issue.record("no lookup of \(name); the bridge said:\n\(bridge.outputText)")
                    throw error
                }
            }
            // The watchdog's rounds are 1 s and a loop silent for two of them stops the pings:
            // eight pings in a row are eight seconds of lookups with the loops turning.
            let mark = systemd.count
            try await systemd.waitForPings(8, from: mark, within: .seconds(20))
            #expect(bridge.isRunning)

            let sent = ContinuousClock.now
            bridge.signal(signal)
            let status = try await bridge.waitForExit(within: .seconds(2))
            print("stop during a DNS outage: \(ContinuousClock.now - sent)")
            #expect(status == 0, "\(bridge.outputText)")
            #expect(!bridge.outputText.contains("no sign of life"), "\(bridge.outputText)")
        }
    }
}
