import Foundation
import Logging
import MDNS
import ServiceLifecycle

/// Advertises the bridge on the LAN, so devices find the base station by service (or by this
/// host's `.local` name) instead of an IP: `_tradfri-bridge._tcp` with TXT `version`,
/// `base_topic`, `gateway` (the gateway ids, comma-separated) and `mqtt` (plus the pairing endpoint's details when pairing is on),
/// and optionally the local broker as `_mqtt._tcp`.
///
/// Runs until graceful shutdown, then withdraws the advertisements. If avahi-daemon is missing
/// it warns once and tries again later; if avahi restarts, the advertisements come back.
public final class Advertiser: Service {
    public struct Advertisement: Sendable, Equatable {
        /// `%h` stands for the host's mDNS name (as in avahi's service files).
        public var name: String
        public var type: String
        public var port: UInt16
        public var txt: [String: String]
    }

    private let advertisements: [Advertisement]
    private let mdns: MDNSConnection
    private let retryDelay: Duration
    private let logger = Logger(label: "discovery")

    public init(advertisements: [Advertisement], mdns: MDNSConnection, retryDelay: Duration = .seconds(30)) {
        self.advertisements = advertisements
        self.mdns = mdns
        self.retryDelay = retryDelay
    }

    /// What the bridge advertises for `configuration` (the broker it uses is `broker`).
    public static func advertisements(
        for configuration: BridgeConfiguration, gatewayIDs: [String], broker: BrokerLocator.Choice,
        extraTXT: [String: String] = [:]
    ) -> [Advertisement] {
        guard configuration.discovery.advertise else { return [] }
        var txt = [
            "version": BridgeVersion.current, "base_topic": configuration.mqtt.baseTopic,
            "gateway": gatewayIDs.joined(separator: ","),
            "mqtt": "\(broker.tls ? "mqtts" : "mqtt")://\(broker.host):\(broker.port)",
            "pairing": configuration.pairing.enabled ? "on" : "off",
        ]
        txt.merge(extraTXT) { _, new in new }
        let pairingPort = splitHostPort(configuration.pairing.listen, defaultPort: 8443)?.1 ?? 8443
        var list = [
            Advertisement(name: "TRÅDFRI bridge on %h", type: "_tradfri-bridge._tcp", port: pairingPort, txt: txt)
        ]
        let local = ["localhost", "127.0.0.1", "::1"].contains(broker.host)
        if configuration.discovery.advertiseBroker, local {
            list.append(
                Advertisement(
                    name: "MQTT broker on %h", type: broker.tls ? "_secure-mqtt._tcp" : "_mqtt._tcp",
                    port: broker.port, txt: ["base_topic": configuration.mqtt.baseTopic]))
        }
        return list
    }

    /// Advertises until graceful shutdown (or cancellation), then withdraws everything.
    ///
    /// The advertising loop runs as a child task that graceful shutdown cancels: every wait in it
    /// (for avahi-daemon to come back, for a registration, for the daemon's state) ends at once
    /// on cancellation. Graceful shutdown alone would not end them; before, a bridge without a
    /// running avahi-daemon sat in the 30 s retry sleep forever and never stopped.
    public func run() async throws {
        guard !advertisements.isEmpty, mdns.enabled else {
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown { [self] in await advertiseUntilCancelled() }
        await mdns.closeAll()
    }

    private func advertiseUntilCancelled() async {
        while !Task.isCancelled {
            guard let client = await mdns.client() else {
                // No daemon (a warning was logged once): look again later.
                do { try await Task.sleep(for: retryDelay) } catch { return }
                continue
            }
            var publishers: [MDNSPublisher] = []
            defer { for publisher in publishers { publisher.withdraw() } }
            let host = client.hostName.split(separator: ".").first.map(String.init) ?? BridgeConfiguration.hostName
            for advertisement in advertisements {
                do {
                    let publisher = try client.publish(
                        MDNSAdvertisement(
                            name: advertisement.name.replacingOccurrences(of: "%h", with: host),
                            type: advertisement.type, port: advertisement.port,
                            txt: advertisement.txt))
                    publishers.append(publisher)
                    let name = try await publisher.registeredName(within: .seconds(10))
                    logger.info(
                        "advertising", metadata: ["mdns.type": "\(advertisement.type)", "mdns.name": "\(name)"])
                } catch {
                    if Task.isCancelled { return }
                    logger.warning(
                        "cannot advertise", metadata: ["mdns.type": "\(advertisement.type)", "error": "\(error)"])
                }
            }
            // Until the daemon goes away (the stream also ends when the task is cancelled).
            for await state in client.stateUpdates where state != .running && state != .registering {
                if case .hostNameCollision = state { continue }
                break
            }
            guard !Task.isCancelled else { return }
            logger.warning("avahi-daemon went away; advertising again when it is back")
            do { try await Task.sleep(for: retryDelay) } catch { return }
        }
    }
}

extension MDNSConnection {
    /// Closes the client (withdrawing every advertisement made from it).
    public func closeAll() {
        isShutDown = true
        current?.close()
        current = nil
    }
}
