import CoAP
import MQTT
import TradfriModel

/// What the controller hands to every feature, in order, on the libcoap actor.
public enum BridgeEvent: Sendable {
    /// The gateway session is up; a full sync follows.
    case gatewayConnected(address: String)
    /// The gateway session is gone (after a failure or a reboot).
    case gatewayDisconnected(reason: String)
    /// Something on the gateway changed (from the sync or a notification).
    case gateway(GatewayMirror.Change)
    /// Friendly names were recomputed (devices or groups added, removed or renamed).
    case namesChanged(previous: FriendlyNames)
    /// Connected (again) to the broker; everything must be announced again.
    case brokerConnected
    case brokerDisconnected
    /// A message on one of the bridge's subscriptions.
    case message(MQTTMessage)
    /// The bridge is stopping (SIGTERM).
    case stopping
    /// Runtime options changed (`bridge/request/options`); `BridgeContext.configuration` holds
    /// the new values.
    case optionsChanged
}

/// A part of the bridge owning one concern (state publishing, commands, bridge topics, Home
/// Assistant discovery, requests, pairing).
@CoAPActor
public protocol BridgeFeature: AnyObject {
    /// MQTT topic filters the feature needs (subscribed on every connection).
    var subscriptions: [String] { get }
    func handle(_ event: BridgeEvent)
}

extension BridgeFeature {
    public var subscriptions: [String] { [] }
}
