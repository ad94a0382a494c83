import CoAP
import HubModel
import MQTT

/// What the controller hands to every feature, in order, on the libcoap actor.
public enum BridgeEvent: Sendable {
    /// A hub's session is up (`hub`: its name); a full sync follows.
    case hubConnected(hub: String, address: String)
    /// A hub's session is gone (after a failure or a reboot).
    case hubDisconnected(hub: String, reason: String)
    /// An attempt to connect to a hub failed (it is retried).
    case hubConnectFailed(hub: String, reason: String)
    /// Something on a hub changed (from the sync or a notification).
    case hub(String, HubChange)
    /// A command a hub carried out (nil error) or could not.
    case commandFinished(hub: String, topic: String, error: String?, description: String)
    /// Friendly names were recomputed (devices or groups added, removed or renamed).
    case namesChanged(previous: FriendlyNames)
    /// Connected (again) to the broker; everything must be announced again.
    case brokerConnected
    case brokerDisconnected
    /// An attempt to connect to the broker failed or was refused (it is retried).
    case brokerConnectFailed(reason: String)
    /// A message on one of the bridge's subscriptions.
    case message(MQTTMessage)
    /// The bridge is stopping (SIGTERM).
    case stopping
    /// Runtime options changed (`bridge/request/options`); `BridgeContext.configuration` holds
    /// the new values.
    case optionsChanged
    /// Takeover: who drives which gateway changed (`BridgeContext.takeover`).
    case takeoverChanged
    /// Takeover: this instance gave the hub up, another drives it now. Its topics are forgotten,
    /// not cleared: what is retained for it is the other instance's, and must not be overwritten
    /// by this one's old payloads (a broker reconnect or Home Assistant's birth republishes).
    case hubReleased(hub: String)
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
