import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// A whole installation on loopback, from real parts: mosquitto, the gateway simulator binary,
/// the bridge binary, mosquitto_pub / mosquitto_sub, and coap-client-openssl acting as the IKEA
/// app (with an identity of its own).
final class BridgeHarness: @unchecked Sendable {
    // @unchecked: mutated only by the test that owns the harness, one step at a time.
    static let securityCode = SimulatedGateway.securityCode
    let directory: URL
    let broker: MosquittoBroker
    /// The gateway of a one-gateway set-up (paired without a name, `gateway:` section).
    let primary: SimulatedGateway
    private(set) var bridge: ChildProcess?
    /// Added to every mosquitto_sub / mosquitto_pub (e.g. `-u admin -P …` on a broker without
    /// anonymous access).
    var clientArguments: [String] = []

    var credentials: String { directory.appendingPathComponent("credentials.json").path }
    var configFile: String { directory.appendingPathComponent("config.yaml").path }
    var simulator: ChildProcess { primary.simulator }
    var gatewayPort: UInt16 { primary.port }
    var requestLog: String { primary.requestLog }
    var gateway: String { primary.address }

    /// Starts the broker and the simulator, and pairs the bridge.
    init(simulatorArguments: [String] = [], brokerOptions: MosquittoBroker.Options = .init()) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("bridge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        broker = try await MosquittoBroker(brokerOptions)
        primary = try await SimulatedGateway(directory: directory, extra: simulatorArguments)
        let paired = try await runCommand(
            "tradfri-bridge",
            ["auth", "--gateway", primary.address, "--security-code", Self.securityCode, "--credentials", credentials])
        #expect(paired.status == 0)
    }

    /// Starts one more simulator (its own directory, request log and gateway id) and pairs it
    /// under `name` in the same credentials file.
    func addGateway(name: String, id: String, extra: [String] = []) async throws -> SimulatedGateway {
        let folder = directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let gateway = try await SimulatedGateway(directory: folder, extra: ["--gateway-id", id] + extra)
        let paired = try await runCommand(
            "tradfri-bridge",
            [
                "auth", "--gateway", gateway.address, "--security-code", Self.securityCode, "--credentials",
                credentials, "--name", name,
            ])
        #expect(paired.status == 0, "\(paired.output)")
        return gateway
    }

    /// Starts the bridge binary with a configuration tuned for fast recovery in tests.
    /// - Parameters:
    ///   - extraConfiguration: more top-level sections (YAML).
    ///   - mqttConfiguration: more keys of the `mqtt` section, each line indented by two spaces.
    ///   - gatewayConfiguration: more keys of the `gateway` section, each line indented by two spaces
    ///     (`command_spacing` replaces the harness's 0.5 s).
    ///   - environment: added to the bridge's environment.
    func startBridge(
        extraConfiguration: String = "", mqttConfiguration: String = "", gatewayConfiguration: String = "",
        environment: [String: String] = [:]
    ) async throws {
        let ready = try await subscribe(["tradfri/bridge/groups"])
        try launchBridge(
            configuration: testConfiguration(
                extraConfiguration: extraConfiguration, mqttConfiguration: mqttConfiguration,
                gatewayConfiguration: gatewayConfiguration),
            environment: environment)
        // bridge/groups is published after the first full sync.
        try await ready.waitForLine(within: .seconds(20), "the first full sync") {
            $0.hasPrefix("tradfri/bridge/groups [")
        }
        ready.signal(SIGTERM)
    }

    /// The configuration `startBridge` runs with: this harness's gateway and broker, tuned for
    /// fast recovery.
    func testConfiguration(
        extraConfiguration: String = "", mqttConfiguration: String = "", gatewayConfiguration: String = ""
    ) -> String {
        """
        gateway:
          address: \(gateway)
          credentials: \(credentials)
          keepalive: 1
          request_timeout: 2
          reconnect_max_delay: 2
        \(gatewayConfiguration.contains("command_spacing:") ? "" : "  command_spacing: 0.5")
        \(gatewayConfiguration)
        mqtt:
          server: \(broker.url)
          client_id: bridge-under-test-\(UUID().uuidString.prefix(6))
        \(mqttConfiguration)
        discovery:
          enabled: false
          advertise: false
        \(extraConfiguration)
        """
    }

    /// A configuration with a `gateways:` list of `entries` (each from `gatewayEntry`), this
    /// harness's broker and discovery off; `extra`: more top-level sections (YAML).
    func gatewaysConfiguration(_ entries: [String], extra: String = "") -> String {
        """
        gateways:
        \(entries.joined(separator: "\n"))
        mqtt:
          server: \(broker.url)
          client_id: bridge-under-test-\(UUID().uuidString.prefix(6))
        discovery:
          enabled: false
          advertise: false
        \(extra)
        """
    }

