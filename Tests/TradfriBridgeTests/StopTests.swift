import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

@testable import TradfriBridge

/// What a user (and systemd) notices on `systemctl stop`: the bridge binary, started with a
/// configuration file, ends within 2 s of SIGTERM or SIGINT with status 0, having published
/// `bridge/state` offline whenever the broker is there, whatever state it is in.
@Suite(.serialized) struct StopTests {
    /// The states a stop has to cope with. Everything not named stays at its default (mDNS on,
    /// advertising on, the timeouts of the example configuration); this machine runs no
    /// avahi-daemon in its own network namespace.
    enum SetUp: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case defaultsWithoutAvahi = "defaults, no avahi-daemon"
        case discoveryOff = "discovery.enabled false"
        case advertiseOff = "discovery.advertise false"
        case pairingOn = "pairing on"
        /// Pairing's start waits for its broker account's connection.
        case pairingOnBrokerUnreachable = "pairing on, broker unreachable"
        /// The gateway's address answers nothing (no ICMP either): a handshake is under way.
        case gatewayUnreachable = "gateway unreachable"
        /// Nothing listens on the broker's port: the client is between attempts.
        case brokerUnreachable = "broker unreachable"
        /// The broker froze while connected (its host hangs): the offline message is not
        /// acknowledged.
        case brokerNotAnswering = "broker not answering"
        /// The gateway announced a reboot and is away: the link is reconnecting.
        case gatewayRebooting = "gateway rebooting"
        /// `bridge/request/resync` is running and the gateway stopped answering mid-way.
        case resyncRunning = "resync running"
        /// The gateway forgot the bridge's identity: the link waits long between attempts and
        /// the credentials file is watched.
        case pairingNeeded = "pairing needed"
        /// Under systemd (Type=notify, WatchdogSec=): the watchdog's rounds and probes run, and
        /// health and /metrics are on.
        case underSystemd = "under systemd with the watchdog, health and metrics"
        /// A logged-in browser holds the web page's live event stream open (it never ends by
        /// itself).
        case webStreamOpen = "web page open with its live stream"
        /// Hundreds of clients are half-way through their requests on the web page and both
        /// pairing endpoints (one byte at a time; bodies too).
        case slowClients = "slow clients mid-request on every HTTP endpoint"

