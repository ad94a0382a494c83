/// One gateway the bridge runs: its configuration entry and the stored credentials it uses.
public struct ResolvedGateway: Sendable, Equatable {
    /// The gateway's short name (logs, topics, `bridge/info`); `entry.name` says the same.
    public var name: String { entry.name }
    /// The entry as configured (for `gateways: auto`: the shared keys, with the name found and
    /// `address: auto`).
    public var entry: BridgeConfiguration.GatewayEntry
    public var credentials: GatewayCredentials
    /// Where the entry is in the configuration, for messages: `gateway`, `gateways[1]`, or
    /// `gateways` (auto).
    public var key: String

    public var gatewayID: String { credentials.gatewayID }

    public init(entry: BridgeConfiguration.GatewayEntry, credentials: GatewayCredentials, key: String) {
        self.entry = entry
        self.credentials = credentials
        self.key = key
    }
}

/// Which stored credentials each configured gateway uses. Pure: the caller reads the files
/// (`loadStores(for:)`) or passes stores it made.
///
/// Rules, for each entry of `gateway:` or `gateways:`, in the credentials file it names:
/// 1. with `id:`, the credentials of that gateway id;
/// 2. else the credentials stored under the entry's name (`auth --name`);
/// 3. else, with `address: HOST[:PORT]`, the credentials last seen at that address (if only one
///    gateway was);
/// 4. else, if the file holds exactly one gateway, that one;
/// anything else is an error naming the entry. Two entries that end up with the same gateway id
/// are refused, naming both.
///
/// `gateways: auto` gives one gateway per stored entry, named by its stored name or
/// `gw_<last 6 hex of the id>`, with `address: auto` and the keys the `gateways:` mapping shares.
public enum GatewayResolution {
    /// A configured gateway without usable credentials. The message names the entry and never
    /// contains a key.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The entry: `gateway`, `gateways[1]`, `gateways`.
        public var key: String
        public var message: String

        public var description: String { "\(key): \(message)" }
    }

    /// The stores the configuration's entries name, read from disk. A missing file is left out
    /// (resolving then says how to pair); an unreadable one is an error.
    public static func loadStores(
        for configuration: BridgeConfiguration
    ) throws(GatewayCredentials.Failure) -> [String: CredentialStore] {
        var stores: [String: CredentialStore] = [:]
        for path in Set(configuration.gateways.map(\.credentials)) {
            do {
                stores[path] = try CredentialStore.load(from: path)
            } catch {
                if case .missing = error { continue }
                throw error
            }
        }
        return stores
    }

    /// Reads the stores and resolves: what `run` and `devices` do.
    /// - Throws: a `GatewayCredentials.Failure` for a file that cannot be read, a `Failure` for
    ///   an entry without credentials.
    public static func resolve(_ configuration: BridgeConfiguration) throws -> [ResolvedGateway] {
        try resolve(configuration, stores: try loadStores(for: configuration))
    }

    /// The gateways to run, in configuration order (for `gateways: auto`, store order).
    /// - Parameter stores: credential stores by path; a path without a store has no file.
    public static func resolve(
        _ configuration: BridgeConfiguration, stores: [String: CredentialStore]
    ) throws(Failure) -> [ResolvedGateway] {
        if configuration.gatewaysAuto { return try resolveAuto(configuration, stores: stores) }
        var resolved: [ResolvedGateway] = []
        for (index, entry) in configuration.gateways.enumerated() {
            let key = configuration.key(ofGateway: index)
            let credentials = try choose(for: entry, key: key, in: stores[entry.credentials], form: configuration)
            if let earlier = resolved.first(where: { $0.gatewayID.lowercased() == credentials.gatewayID.lowercased() })
            {
                throw Failure(
                    key: key,
                    message:
                        "uses the credentials of gateway \(credentials.gatewayID), as \(earlier.key) ('\(earlier.name)') does; each gateway can run once: pair the other gateway ('tradfri-bridge auth --name \(entry.name)') or say which with id:"
                )
            }
            resolved.append(ResolvedGateway(entry: entry, credentials: credentials, key: key))
        }
        return resolved
    }

    private static func choose(
        for entry: BridgeConfiguration.GatewayEntry, key: String, in store: CredentialStore?,
        form configuration: BridgeConfiguration
    ) throws(Failure) -> GatewayCredentials {
        let path = entry.credentials
        let pairHint =
            configuration.gatewaysForm == .list
            ? "'tradfri-bridge auth --gateway HOST --security-code CODE --name \(entry.name)'"
            : "'tradfri-bridge auth --gateway HOST --security-code CODE'"
        guard let store, !store.isEmpty else {
            throw Failure(key: key, message: "no gateway credentials at \(path): pair first with \(pairHint)")
        }
        if let id = entry.id {
            guard let found = store.entry(gatewayID: id) else {
                throw Failure(
                    key: key + ".id",
                    message:
                        "\(path) holds no credentials for gateway \(id) (it holds \(list(store))): pair it with \(pairHint)"
                )
            }
            return found
        }
        if let found = store.entry(named: entry.name) { return found }
        if case .host(let host, let port) = entry.address {
            let there = store.entries(at: host, port: port)
            if there.count == 1, let found = there.first { return found }
        }
        if store.entries.count == 1, let only = store.entries.first { return only }
        throw Failure(
            key: key,
            message:
                "the credentials file \(path) holds \(store.entries.count) gateways (\(list(store))) and none is named '\(entry.name)'; say which with id: or name:"
        )
    }

    private static func resolveAuto(
        _ configuration: BridgeConfiguration, stores: [String: CredentialStore]
    ) throws(Failure) -> [ResolvedGateway] {
        let template = configuration.gateway
        let key = configuration.key(ofGateway: 0)
        guard let store = stores[template.credentials], !store.isEmpty else {
            throw Failure(
                key: key,
                message:
                    "auto: no gateway is paired in \(template.credentials): pair first with 'tradfri-bridge auth --gateway HOST --security-code CODE --name NAME'"
            )
        }
        var resolved: [ResolvedGateway] = []
        for credentials in store.entries {
            var entry = template
            entry.name = credentials.displayName
            entry.address = .auto
            entry.id = credentials.gatewayID.lowercased()
            if let problem = BridgeConfiguration.GatewayEntry.nameProblem(entry.name) {
                throw Failure(key: key, message: "gateway \(credentials.gatewayID): \(problem)")
            }
            if let earlier = resolved.first(where: { $0.name == entry.name }) {
                throw Failure(
                    key: key,
                    message:
                        "gateways \(earlier.gatewayID) and \(credentials.gatewayID) would both be named '\(entry.name)'; pair one again with another --name"
                )
            }
            resolved.append(ResolvedGateway(entry: entry, credentials: credentials, key: key))
        }
        return resolved
    }

    /// "0123…ef 'upstairs', 7e11…72" for messages: ids and names, never keys.
    private static func list(_ store: CredentialStore) -> String {
        store.entries.map { entry in entry.name.map { "\(entry.gatewayID) '\($0)'" } ?? entry.gatewayID }
            .joined(separator: ", ")
    }
}
