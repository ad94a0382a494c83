import Foundation

/// The credentials file: every gateway paired on this machine, one `GatewayCredentials` each,
/// at most one per gateway id and per name.
///
/// Layouts (both are read):
/// - one gateway without a name: the fields of `GatewayCredentials` as one JSON object, the
///   layout every version wrote before several gateways (so a downgrade still reads the file);
/// - anything else: `{"gateways": [{…the fields of GatewayCredentials…, "name": "upstairs"}, …]}`.
///
/// `save(to:)` picks the layout: the old one exactly when the store holds one unnamed gateway.
/// Writes are atomic (temporary file, rename) with mode 0600. The PSKs never appear in a
/// message of this type.
public struct CredentialStore: Sendable, Equatable {
    /// In the order they were paired (a replaced gateway keeps its place).
    public private(set) var entries: [GatewayCredentials]

    /// An empty store.
    public init() {
        entries = []
    }

    /// - Throws: if two entries share a gateway id or a name, or a name is not a valid gateway
    ///   name (`BridgeConfiguration.GatewayEntry.nameProblem`).
    public init(entries: [GatewayCredentials]) throws(Problem) {
        try Self.check(entries)
        self.entries = entries
    }

    /// Why a set of entries cannot be one store.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// The entry of gateway `id` (9081), compared without regard to case.
    public func entry(gatewayID id: String) -> GatewayCredentials? {
        entries.first { $0.gatewayID.lowercased() == id.lowercased() }
    }

    /// The entry stored under `name` (given at pairing).
    public func entry(named name: String) -> GatewayCredentials? {
        entries.first { $0.name == name }
    }

    /// The entries last seen at `host:port` (the host compared without regard to case).
    public func entries(at host: String, port: UInt16) -> [GatewayCredentials] {
        entries.filter { $0.address.lowercased() == host.lowercased() && $0.port == port }
    }

    /// Adds `credentials`, or replaces the entry of the same gateway id in its place. A
    /// replacement without a name keeps the stored name. Other entries are never touched.
    /// - Returns: the entry that was replaced, if any.
    /// - Throws: if the name is not a valid gateway name or another gateway is stored under it.
    @discardableResult
    public mutating func upsert(_ credentials: GatewayCredentials) throws(Problem) -> GatewayCredentials? {
        var new = credentials
        let index = entries.firstIndex { $0.gatewayID.lowercased() == credentials.gatewayID.lowercased() }
        let replaced = index.map { entries[$0] }
        if let replaced, new.name == nil { new.name = replaced.name }
        if let name = new.name,
            let other = entries.first(where: {
                $0.name == name && $0.gatewayID.lowercased() != new.gatewayID.lowercased()
            })
        {
            throw Problem(
                description: "the name '\(name)' is already used by gateway \(other.gatewayID); choose another name")
        }
        var updated = entries
        if let index { updated[index] = new } else { updated.append(new) }
        try Self.check(updated)
        entries = updated
        return replaced
    }

    private static func check(_ entries: [GatewayCredentials]) throws(Problem) {
        var ids: [String: Int] = [:]
        var names: [String: Int] = [:]
        for (index, entry) in entries.enumerated() {
            let id = entry.gatewayID.lowercased()
            if let earlier = ids[id] {
                throw Problem(description: "gateways[\(index)] is gateway \(id) again (as gateways[\(earlier)])")
            }
            ids[id] = index
            guard let name = entry.name else { continue }
            if let problem = BridgeConfiguration.GatewayEntry.nameProblem(name) {
                throw Problem(description: "gateways[\(index)].name: \(problem)")
            }
            if let earlier = names[name] {
                throw Problem(description: "gateways[\(index)].name: '\(name)' is used by gateways[\(earlier)] too")
            }
            names[name] = index
        }
    }
}

// MARK: - The file

extension CredentialStore {
    /// Reads a credentials file in either layout.
    /// - Throws: `.missing` if there is no file, `.unreadable` if it cannot be read or is not a
    ///   credentials file (the reason never quotes a key).
    public static func load(from path: String) throws(GatewayCredentials.Failure) -> CredentialStore {
        guard FileManager.default.fileExists(atPath: path) else { throw .missing(path) }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(path, error.localizedDescription)
        }
        return try decode(data, path: path)
    }

    /// Like `load(from:)`, but a missing file is an empty store (the first `auth`).
    public static func loadIfPresent(from path: String) throws(GatewayCredentials.Failure) -> CredentialStore {
        do {
            return try load(from: path)
        } catch {
            if case .missing = error { return CredentialStore() }
            throw error
        }
    }

    /// Writes the store atomically with mode 0600 (creating the directory 0700).
    public func save(to path: String) throws(GatewayCredentials.Failure) {
        do {
            try AtomicFile.write(try encoded(), to: path)
        } catch {
            throw .unwritable(path, "\(error)")
        }
    }

    /// The file's bytes, in the layout described on the type.
    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if entries.count == 1, let only = entries.first, only.name == nil {
            return try encoder.encode(only)
        }
        return try encoder.encode(ListLayout(gateways: entries))
    }

    static func decode(_ data: Data, path: String) throws(GatewayCredentials.Failure) -> CredentialStore {
        let decoder = JSONDecoder()
        let entries: [GatewayCredentials]
        do {
            if let list = try decoder.decode(Probe.self, from: data).gateways {
                entries = list
            } else {
                entries = [try decoder.decode(GatewayCredentials.self, from: data)]
            }
        } catch {
            throw .unreadable(path, "not a credentials file (\(Self.reason(error)))")
        }
        do {
            return try CredentialStore(entries: entries)
        } catch {
            throw .unreadable(path, error.description)
        }
    }

    /// What is wrong, by key path, without the decoder's context (which may quote values).
    private static func reason(_ error: any Error) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.reduce("") { path, key in
                key.intValue.map { "\(path)[\($0)]" } ?? (path.isEmpty ? key.stringValue : "\(path).\(key.stringValue)")
            }
        }
        switch error as? DecodingError {
        case .keyNotFound(let key, let context)?: return "\(path(context.codingPath + [key])) is missing"
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?:
            return "\(path(context.codingPath)) has the wrong type"
        case .dataCorrupted?: return "not valid JSON"
        default: return "unexpected content"
        }
    }

    private struct ListLayout: Codable {
        var gateways: [GatewayCredentials]
    }

    private struct Probe: Decodable {
        var gateways: [GatewayCredentials]?
    }
}
