/// Which kind of hub a gateway entry is. Each kind brings its own session, pairing and payloads;
/// today only the TRÅDFRI gateway (CoAP/DTLS).
public enum HubKind: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    case tradfri

    public var description: String { rawValue }
}

extension BridgeConfiguration {
    /// One gateway the bridge drives: where it is, which stored pairing it uses, how it is paced.
    /// `gateway:` and each item of `gateways:` read into one of these.
    public struct GatewayEntry: Sendable, Equatable {
        /// Short and topic-safe (see `nameProblem(_:)`); used in logs, topics and `bridge/info`.
        public var name: String = GatewayEntry.defaultName
        public var kind: HubKind = .tradfri
        /// The gateway id (9081, 16 lower-case hex characters) whose stored credentials this entry
        /// uses; nil lets `GatewayResolution` choose by name, address or a store of one.
        public var id: String?
        public var address: GatewayAddress = .auto
        /// The credential store (written by `tradfri-bridge auth`, mode 0600).
        public var credentials: String = BridgeConfiguration.defaultStateDirectory + "/credentials.json"
        /// Seconds between CoAP pings while the session is quiet.
        public var keepAlive: Double = 10
        public var requestTimeout: Double = 10
        /// Seconds in which every observed item is read once again (0: never).
        public var auditInterval: Double = 600
        /// Minimum seconds between two PUTs to the same device.
        public var commandSpacing: Double = 0.5
        /// Longest wait between reconnect attempts.
        public var reconnectMaxDelay: Double = 60

        public init() {}

        /// The name of the one gateway of a `gateway:` section that does not give `name:`.
        public static let defaultName = "gateway"
        /// Names that would collide with the bridge's own topics.
        public static let reservedNames: Set<String> = ["bridge"]

        /// Why `name` cannot name a gateway, or nil if it can: 1…32 of lower-case letters, digits,
        /// `_` and `-`, and not `bridge`.
        public static func nameProblem(_ name: String) -> String? {
            guard !name.isEmpty, name.count <= 32,
                name.unicodeScalars.allSatisfy({
                    ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
                })
            else { return "'\(name)' must be 1…32 lower-case letters, digits, '_' or '-'" }
            guard !reservedNames.contains(name) else { return "'\(name)' is reserved for the bridge's own topics" }
            return nil
        }

        /// Whether `id` looks like a gateway id (9081): 16 hex characters.
        public static func isGatewayID(_ id: String) -> Bool {
            id.count == 16 && id.lowercased().allSatisfy { "0123456789abcdef".contains($0) }
        }
    }

    /// Kept for callers that predate several gateways.
    public typealias Gateway = GatewayEntry

    /// How the file describes its gateways.
    public enum GatewaysForm: Sendable, Equatable {
        /// `gateway:` (or nothing): one gateway; every topic as before several gateways existed.
        case section
        /// `gateways:` as a list of entries.
        case list
        /// `gateways: auto`: every gateway paired in the credentials file, found by mDNS.
        case auto
    }

    /// `gateways: auto`: run every gateway the credential store holds.
    public var gatewaysAuto: Bool { gatewaysForm == .auto }

    /// The first gateway entry (the only one of a `gateway:` section). For callers that drive one
    /// gateway; setting it replaces the first entry.
    public var gateway: GatewayEntry {
        get { gateways.first ?? GatewayEntry() }
        set {
            if gateways.isEmpty { gateways = [newValue] } else { gateways[0] = newValue }
        }
    }

    /// The key path of entry `index` in messages: `gateway`, `gateways[1]`, or `gateways`.
    public func key(ofGateway index: Int) -> String {
        switch gatewaysForm {
        case .section: "gateway"
        case .list: "gateways[\(index)]"
        case .auto: "gateways"
        }
    }
}

// MARK: - Reading