    /// Runs `body` (a test with processes of its own, and gateways added to this harness), then
    /// kills `processes` and shuts everything down, also when `body` fails.
    func run(
        killing processes: [ChildProcess], gateways: [SimulatedGateway] = [], _ body: () async throws -> Void
    ) async throws {
        do {
            try await body()
        } catch {
            for process in processes { process.signal(SIGKILL) }
            await shutdown(gateways)
            throw error
        }
        for process in processes { process.signal(SIGKILL) }
        await shutdown(gateways)
    }

    /// One entry of a `gateways:` list for `gateway` (the harness's credentials, quick timing),
    /// indented for the list.
    func gatewayEntry(_ name: String, id: String, _ gateway: SimulatedGateway, commandSpacing: Double? = nil) -> String
    {
        """
          - name: \(name)
            id: \(id)
            address: \(gateway.address)
            credentials: \(credentials)
            keepalive: 1
            request_timeout: 2
            reconnect_max_delay: 2
        """ + (commandSpacing.map { "\n    command_spacing: \($0)" } ?? "")
    }

    /// Writes `configuration` as the bridge's configuration file and starts `tradfri-bridge run`
    /// with it, as systemd does; returns at once. Without a `web:` section the web page listens
    /// on a free loopback port (several bridges run at once; the default 8080 fits only one).
    @discardableResult
    func launchBridge(configuration: String, environment: [String: String] = [:]) throws -> ChildProcess {
        var configuration = configuration
        if !configuration.hasPrefix("web:"), !configuration.contains("\nweb:") {
            configuration += "\nweb:\n  listen: 127.0.0.1:0\n"
        }
        try configuration.write(toFile: configFile, atomically: true, encoding: .utf8)
        let started = try ChildProcess("tradfri-bridge", ["run", "--config", configFile], environment: environment)
        bridge = started
        return started
    }

    func stopBridge() async -> Int32? {
        guard let bridge else { return nil }
        bridge.signal(SIGTERM)
        let status = try? await bridge.waitForExit(within: .seconds(10))
        self.bridge = nil
        return status
    }

    /// Kills the bridge (SIGKILL): no `offline` of its own, the broker publishes its MQTT will.
    func killBridge() async {
        guard let bridge else { return }
        bridge.signal(SIGKILL)
        _ = try? await bridge.waitForExit(within: .seconds(10))
        self.bridge = nil
    }

    // MARK: The gateway

    /// Stops the simulator (killed outright unless `signal` says otherwise) and starts it again
    /// on the same port and state directory.
    func restartSimulator(signal: Int32 = SIGKILL, extra: [String] = []) async throws {
        try await primary.restart(signal: signal, extra: extra)
    }

    /// A control command to the simulator (as the IKEA app or a remote would change things).
    func control(_ command: String) async throws { try await primary.control(command) }

    /// `coap-client-openssl` with an identity of its own, as another client of the gateway.
    func coap(_ method: String = "get", _ path: String, _ body: String? = nil) async throws -> String {
        try await primary.coap(method, path, body)
    }

    func device(_ id: Int) async throws -> Device { try await primary.device(id) }

    /// The requests the simulator received, oldest first.
    func requests() throws -> [JSON] { try primary.requests() }

    // MARK: MQTT

    /// `mosquitto_sub -v` on `topics`; lines are "topic payload".
    func subscribe(_ topics: [String], _ extra: [String] = []) async throws -> ChildProcess {
        try await broker.subscriber(["-v"] + clientArguments + topics.flatMap { ["-t", $0] } + extra)
    }

    func publish(_ topic: String, _ message: String, retain: Bool = false) async throws {
        try await broker.publish(clientArguments + ["-t", topic, "-m", message] + (retain ? ["-r"] : []))
    }

    func shutdown(_ others: [SimulatedGateway] = []) async {
        _ = await stopBridge()
        for gateway in [primary] + others { await gateway.simulator.stop() }
        await broker.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Waits for a `mosquitto_sub -v` line on `topic` whose JSON payload satisfies `predicate`.
@discardableResult
func message(
    on topic: String, from subscriber: ChildProcess, within limit: Duration = .seconds(10), after: Int = 0,
    where predicate: @escaping @Sendable (JSON) -> Bool = { _ in true }
) async throws -> JSON {
    let line = try await subscriber.waitForLine(within: limit, "a message on \(topic)", after: after) { line in
        guard line.hasPrefix(topic + " ") else { return false }
        guard let json = try? JSON(parsing: String(line.dropFirst(topic.count + 1))) else { return false }
        return predicate(json)
    }
    return try JSON(parsing: String(line.dropFirst(topic.count + 1)))
}

/// The `command_error` event for `topic`.
@discardableResult
func commandError(
    for topic: String, from subscriber: ChildProcess, within limit: Duration = .seconds(10), after: Int = 0
) async throws -> String {
    let event = try await message(on: "tradfri/bridge/event", from: subscriber, within: limit, after: after) {
        $0["type"] == "command_error" && $0["data"]?["topic"]?.stringValue == topic
    }
    return event["data"]?["error"]?.stringValue ?? ""
}
