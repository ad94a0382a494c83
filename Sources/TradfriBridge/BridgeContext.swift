import CoAP
import Foundation
import HubModel
import MQTT

/// What every feature shares: configuration, the hubs, the MQTT outbox, friendly names and the
/// topic layout. Owned by the controller.
@CoAPActor
public final class BridgeContext {
    /// The configuration in effect: the file's, with runtime changes from `bridge/request/options`
    /// applied (never written back to the file).
    public internal(set) var configuration: BridgeConfiguration
    /// Every hub, in configuration order.
    public let hubs: [any Hub]
    public let outbox: MQTTOutbox
    public internal(set) var names = FriendlyNames()
    public let startedAt = Date()
    /// Counters since start, for the health request and the web page.
    public internal(set) var figures = BridgeFigures()
    /// Takeover: the hubs this instance drives, by name (nil: takeover off, it drives every hub).
    public internal(set) var drivenHubs: Set<String>?
    /// Takeover: who drives which gateway, for `bridge/info` (nil: takeover off).
    public internal(set) var takeover: JSON?
    /// Set by the controller: hands an event to every feature (see `post(_:)`).
    var dispatcher: @CoAPActor (BridgeEvent) -> Void = { _ in }
    private let hubsByName: [String: any Hub]

    init(configuration: BridgeConfiguration, hubs: [any Hub], outbox: MQTTOutbox) {
        self.configuration = configuration
        self.hubs = hubs
        self.outbox = outbox
        hubsByName = Dictionary(hubs.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public var base: String { configuration.mqtt.baseTopic }

    public func topic(_ suffix: String) -> String { "\(base)/\(suffix)" }

    public func stateTopic(_ entity: FriendlyNames.Entity) -> String? {
        names[entity].map { "\(base)/\($0)" }
    }

    // MARK: Hubs

    public func hub(named name: String) -> (any Hub)? { hubsByName[name] }

    /// Whether commands and requests for `hub` are this instance's to answer (takeover: only
    /// for the hubs it drives; the owner of the others answers them).
    public func drives(_ hub: String) -> Bool { drivenHubs?.contains(hub) ?? true }

    /// Whether some configured hub is driven by another instance (takeover), so a name this
    /// instance does not know may be one of that instance's.
    public var drivesOnlySome: Bool { drivenHubs.map { $0.count < hubs.count } ?? false }

    /// With several hubs every name and topic of a hub is under its name (`garden/hallway`); the
    /// only hub of a one-gateway set-up keeps plain names, so its topics never change.
    public var topicsUseHubNames: Bool { hubs.count > 1 }

    /// The hub's topic prefix (nil: plain names).
    public func prefix(of hub: any Hub) -> String? { topicsUseHubNames ? hub.name : nil }

    public var anyHubConnected: Bool { hubs.contains { $0.connected } }
    public var allHubsConnected: Bool { hubs.allSatisfy { $0.connected } }

    public func device(_ id: ItemID) -> HubDevice? { hubsByName[id.hub]?.devices[id] }
    public func group(_ id: ItemID) -> HubGroup? { hubsByName[id.hub]?.groups[id] }

    public func members(of group: HubGroup) -> [HubDevice] {
        group.members.compactMap { device($0) }
    }

    /// The groups of the device's hub that hold it.
    public func groups(containing id: ItemID) -> [HubGroup] {
        (hubsByName[id.hub]?.groups.values.filter { $0.members.contains(id) } ?? []).sorted { $0.id < $1.id }
    }

    /// Whether the device is reachable through a live session of its hub.
    public func isOnline(_ device: HubDevice) -> Bool {
        (hubsByName[device.id.hub]?.connected ?? false) && device.reachable != false
    }

    // MARK: Events

    /// Hands `event` to every feature, in order, now. For features that change something others
    /// must react to (runtime options, later pairing); never call it from inside `handle(_:)` for
    /// the same event.
    public func post(_ event: BridgeEvent) {
        dispatcher(event)
    }

    /// Publishes `{"type": type, "data": data}` on `<base>/bridge/event`.
    public func event(_ type: String, _ data: [String: JSON]) {
        outbox.publishEvent(topic("bridge/event"), ["type": .string(type), "data": .object(data)])
    }

    /// The `gateway` field of events and listings about something on `hub`.
    public func hubField(_ hub: String) -> [String: JSON] {
        ["gateway": .string(hub)]
    }
}

/// What the bridge has counted since it started.
public struct BridgeFigures: Sendable {
    /// Connections to the broker after the first.
    public var brokerReconnects = 0
    /// Commands that could not be carried out (each one a `command_error` event).
    public var commandErrors = 0
    var brokerConnections = 0

    mutating func brokerConnected() {
        brokerConnections += 1
        brokerReconnects = max(brokerConnections - 1, 0)
    }
}