extension BridgeConfiguration {
    /// Reads `gateway:` (one gateway) or `gateways:` (a list, `auto`, or a mapping with
    /// `auto: true` and the keys every found gateway shares); both at once is an error.
    mutating func readGateways(section: ConfigNode?, list: ConfigNode?) throws(ConfigurationError) {
        if let section, let list {
            throw list.error(
                "give either 'gateway:' (one gateway) or 'gateways:' (several), not both (gateway: is at line \(section.line.map(String.init) ?? "?"))"
            )
        }
        if let section {
            var entry = GatewayEntry()
            try entry.read(section, allowed: GatewayEntry.entryKeys)
            gateways = [entry]
            gatewaysForm = .section
            return
        }
        guard let list else { return }
        if case .scalar = list.node, !list.isNull {
            guard try list.string().lowercased() == "auto" else {
                throw list.error("must be 'auto' or a list of gateways (each '- name: …')")
            }
            gateways = [GatewayEntry()]
            gatewaysForm = .auto
            return
        }
        if list.node.mapping != nil {
            let keys = try list.members(allowed: ["auto"] + GatewayEntry.sharedKeys)
            guard let auto = keys["auto"], try auto.bool() else {
                throw list.error(
                    "a mapping here must say 'auto: true' (every paired gateway); list gateways as '- name: …' items")
            }
            var template = GatewayEntry()
            try template.read(list, allowed: ["auto"] + GatewayEntry.sharedKeys)
            gateways = [template]
            gatewaysForm = .auto
            return
        }
        guard list.node.sequence != nil else {
            throw list.error("must be 'auto' or a list of gateways (each '- name: …')")
        }
        let items = try list.items()
        guard !items.isEmpty else {
            throw list.error("the list is empty: list at least one gateway, or say 'auto'")
        }
        var entries: [GatewayEntry] = []
        var nameNodes: [String: (index: Int, node: ConfigNode)] = [:]
        var idNodes: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            let keys = try item.members(allowed: GatewayEntry.entryKeys)
            guard let nameNode = keys["name"] else {
                throw item.error(
                    "needs a name: a short one used in logs and topics (lower-case letters, digits, '_' or '-')")
            }
            var entry = GatewayEntry()
            try entry.read(item, allowed: GatewayEntry.entryKeys)
            if let earlier = nameNodes[entry.name] {
                throw nameNode.error("'\(entry.name)' is used by gateways[\(earlier.index)] too")
            }
            nameNodes[entry.name] = (index, nameNode)
            if let id = entry.id, let idNode = keys["id"] {
                if let earlier = idNodes[id] {
                    throw idNode.error("gateway \(id) is gateways[\(earlier)] too; each gateway can be listed once")
                }
                idNodes[id] = index
            }
            entries.append(entry)
        }
        gateways = entries
        gatewaysForm = .list
    }
}

extension BridgeConfiguration.GatewayEntry {
    /// The keys a found gateway of `gateways: auto` shares with the others.
    static let sharedKeys = [
        "kind", "credentials", "keepalive", "request_timeout", "command_spacing", "reconnect_max_delay",
        "audit_interval",
    ]
    /// The keys of `gateway:` and of each `gateways:` item.
    static let entryKeys = ["name", "id", "address"] + sharedKeys

    mutating func read(_ node: ConfigNode, allowed: [String]) throws(ConfigurationError) {
        let keys = try node.members(allowed: allowed)
        if let value = keys["name"] {
            let text = try value.string()
            if let problem = Self.nameProblem(text) { throw value.error(problem) }
            name = text
        }
        if let value = keys["kind"] {
            kind = HubKind(rawValue: try value.oneOf(HubKind.allCases.map(\.rawValue))) ?? .tradfri
        }
        if let value = keys["id"] {
            let text = try value.string()
            guard Self.isGatewayID(text) else {
                throw value.error(
                    "'\(text)' is not a gateway id (16 hex characters, as 'tradfri-bridge auth' and 'devices' print it)"
                )
            }
            id = text.lowercased()
        }
        if let value = keys["address"] {
            guard let address = BridgeConfiguration.GatewayAddress.parse(try value.string()) else {
                throw value.error("must be 'auto', a host name or address, or HOST:PORT")
            }
            self.address = address
        }
        if let value = keys["credentials"] {
            let path = try value.string()
            guard !path.isEmpty else { throw value.error("must be the path of the credentials file") }
            credentials = path
        }
        if let value = keys["keepalive"] { keepAlive = try value.seconds(in: 1...600) }
        if let value = keys["request_timeout"] { requestTimeout = try value.seconds(in: 1...120) }
        if let value = keys["command_spacing"] { commandSpacing = try value.seconds(in: 0...10) }
        if let value = keys["reconnect_max_delay"] { reconnectMaxDelay = try value.seconds(in: 1...3600) }
        if let value = keys["audit_interval"] {
            auditInterval = try value.seconds(in: 0...86400)
            if auditInterval > 0, auditInterval < 60 {
                throw value.error(
                    "must be 0 (off) or at least 60 seconds (reading every item more often strains the gateway)")
            }
        }
    }
}
