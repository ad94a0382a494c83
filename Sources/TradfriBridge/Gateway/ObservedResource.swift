import HubModel
import TradfriModel

/// A resource of the gateway the mirror observes, named by what it is rather than by its path.
public enum ObservedResource: Hashable, Sendable, CustomStringConvertible {
    case details
    case notifications
    case deviceList
    case groupList
    case device(Int)
    case group(Int)
    case sceneList(group: Int)
    case scene(Int, group: Int)

    public var path: String {
        switch self {
        case .details: GatewayPath.gatewayDetails
        case .notifications: GatewayPath.notifications
        case .deviceList: GatewayPath.devices
        case .groupList: GatewayPath.groups
        case .device(let id): GatewayPath.device(id)
        case .group(let id): GatewayPath.group(id)
        case .sceneList(let group): GatewayPath.scenes(ofGroup: group)
        case .scene(let id, let group): GatewayPath.scene(id, ofGroup: group)
        }
    }

    /// The list an item is listed in (nil for the gateway's own resources and the lists).
    var list: ObservedResource? {
        switch self {
        case .device: .deviceList
        case .group: .groupList
        case .scene(_, let group): .sceneList(group: group)
        default: nil
        }
    }

    /// Whether a difference found by reading it again is news (a notification the bridge
    /// missed); the gateway's details change at every read (its clock).
    var reportsRepairs: Bool {
        switch self {
        case .details, .notifications: false
        default: true
        }
    }

    public var description: String { path }
}
