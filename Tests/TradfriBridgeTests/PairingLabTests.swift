import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// Legacy pairing across a LAN of network namespaces: the bridge's host (mosquitto with dynamic
/// security, the simulator, the bridge on port 80), an EmonESP host and an intruder host.
@Suite(.needsNetworkLab, .serialized, .timeLimit(.minutes(5)))
struct PairingLabTests {
    @Test func onlyTheApprovedHostCollectsAndTheBroadcastReachesTheLAN() async throws {
        let lab = try await NetworkLab.start(hosts: ["base", "emonesp", "intruder"], avahi: false)
        defer { lab.shutdown() }
        let base = lab["base"]
        let state = lab.directory + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)

        // The base station: mosquitto with dynamic security, set up like README says.
        try await runCommand("mosquitto_ctrl", ["dynsec", "init", "\(state)/dynsec.json", "admin", "adminpassword"])
        try """
        per_listener_settings false
        allow_anonymous false
        plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so
        plugin_opt_config_file \(state)/dynsec.json
        listener 1883 0.0.0.0
        """.write(toFile: "\(state)/mosquitto.conf", atomically: true, encoding: .utf8)
        let mosquitto = try base.spawn("mosquitto", ["-c", "\(state)/mosquitto.conf"])
        try await mosquitto.waitForLine(within: .seconds(20), "mosquitto") { $0.contains("running") }
        try await base.run(
            PairingHarness.repository.appendingPathComponent("packaging/mosquitto/setup-dynsec.sh").path,
            [
                "-u", "admin", "-P", "adminpassword", "--bridge-password-file", "\(state)/bridge-password",
                "--pairing-password-file", "\(state)/pairing-password",
            ])
        let simulator = try base.spawn(
            "tradfri-gateway-sim",
            [
                "--listen", "127.0.0.1:5684", "--security-code",
                "LABSECURITYCODE1", "--state-dir", "\(state)/sim",
            ])
        try await simulator.waitForLine(within: .seconds(20), "the simulator") { $0.contains("listening on") }
        try await base.run(
            "tradfri-bridge",
            [
                "auth", "--gateway", "127.0.0.1:5684", "--security-code", "LABSECURITYCODE1",
                "--credentials", "\(state)/credentials.json",
            ])
        let config = "\(state)/bridge.yaml"
        try """
        gateway:
          address: 127.0.0.1:5684
          credentials: \(state)/credentials.json
        mqtt:
          server: mqtt://127.0.0.1:1883
          user: tradfri-bridge
          password_file: \(state)/bridge-password
        discovery:
          enabled: false
        pairing:
          enabled: true
          listen: 0.0.0.0:8443
          legacy: true
          legacy_listen: 0.0.0.0:80
          legacy_broadcast: true
          control_socket: \(state)/control.sock
          registry: \(state)/paired-devices.json
          audit_log: \(state)/audit.log
          broker_admin_user: tradfri-pairing
          broker_admin_password_file: \(state)/pairing-password
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let bridge = try base.spawn("tradfri-bridge", ["run", "--config", config])
        try await bridge.waitForLine(within: .seconds(30), "pairing ready") { $0.contains("pairing ready") }

        // The EmonESP host listens for the base station's broadcast, as the firmware does.
        let listener = try lab["emonesp"].spawn(
            "python3",
            [
                "-c",
                """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("", 5005))
                data, (host, port) = s.recvfrom(256)
                print("broadcast", data.decode(), "from", host, flush=True)
                """,
            ])
        let pair = { (arguments: [String]) in
            try await runCommand("tradfri-bridge", ["pair"] + arguments + ["--socket", "\(state)/control.sock"])
        }
        _ = try await pair(["open", "--legacy", "--minutes", "3"])
        try await listener.waitForLine(within: .seconds(15), "the emonpi.local broadcast") {
            $0 == "broadcast emonpi.local from \(base.address)"
        }

        // EmonESP polls every 10 s, as the firmware does.
        let emonesp = try lab["emonesp"].spawn(PairingHarness.script("fake-emonesp.sh"), [base.address])
        try await emonesp.waitForLine(within: .seconds(15), "the first answer") { $0.contains("request registered") }
        let list = try await pair(["list", "--json"]).output
        let request = try #require(
            try JSON(parsing: list.trimmingCharacters(in: .whitespacesAndNewlines)).arrayValue?.first {
                $0["ip"]?.stringValue == lab["emonesp"].address
            })
        // The prompt shows the device's MAC, from the base station's neighbour table.
        #expect(request["mac"]?.stringValue?.count == 17, "\(request)")
        _ = try await pair(["allow", try #require(request["id"]?.stringValue)])

        // The intruder asks from another address during the grant: it gets nothing.
        let stolen = try await lab["intruder"].run(
            "curl", ["-s", "http://\(base.address)/emoncms/device/auth/request.json"])
        #expect(stolen.output == "request registered", "\(stolen.output)")

        // The approved EmonESP collects at its next poll and uses the credentials on the base's broker.
        try await emonesp.waitForLine(within: .seconds(25), "the credentials") { $0.contains("got credentials") }
        try await emonesp.waitForLine(within: .seconds(15), "the publish") {
            $0.contains("published to devices/emonesp-")
        }
        try await bridge.waitForLine(within: .seconds(10), "the bridge to see the device's first message") {
            $0.contains("device connected to the broker")
        }
        let devices = try await pair(["devices"]).output
        #expect(devices.contains(lab["emonesp"].address) && devices.contains("connected"), "\(devices)")
        // And the intruder, asking again, still gets nothing.
        let again = try await lab["intruder"].run("curl", ["-s", "http://\(base.address)/device/auth/request.json"])
        #expect(again.output == "request registered")
    }
}
