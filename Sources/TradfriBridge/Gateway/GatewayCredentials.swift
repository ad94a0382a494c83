import Foundation
import HubModel

/// What pairing with a gateway leaves behind: the identity and PSK the gateway created for us,
/// the gateway's id (9081) and where it was. Never the security code (IKEA asks integrators not to
/// keep it). Kept in a `CredentialStore` file (JSON, mode 0600), one per paired gateway.
///
/// `description` leaves the PSK out, so interpolating credentials into a log line or an error
/// never shows it.
public struct GatewayCredentials: Codable, Sendable, Equatable, CustomStringConvertible {
    public var identity: String
    public var psk: String
    public var gatewayID: String
    public var address: String
    public var port: UInt16
    public var firmware: String?
    public var pairedAt: String
    /// The gateway's mDNS instance name (`gw-<mac>`), when it was found by mDNS.
    public var mdnsName: String?
    /// The short name given at pairing (`auth --name`), which a configuration entry of that name
    /// picks; nil for a gateway paired without one.
    public var name: String?

    enum CodingKeys: String, CodingKey {
        case identity, psk, address, port, firmware, name
        case gatewayID = "gateway_id"
        case pairedAt = "paired_at"
        case mdnsName = "mdns_name"
    }

    public init(
        identity: String, psk: String, gatewayID: String, address: String, port: UInt16,
        firmware: String?, mdnsName: String? = nil, name: String? = nil, pairedAt: Date = Date()
    ) {
        self.mdnsName = mdnsName
        self.name = name
        self.identity = identity
        self.psk = psk
        self.gatewayID = gatewayID
        self.address = address
        self.port = port
        self.firmware = firmware
        self.pairedAt = pairedAt.formatted(.iso8601)
    }

    public var description: String {
        var text = "gateway \(gatewayID)"
        if let name { text += " '\(name)'" }
        return text + " (identity '\(identity)' at \(BridgeConfiguration.GatewayAddress.host(address, port: port)))"
    }

    /// The stored name, or `gw_<last 6 hex of the id>` for a gateway paired without one.
    public var displayName: String {
        name ?? "gw_" + gatewayID.lowercased().suffix(6)
    }

    public enum Failure: Error, Sendable, CustomStringConvertible {
        case missing(String)
        case unreadable(String, String)
        case unwritable(String, String)
        /// The file holds several gateways where one was asked for (path, their names).
        case several(String, [String])

        public var description: String {
            switch self {
            case .missing(let path):
                "no gateway credentials at \(path): pair first with 'tradfri-bridge auth --gateway HOST --security-code CODE'"
            case .unreadable(let path, let reason): "cannot read gateway credentials \(path): \(reason)"
            case .unwritable(let path, let reason): "cannot write gateway credentials \(path): \(reason)"
            case .several(let path, let names):
                "\(path) holds \(names.count) gateways (\(names.joined(separator: ", "))); say which one"
            }
        }
    }

    /// The one gateway of a credentials file (either layout).
    /// - Throws: `.missing` without a file or with an empty one, `.several` if it holds more.
    public static func load(from path: String) throws(Failure) -> GatewayCredentials {
        let store = try CredentialStore.load(from: path)
        guard let only = store.entries.first else { throw .missing(path) }
        guard store.entries.count == 1 else { throw .several(path, store.entries.map(\.displayName)) }
        return only
    }

    /// Whether the file can be read by others than its owner (worth a warning).
    public static func isExposed(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & 0o077 != 0
    }
}