        var testDescription: String { rawValue }
        var brokerIsThere: Bool { self != .brokerUnreachable && self != .pairingOnBrokerUnreachable }
        var pairing: Bool { self == .pairingOn || self == .pairingOnBrokerUnreachable || self == .slowClients }
    }

    static let signals: [Int32] = [SIGTERM, SIGINT]

    @Test(arguments: SetUp.allCases, signals)
    func theBridgeStopsWithinTwoSecondsWithStatusZeroAndPublishesOffline(
        _ setUp: SetUp, _ signal: Int32
    ) async throws {
        let harness =
            setUp.pairing
            ? try await PairingHarness.dynamicSecurityInstallation()
            : try await BridgeHarness(simulatorArguments: setUp == .gatewayRebooting ? ["--reboot-delay", "60"] : [])
        let silentGateway = try SilentUDPPort()
        let state = try await harness.subscribe(["tradfri/bridge/state"])
        let systemd = try FakeSystemd()
        let passwordFile = harness.directory.appendingPathComponent("state/web-password").path
        try WebPassword.make(user: "admin", password: WebHarness.password).store(path: passwordFile)
        let legacyPort = freePort()
        let bridge = try harness.launchBridge(
            configuration: Self.configuration(
                for: setUp, harness, silentGateway: silentGateway, legacyPort: legacyPort),
            environment: setUp == .underSystemd ? systemd.environment(watchdog: .seconds(2)) : [:])
        var helpers: [ChildProcess] = []

        // Bring the bridge into the state to be stopped in, and check that it is there.
        if setUp.brokerIsThere {
            try await message(on: "tradfri/bridge/state", from: state, within: .seconds(20)) { $0["state"] == "online" }
        }
        switch setUp {
        case .defaultsWithoutAvahi:
            // The advertiser found no daemon and waits to try again.
            try await bridge.waitForLine(containing: "mDNS (avahi-daemon) is not reachable")
            try await bridge.waitForLine(containing: "connected to the gateway")
        case .discoveryOff, .advertiseOff:
            try await bridge.waitForLine(containing: "connected to the gateway")
        case .pairingOn:
            try await bridge.waitForLine(containing: "pairing ready")
            try await bridge.waitForLine(containing: "connected to the gateway")
        case .gatewayUnreachable:
            // The first handshake lasts gateway.request_timeout (10 s): it is still under way.
            #expect(!bridge.outputText.contains("cannot connect to the gateway"))
        case .brokerUnreachable, .pairingOnBrokerUnreachable:
            try await bridge.waitForLine(containing: "cannot reach the broker")
            try await bridge.waitForLine(containing: "connected to the gateway")
        case .brokerNotAnswering:
            try await bridge.waitForLine(containing: "connected to the gateway")
            harness.broker.signal(SIGSTOP)
        case .gatewayRebooting:
            try await bridge.waitForLine(containing: "connected to the gateway")
            harness.simulator.signal(SIGUSR1)
            try await bridge.waitForLine(containing: "the gateway announced a reboot")
            try await bridge.waitForLine(containing: "cannot connect to the gateway")
        case .resyncRunning:
            let groups = try await harness.subscribe(["tradfri/bridge/groups"])
            try await groups.waitForLine(within: .seconds(20), "the first full sync") {
                $0.hasPrefix("tradfri/bridge/groups [")
            }
            harness.simulator.signal(SIGSTOP)
            try await harness.publish("tradfri/bridge/request/resync", "{}")
            try await bridge.waitForLine { $0.contains("request") && $0.contains("verb=resync") }
        case .pairingNeeded:
            try await bridge.waitForLine(containing: "connected to the gateway")
            try await harness.control("forget-identity all")
            try await bridge.waitForLine(within: .seconds(20), "the identity refused") {
                $0.contains("no longer knows the bridge's identity")
            }
        case .underSystemd:
            try await systemd.wait(for: "READY", "1", within: .seconds(20))
            try await systemd.waitForPings(2)
            try await bridge.waitForLine(containing: "serving Prometheus metrics")
        case .webStreamOpen:
            let url = try await WebHarness.url(of: bridge)
            let client = WebClient(url: url, jar: harness.directory.appendingPathComponent("jar").path)
            #expect(try await client.login().status == 200)
            let stream = try ChildProcess("curl", ["-sN", "-b", client.jar, url + "api/events"], name: "event stream")
            try await stream.waitForLine(containing: "event: home")
            helpers.append(stream)
        case .slowClients:
            let url = try await WebHarness.url(of: bridge)
            try await bridge.waitForLine(containing: "pairing ready")
            let securePort = try #require(
                bridge.outputText.components(separatedBy: "(port ").last?.split(separator: ")").first)
            for arguments in [
                ["\(url)api/session", "100"],
                ["https://127.0.0.1:\(securePort)/pairing/v1/request", "100", "--handshake", "50"],
                ["http://127.0.0.1:\(legacyPort)/device/auth/request.json", "50"],
                ["http://127.0.0.1:\(legacyPort)/device/auth/request.json", "50", "--fast-head", "4096"],
            ] {
                let crawlers = try ChildProcess(
                    "/usr/bin/python3", [PairingHarness.script("http_abuse.py"), "slow"] + arguments + ["--hold"],
                    name: "slow clients")
                try await crawlers.waitForLine(containing: "\"connected\"")
                helpers.append(crawlers)
            }
        }

        let mark = state.lineCount
        let sent = ContinuousClock.now
        bridge.signal(signal)
        let status = try await bridge.waitForExit(within: .seconds(2))
        let elapsed = ContinuousClock.now - sent
        print("stop time: \(setUp.rawValue), \(signal == SIGTERM ? "SIGTERM" : "SIGINT"): \(elapsed)")
        #expect(status == 0, "\(bridge.outputText)")
        #expect(elapsed <= .seconds(2))
        if setUp == .brokerNotAnswering {
            // The bridge did not wait for the acknowledgement, but the message was sent: once
            // the broker runs again, it holds offline.
            harness.broker.signal(SIGCONT)
            let late = try await harness.subscribe(["tradfri/bridge/state"])
            try await message(on: "tradfri/bridge/state", from: late) { $0["state"] == "offline" }
        } else if setUp.brokerIsThere {
            try await message(on: "tradfri/bridge/state", from: state, after: mark) { $0["state"] == "offline" }
            #expect(!bridge.outputText.contains("could not publish offline"), "\(bridge.outputText)")
        }

        if setUp == .webStreamOpen {
            #expect(try await helpers[0].waitForExit(within: .seconds(2)) == 0, "the browser's stream ended")
        }
        for helper in helpers { await helper.stop(grace: .seconds(1)) }
        if setUp == .resyncRunning { harness.simulator.signal(SIGCONT) }
        if setUp == .underSystemd { #expect(systemd.values(of: "STOPPING") == ["1"]) }
        systemd.close()
        silentGateway.close()
        await harness.shutdown()
    }

    /// The bridge's configuration for `setUp`: the test's broker and gateway, the rest default.
    static func configuration(
        for setUp: SetUp, _ harness: BridgeHarness, silentGateway: SilentUDPPort, legacyPort: UInt16
    ) -> String {
        var gateway = harness.gateway
        var server = harness.broker.url
        var sections = ""
        switch setUp {
        case .defaultsWithoutAvahi, .gatewayRebooting, .resyncRunning, .brokerNotAnswering, .pairingNeeded,
            .webStreamOpen:
            break
        case .underSystemd:
            sections = "health:\n  interval: 1\nmetrics:\n  enabled: true\n  listen: 127.0.0.1:\(freePort())\n"
        case .discoveryOff:
            sections = "discovery:\n  enabled: false\n"
        case .advertiseOff:
            sections = "discovery:\n  advertise: false\n"
        case .gatewayUnreachable:
            gateway = "127.0.0.1:\(silentGateway.port)"
        case .brokerUnreachable:
            server = "mqtt://127.0.0.1:\(freePort())"
        case .pairingOn, .pairingOnBrokerUnreachable, .slowClients:
            if setUp == .pairingOnBrokerUnreachable { server = "mqtt://127.0.0.1:\(freePort())" }
            let directory = harness.directory
            let legacy = setUp == .slowClients ? "  legacy: true\n  legacy_listen: 127.0.0.1:\(legacyPort)\n" : ""
            sections = """
                pairing:
                \(legacy)  enabled: true
                  listen: 127.0.0.1:\(freePort())
                  control_socket: \(directory.appendingPathComponent("control.sock").path)
                  registry: \(directory.appendingPathComponent("state/paired-devices.json").path)
                  audit_log: \(directory.appendingPathComponent("state/audit.log").path)
                  broker_admin_user: tradfri-pairing
                  broker_admin_password_file: \(directory.appendingPathComponent("pairing-password").path)

                """
        }
        var mqtt = "mqtt:\n  server: \(server)\n"
        if setUp.pairing {
            mqtt += """
                  user: tradfri-bridge
                  password_file: \(harness.directory.appendingPathComponent("bridge-password").path)

                """
        }
        // The web page on, as shipped, on a port of its own.
        let web = "web:\n  listen: 127.0.0.1:0\n  password_file: \(harness.directory.path)/state/web-password\n"
        return "gateway:\n  address: \(gateway)\n  credentials: \(harness.credentials)\n" + mqtt + sections + web
    }
}

/// A UDP port on 127.0.0.1 that is bound but never read: datagrams sent to it vanish without an
/// ICMP error, as with a gateway that is switched off or cut off from the network.
final class SilentUDPPort: Sendable {
    let port: UInt16
    private let descriptor: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard fd >= 0, bound == 0 else { throw POSIXError(.EADDRNOTAVAIL) }
        descriptor = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    func close() {
        _ = Glibc.close(descriptor)
    }
}
