import CoAP
import Foundation
import HubModel

/// One hub (a TRÅDFRI gateway; a DIRIGERA hub later) as the bridge's features see it: its
/// devices and groups in the hub-neutral model, its connection, and the things one asks of a
/// hub. The features never see a hub's own codes; each hub kind translates (TRÅDFRI:
/// `TradfriHub`, with `Device+Hub` and `CommandPlanner` in TradfriModel).
///
/// Contract: `@CoAPActor`, like every feature; `run()` is a child task of the bridge and runs
/// until cancelled (then the hub closes its session at once); everything the hub learns goes to
/// the event handler, in order, on this actor.
@CoAPActor
public protocol Hub: AnyObject, Sendable {
    /// The configured short name (logs, topics, `bridge/info`, requests).
    var name: String { get }
    /// `tradfri` (the DIRIGERA issue adds `dirigera`).
    var kind: String { get }
    /// The hub's own id (a TRÅDFRI gateway's 9081), part of every Home Assistant unique id.
    var hardwareID: String { get }
    var connected: Bool { get }
    /// "host:port" of the current or last session.
    var address: String? { get }
    var firmware: String? { get }
    /// When the hub last answered or notified anything.
    var lastContact: Date? { get }
    /// Whether the hub refused the bridge's identity (pair again).
    var needsPairing: Bool { get }
    var devices: [ItemID: HubDevice] { get }
    var groups: [ItemID: HubGroup] { get }
    /// How fresh the hub's copy is (see `GatewayMirror`'s figures), for `bridge/info` and health.
    var viewFigures: JSON { get }

    func setEventHandler(_ handler: @escaping @CoAPActor (HubEvent) -> Void)
    /// Connects and keeps the hub's session (and its copy) up until the task is cancelled.
    func run() async
    /// Queues `command` for the device or group `target` (paced as the hub needs); the outcome
    /// comes back as `.commandFinished` with `topic`.
    func send(_ command: DeviceCommand, to target: ItemID, topic: String)
    /// The command still waiting for `target`, if any (for TOGGLE and brightness steps).
    func pendingCommand(for target: ItemID) -> DeviceCommand?
    /// Reads a device from the hub again (for `<name>/get`) and returns it.
    func reread(device: ItemID) async throws -> HubDevice?
    /// Reads everything again; true once done, false after `limit`.
    func resync(within limit: Duration) async -> Bool
    func reboot() async throws
    /// Writes a new name for a device or group to the hub (its app shows it too).
    func rename(_ item: ItemID, to name: String) async throws
    /// Command spacing per device, changeable at runtime.
    func setCommandSpacing(_ spacing: Duration)
}

/// What a hub reports.
public enum HubEvent: Sendable {
    case connected(address: String)
    case disconnected(reason: String)
    case connectFailed(reason: String)
    case change(HubChange)
    /// A command's outcome: nil error when the hub accepted it.
    case commandFinished(topic: String, error: String?, description: String)
}

/// A change in a hub's copy.
public enum HubChange: Sendable {
    /// The hub's own details (firmware, id, pairing state) changed.
    case info
    case deviceAdded(HubDevice)
    case deviceChanged(HubDevice, previous: HubDevice)
    case deviceRemoved(HubDevice)
    case groupAdded(HubGroup)
    /// Name, members or scenes.
    case groupChanged(HubGroup, previous: HubGroup)
    case groupRemoved(HubGroup)
    /// The first full read of a session is complete: the copy equals the hub.
    case synced
    /// Everything was read again in full (after `.synced`, and after each resync).
    case fullRead
    /// A re-read found a difference the hub had not notified (reported after the change).
    case repaired(kind: String, id: ItemID, name: String?, reason: String)
    /// The hub stopped working without failing (a session that answers pings but nothing else,
    /// notifications that stopped); what was detected. The hub recovers by itself.
    case stalled(String)
}
