import Foundation
import HubModel

/// A device that was approved and received credentials.
public struct PairedDevice: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var mode: PairingBook.Mode
    public var ip: String
    public var mac: String?
    public var username: String
    /// Kept so the broker's entries can be rebuilt from this file; the file is mode 0600.
    public var password: String
    public var topicPrefix: String
    public var pairedAt: String
    public var connectedAt: String?
    public var revokedAt: String?

    enum CodingKeys: String, CodingKey {
        case id, name, mode, ip, mac, username, password
        case topicPrefix = "topic_prefix"
        case pairedAt = "paired_at"
        case connectedAt = "connected_at"
        case revokedAt = "revoked_at"
    }

    public var isActive: Bool { revokedAt == nil }
}

/// The bridge's record of paired devices: the source of truth from which the broker's
/// per-device accounts are (re)built. A JSON file written atomically (temporary file, then
/// rename) with mode 0600.
public struct DeviceRegistry: Sendable {
    public let path: String
    public private(set) var devices: [PairedDevice] = []

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init(path: String) throws(Failure) {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { return }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            devices = try JSONDecoder().decode([PairedDevice].self, from: data)
        } catch {
            throw Failure(description: "cannot read the paired-device registry \(path): \(error)")
        }
    }

    public func device(_ key: String) -> PairedDevice? {
        devices.first { $0.id == key || $0.username == key || $0.name == key }
    }

    public mutating func add(_ device: PairedDevice) throws(Failure) {
        devices.removeAll { $0.id == device.id }
        devices.append(device)
        try save()
    }

    public mutating func update(_ id: String, _ change: (inout PairedDevice) -> Void) throws(Failure) {
        guard let index = devices.firstIndex(where: { $0.id == id }) else { return }
        change(&devices[index])
        try save()
    }

    private func save() throws(Failure) {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try encoder.encode(devices), to: path)
        } catch {
            throw Failure(description: "cannot write the paired-device registry \(path): \(error)")
        }
    }
}
