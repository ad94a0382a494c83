import CoAP
import Foundation
import MQTT
import TradfriModel

/// What every feature shares: configuration, the gateway mirror and link, the command queue,
/// the MQTT outbox, friendly names and the topic layout. Owned by the controller.
@CoAPActor
public final class BridgeContext {
    /// The configuration in effect: the file's, with runtime changes from `bridge/request/options`
    /// applied (never written back to the file).
    public internal(set) var configuration: BridgeConfiguration
    public let link: GatewayLink
    public let mirror: GatewayMirror
    public let outbox: MQTTOutbox
    public let queue: CommandQueue
    public let gatewayIDFromCredentials: String
    public internal(set) var names = FriendlyNames()
    public internal(set) var gatewayAddress: String?
    public let startedAt = Date()
    /// Set by the controller: hands an event to every feature (see `post(_:)`).
    var dispatcher: @CoAPActor (BridgeEvent) -> Void = { _ in }

    init(
        configuration: BridgeConfiguration, link: GatewayLink, mirror: GatewayMirror, outbox: MQTTOutbox,
        queue: CommandQueue, gatewayID: String
    ) {
        self.configuration = configuration
        self.link = link
        self.mirror = mirror
        self.outbox = outbox
        self.queue = queue
        self.gatewayIDFromCredentials = gatewayID
    }

    public var base: String { configuration.mqtt.baseTopic }
    public var gatewayConnected: Bool { link.isConnected }

    public func topic(_ suffix: String) -> String { "\(base)/\(suffix)" }

    public func stateTopic(_ entity: FriendlyNames.Entity) -> String? {
        names[entity].map { "\(base)/\($0)" }
    }

    /// The scenes of a group, by name.
    public func scenes(ofGroup id: Int) -> [Scene] {
        (mirror.scenes[id] ?? [:]).values.sorted { $0.id < $1.id }
    }

    public func members(of group: Group) -> [Device] {
        group.memberIDs.compactMap { mirror.devices[$0] }
    }

    /// Hands `event` to every feature, in order, now. For features that change something others
    /// must react to (runtime options, later pairing); never call it from inside `handle(_:)` for
    /// the same event.
    public func post(_ event: BridgeEvent) {
        dispatcher(event)
    }

    /// How fresh the bridge's copy of the gateway is, for `bridge/info` and `health_check`:
    /// when everything was last read in full, what still waits to be read, how long ago the least
    /// recently confirmed item was heard from, and what re-reads found; plus what the session
    /// learnt about the link.
    public var viewFigures: JSON {
        let mirror = self.mirror
        var view: [String: JSON] = [
            "observed": .int(mirror.observedCount),
            "pending_rereads": .int(mirror.pendingRereads),
            "rereads": .int(mirror.rereads),
            "repairs": .int(mirror.repairs),
        ]
        if let read = mirror.lastFullRead { view["last_full_read"] = .string(read.formatted(.iso8601)) }
        if let age = mirror.oldestCheck { view["oldest_check_seconds"] = .double((age.seconds * 10).rounded() / 10) }
        if let link = self.link.statistics {
            view["retransmission_timeout"] = .double((link.retransmissionTimeout * 1000).rounded() / 1000)
            if let roundTrip = link.roundTrip { view["round_trip"] = .double((roundTrip * 10000).rounded() / 10000) }
            view["retransmissions"] = .int(link.retransmissions)
            view["duplicates_acknowledged"] = .int(link.duplicatesAcknowledged)
            view["acknowledgements_repeated"] = .int(link.acknowledgementsRepeated)
        }
        return .object(view)
    }

    /// Publishes `{"type": type, "data": data}` on `<base>/bridge/event`.
    public func event(_ type: String, _ data: [String: JSON]) {
        outbox.publishEvent(topic("bridge/event"), ["type": .string(type), "data": .object(data)])
    }
}
