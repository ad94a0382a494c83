import CoAP
import HubModel
import Logging
import MQTT
import ServiceLifecycle
import TradfriModel

/// Runs the pairing service beside the bridge: starts it, stops it on graceful shutdown.
public final class PairingRunner: Service {
    public let service: PairingService

    public init(service: PairingService) {
        self.service = service
    }

    /// Starts the service, runs until graceful shutdown, stops it. Starting waits for the broker
    /// (the admin account's connection, up to 10 s, then one command per registered device); a
    /// shutdown meanwhile cancels the start instead of waiting for it to end.
    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { [service] in try await service.start() }
        } catch is CancellationError {
            await service.stop()
            return
        }
        try? await gracefulShutdown()
        await service.stop()
    }
}

/// Tells the pairing service when a paired device first publishes under its prefix (the
/// prompt then shows "connected to the broker").
@CoAPActor
final class PairingFeature: BridgeFeature {
    private let service: PairingService
    private let prefix: String

    init(service: PairingService, topicPrefix: String) {
        self.service = service
        prefix = topicPrefix
    }

    var subscriptions: [String] { ["\(prefix)/#"] }

    func handle(_ event: BridgeEvent) {
        guard case .message(let message) = event, message.topic.hasPrefix(prefix + "/") else { return }
        let topic = message.topic
        Task { [service] in await service.messageSeen(topic: topic) }
    }
}

extension Bridge {
    /// Adds device pairing: the service's events go to `bridge/event`, the bridge watches the
    /// devices' topics for their first message, and `bridge/request/pairing/…` reaches it.
    public func enablePairing(_ service: PairingService) {
        add(PairingFeature(service: service, topicPrefix: context.configuration.pairing.topicPrefix))
        requests.registerPairingVerbs(service, approveOverMQTT: context.configuration.pairing.approveOverMQTT)
    }
}
