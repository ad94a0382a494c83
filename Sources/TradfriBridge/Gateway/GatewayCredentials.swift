import Foundation
import HubModel

/// What pairing with a gateway leaves behind: the identity and PSK the gateway created for us,
/// the gateway's id (9081) and where it was. Never the security code (IKEA asks integrators not to
/// keep it). Stored as JSON with mode 0600.
public struct GatewayCredentials: Codable, Sendable, Equatable {
    public var identity: String
    public var psk: String
    public var gatewayID: String
    public var address: String
    public var port: UInt16
    public var firmware: String?
    public var pairedAt: String
    /// The gateway's mDNS instance name (`gw-<mac>`), when it was found by mDNS.
    public var mdnsName: String?

    enum CodingKeys: String, CodingKey {
        case identity, psk, address, port, firmware
        case gatewayID = "gateway_id"
        case pairedAt = "paired_at"
        case mdnsName = "mdns_name"
    }

    public init(
        identity: String, psk: String, gatewayID: String, address: String, port: UInt16,
        firmware: String?, mdnsName: String? = nil, pairedAt: Date = Date()
    ) {
        self.mdnsName = mdnsName
        self.identity = identity
        self.psk = psk
        self.gatewayID = gatewayID
        self.address = address
        self.port = port
        self.firmware = firmware
        self.pairedAt = pairedAt.formatted(.iso8601)
    }

    public enum Failure: Error, Sendable, CustomStringConvertible {
        case missing(String)
        case unreadable(String, String)
        case unwritable(String, String)

        public var description: String {
            switch self {
            case .missing(let path):
                "no gateway credentials at \(path): pair first with 'tradfri-bridge auth --gateway HOST --security-code CODE'"
            case .unreadable(let path, let reason): "cannot read gateway credentials \(path): \(reason)"
            case .unwritable(let path, let reason): "cannot write gateway credentials \(path): \(reason)"
            }
        }
    }

    public static func load(from path: String) throws(Failure) -> GatewayCredentials {
        guard FileManager.default.fileExists(atPath: path) else { throw .missing(path) }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(path, error.localizedDescription)
        }
        do {
            return try JSONDecoder().decode(GatewayCredentials.self, from: data)
        } catch {
            throw .unreadable(path, "not a credentials file (\(error))")
        }
    }

    /// Whether the file can be read by others than its owner (worth a warning).
    public static func isExposed(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & 0o077 != 0
    }

    /// Writes atomically (temporary file, then rename) with mode 0600; creates the directory 0700.
    public func save(to path: String) throws(Failure) {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try encoder.encode(self), to: path)
        } catch {
            throw .unwritable(path, "\(error)")
        }
    }
}
