import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

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

        var testDescription: String { rawValue }
        var brokerIsThere: Bool { self != .brokerUnreachable && self != .pairingOnBrokerUnreachable }
        var pairing: Bool { self == .pairingOn || self == .pairingOnBrokerUnreachable }
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
        let bridge = try harness.launchBridge(
            configuration: Self.configuration(for: setUp, harness, silentGateway: silentGateway))

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

        if setUp == .resyncRunning { harness.simulator.signal(SIGCONT) }
        silentGateway.close()
        await harness.shutdown()
    }

    /// The bridge's configuration for `setUp`: the test's broker and gateway, the rest default.
    static func configuration(for setUp: SetUp, _ harness: BridgeHarness, silentGateway: SilentUDPPort) -> String {
        var gateway = harness.gateway
        var server = harness.broker.url
        var sections = ""
        switch setUp {
        case .defaultsWithoutAvahi, .gatewayRebooting, .resyncRunning, .brokerNotAnswering:
            break
        case .discoveryOff:
            sections = "discovery:\n  enabled: false\n"
        case .advertiseOff:
            sections = "discovery:\n  advertise: false\n"
        case .gatewayUnreachable:
            gateway = "127.0.0.1:\(silentGateway.port)"
        case .brokerUnreachable:
            server = "mqtt://127.0.0.1:\(freePort())"
        case .pairingOn, .pairingOnBrokerUnreachable:
            if setUp == .pairingOnBrokerUnreachable { server = "mqtt://127.0.0.1:\(freePort())" }
            let directory = harness.directory
            sections = """
                pairing:
                  enabled: true
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
        return "gateway:\n  address: \(gateway)\n  credentials: \(harness.credentials)\n" + mqtt + sections
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
