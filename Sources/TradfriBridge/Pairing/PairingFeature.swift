import CoAP
import HubModel
import Logging
import MQTT
import ServiceLifecycle
import TradfriModel

/// Runs the pairing service beside the bridge: starts it, serves its endpoints (HTTPS, EmonESP's
/// HTTP, the control socket) until graceful shutdown, then stops it.
public final class PairingRunner: Service {
    public let service: PairingService
    private let logger = Logger(label: "pairing")

    public init(service: PairingService) {
        self.service = service
    }

    /// Starting waits for the broker (the admin account's connection, up to 10 s, then one
    /// command per registered device); a shutdown meanwhile cancels the start instead of waiting
    /// for it to end. An endpoint that cannot listen ends the run with its error.
    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { [service] in try await service.start() }
        } catch is CancellationError {
            await service.stop()
            return
        }
        do {
            let endpoints = try service.endpoints().map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
            try await withThrowingDiscardingTaskGroup { [service, logger] group in
                // Devices' first messages ("connected to the broker"), for as long as the endpoints run.
                group.addTask { await service.watchMessages() }
                try await ServiceGroup(configuration: .init(services: endpoints, logger: logger)).run()
                group.cancelAll()
            }
        } catch {
            await service.stop()
            throw error
        }
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
        service.noteMessage(topic: message.topic)
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
