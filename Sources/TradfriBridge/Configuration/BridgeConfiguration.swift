import Foundation
import Yams

/// Everything the bridge can be told, with the defaults a fresh install runs with.
/// `config/tradfri-bridge.example.yaml` documents each key; `load(path:)` reads that format.
public struct BridgeConfiguration: Sendable, Equatable {
    /// A gateway address: found by mDNS, or given.
    public enum GatewayAddress: Sendable, Equatable, CustomStringConvertible {
        case auto
        case host(String, port: UInt16)

        public var description: String {
            switch self {
            case .auto: "auto"
            case .host(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            }
        }

        /// Parses "auto", "HOST", "HOST:PORT" or "[IPv6]:PORT" (port 5684 when absent).
        public static func parse(_ text: String) -> GatewayAddress? {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if trimmed.lowercased() == "auto" { return .auto }
            guard let (host, port) = splitHostPort(trimmed, defaultPort: 5684) else { return nil }
            return .host(host, port: port)
        }
    }

    /// An MQTT broker: found by mDNS / base-station names / localhost, or given as a URL.
    public enum BrokerAddress: Sendable, Equatable, CustomStringConvertible {
        case auto
        case url(tls: Bool, host: String, port: UInt16)

        public var description: String {
            switch self {
            case .auto: "auto"
            case .url(let tls, let host, let port): "\(tls ? "mqtts" : "mqtt")://\(host):\(port)"
            }
        }

        /// Parses "auto", "mqtt://host[:port]", "mqtts://host[:port]" or a bare "host[:port]".
        public static func parse(_ text: String) -> BrokerAddress? {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if trimmed.lowercased() == "auto" { return .auto }
            var rest = trimmed
            var tls = false
            if rest.hasPrefix("mqtts://") {
                tls = true
                rest.removeFirst("mqtts://".count)
            } else if rest.hasPrefix("mqtt://") {
                rest.removeFirst("mqtt://".count)
            } else if rest.contains("://") {
                return nil
            }
            if rest.hasSuffix("/") { rest.removeLast() }
            guard let (host, port) = splitHostPort(rest, defaultPort: tls ? 8883 : 1883) else { return nil }
            return .url(tls: tls, host: host, port: port)
        }
    }

    public struct MQTT: Sendable, Equatable {
        public var server: BrokerAddress = .auto
        public var baseTopic = "tradfri"
        public var clientID: String = "tradfri-bridge-" + BridgeConfiguration.hostName
        public var user: String?
        public var password: String?
        public var passwordFile: String?
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        public var insecure = false
        /// 5 (MQTT 5) or 4 (MQTT 3.1.1).
        public var version = 5
        public var keepAlive = 60
        /// Retain device state topics (a light's last state is what a new subscriber wants).
        public var retainState = true
        /// With `server: auto`, host names of base stations to try after mDNS (e.g. emonpi.local).
        public var baseStations: [String] = []
    }

    public struct HomeAssistant: Sendable, Equatable {
        public var enabled = true
        public var discoveryPrefix = "homeassistant"
        public var statusTopic = "homeassistant/status"
        /// Seconds to wait after Home Assistant comes online before announcing again.
        public var republishDelay: Double = 10
    }

    public struct Discovery: Sendable, Equatable {
        /// Use mDNS (avahi) to find the gateway and broker when their address is `auto`.
        public var enabled = true
        /// Advertise the bridge as a service so LAN devices find it.
        public var advertise = true
        /// Also advertise the broker as `_mqtt._tcp` (when the broker runs on this host).
        public var advertiseBroker = false
        public var timeout: Double = 5
    }

    public struct Pairing: Sendable, Equatable {
        /// Serve the device pairing API (HTTPS, secure mode).
        public var enabled = false
        public var listen = "0.0.0.0:8443"
        /// Also answer EmonESP's legacy plain-HTTP requests while a window is open.
        public var legacy = false
        public var legacyListen = "0.0.0.0:80"
        /// Send the `emonpi.local` UDP broadcast while a legacy window is open.
        public var legacyBroadcast = false
        /// Default length of a pairing window.
        public var windowMinutes = 5
        public var maxPending = 16
        /// Seconds an allowed device has to collect its credentials.
        public var grantSeconds = 60
        /// Local control socket for `tradfri-bridge pair`.
        public var controlSocket = "/run/tradfri-bridge/control.sock"
        /// Also take the decisions (open, close, allow, deny, revoke) from
        /// `bridge/request/pairing/…`; off, MQTT can only read the pairing state.
        public var approveOverMQTT = false
        /// The bridge's own record of paired devices (the source of truth).
        public var registry = BridgeConfiguration.defaultStateDirectory + "/paired-devices.json"
        public var auditLog = BridgeConfiguration.defaultStateDirectory + "/pairing-audit.log"
        /// Paired devices get topics under `<topic_prefix>/<device>/#`.
        public var topicPrefix = "devices"
        /// The broker account allowed to manage dynamic-security clients.
        public var brokerAdminUser: String?
        public var brokerAdminPasswordFile: String?
        /// Broker address handed to devices (default: this host's LAN address).
        public var brokerHost: String?
        public var brokerPort: Int?
    }

    public struct Health: Sendable, Equatable {
        /// Seconds between two `bridge/health` reports (0: only when the broker connects and on
        /// request).
        public var interval: Double = 600
    }

    /// The Prometheus endpoint (`GET /metrics`), off unless asked for.
    public struct Metrics: Sendable, Equatable {
        public var enabled = false
        /// IPv4 address and port to listen on; keep it local (or behind a firewall): the figures
        /// are not secret, but nothing else should reach the bridge.
        public var listen = "127.0.0.1:9464"
    }

    public struct Web: Sendable, Equatable {
        /// `auto`: HTTPS unless the page listens on a loopback address.
        public enum Scheme: String, Sendable, Equatable {
            case auto, https, http
        }

        /// Serve the web page (pairing decisions, live home, health).
        public var enabled = true
        /// Loopback by default: reaching it from the LAN is the user's explicit choice.
        public var listen = "127.0.0.1:8080"
        public var scheme = Scheme.auto
        /// The administrator's name and password hash (`tradfri-bridge web-password` writes it).
        public var passwordFile = BridgeConfiguration.defaultStateDirectory + "/web-password"
        /// Seconds without a request from the page before its session ends.
        public var sessionTimeout: Double = 1800

        /// `listen` as host and port (port 0: any free port, which the log names).
        public var address: (host: String, port: Int)? {
            if let (host, port) = splitHostPort(listen, defaultPort: 8080) { return (host, Int(port)) }
            guard listen.hasSuffix(":0"), let (host, _) = splitHostPort(String(listen.dropLast(2)), defaultPort: 8080)
            else { return nil }
            return (host, 0)
        }

        /// Whether `listen` is a loopback address (127.0.0.0/8, ::1, localhost).
        public var listensOnLoopback: Bool {
            guard let host = address?.host else { return false }
            return host == "localhost" || host == "::1" || host.hasPrefix("127.")
        }

        /// Whether the page is served over HTTPS.
        public var usesHTTPS: Bool {
            switch scheme {
            case .https: true
            case .http: false
            case .auto: !listensOnLoopback
            }
        }
    }

    public struct Logging: Sendable, Equatable {
        public var level = "info"
        public var format = "text"
        /// A repeated warning is logged once, then summarised once per this many seconds (0: every time).
        public var repeatInterval: Double = 600
    }

    /// The gateways to bridge, in the order the file lists them. With `gateway:` (one gateway,
    /// the form every existing file uses) or no section at all this is one entry named
    /// `gateway`; with `gateways: auto` it is one entry whose credentials file and tuning every
    /// paired gateway uses (`GatewayResolution` turns it into one gateway per stored pairing).
    /// Never empty.
    public var gateways: [GatewayEntry] = [GatewayEntry()]
    /// Which form of the gateway section the file used.
    public var gatewaysForm: GatewaysForm = .section
    public var mqtt = MQTT()
    public var homeAssistant = HomeAssistant()
    public var discovery = Discovery()
    public var pairing = Pairing()
    public var health = Health()
    public var metrics = Metrics()
    public var web = Web()
    public var logging = Logging()
    public var takeover = Takeover()

    public init() {}

    public static let defaultPath = "/etc/tradfri-bridge/config.yaml"

    /// systemd's `StateDirectory=` (STATE_DIRECTORY), else /var/lib/tradfri-bridge.
    public static var defaultStateDirectory: String {
        ProcessInfo.processInfo.environment["STATE_DIRECTORY"]?.split(separator: ":").first.map(String.init)
            ?? "/var/lib/tradfri-bridge"
    }

    /// Where the bridge keeps its state besides the credentials: the directory of
    /// `pairing.registry` (its certificate, the pairing registry).
    public var stateDirectory: String {
        (pairing.registry as NSString).deletingLastPathComponent
    }

    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "host" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.split(separator: ".").first.map(String.init) ?? "host"
    }
}

// MARK: - Loading

extension BridgeConfiguration {
    /// Reads a configuration file. A missing file at the default path gives the defaults; a
    /// missing file that was asked for explicitly is an error.
    public static func load(path: String?) throws(ConfigurationError) -> BridgeConfiguration {
        let file = path ?? defaultPath
        guard FileManager.default.fileExists(atPath: file) else {
            if path == nil { return BridgeConfiguration() }
            throw ConfigurationError(file: file, line: nil, key: "", message: "no such file")
        }
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ConfigurationError(
                file: file, line: nil, key: "", message: "cannot be read: \(error.localizedDescription)")
        }
        return try parse(text, file: file)
    }

    public static func parse(_ text: String, file: String = "config") throws(ConfigurationError) -> BridgeConfiguration
    {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
                .composer(_, let problem, let mark, _):
                throw ConfigurationError(file: file, line: mark.line, key: "", message: "not valid YAML: \(problem)")
            default:
                throw ConfigurationError(file: file, line: nil, key: "", message: "not valid YAML: \(error)")
            }
        } catch {
            throw ConfigurationError(file: file, line: nil, key: "", message: "not valid YAML: \(error)")
        }
        var configuration = BridgeConfiguration()
        guard let root else { return configuration }
        let sections = try ConfigNode(node: root, key: "", file: file).members(
            allowed: [
                "gateway", "gateways", "mqtt", "homeassistant", "discovery", "pairing", "health", "metrics", "web",
                "logging", "takeover",
            ])
        try configuration.readGateways(section: sections["gateway"], list: sections["gateways"])
        if let node = sections["mqtt"] { try configuration.mqtt.read(node) }
        if let node = sections["homeassistant"] { try configuration.homeAssistant.read(node) }
        if let node = sections["discovery"] { try configuration.discovery.read(node) }
        if let node = sections["pairing"] { try configuration.pairing.read(node) }
        if let node = sections["health"] { try configuration.health.read(node) }
        if let node = sections["metrics"] { try configuration.metrics.read(node) }
        if let node = sections["web"] { try configuration.web.read(node) }
        if let node = sections["logging"] { try configuration.logging.read(node) }
        if let node = sections["takeover"] { try configuration.takeover.read(node) }
        // Takeover first: with it, pairing's own requirements do not matter.
        try configuration.validateTakeover(file: file)
        try configuration.validate(file: file)
        return configuration
    }

    /// Checks that need more than one key.
    func validate(file: String) throws(ConfigurationError) {
        if web.enabled, !web.usesHTTPS, !web.listensOnLoopback {
            throw ConfigurationError(
                file: file, line: nil, key: "web.scheme",
                message:
                    "plain HTTP is allowed only on a loopback address (web.listen is \(web.listen)): use scheme auto or https"
            )
        }
        if homeAssistant.enabled, homeAssistant.discoveryPrefix == mqtt.baseTopic {
            throw ConfigurationError(
                file: file, line: nil, key: "homeassistant.discovery_prefix",
                message: "must differ from mqtt.base_topic")
        }
        if mqtt.password != nil, mqtt.passwordFile != nil {
            throw ConfigurationError(
                file: file, line: nil, key: "mqtt.password_file",
                message: "give either mqtt.password or mqtt.password_file, not both")
        }
        if pairing.enabled, pairing.brokerAdminUser == nil {
            throw ConfigurationError(
                file: file, line: nil, key: "pairing.broker_admin_user",
                message: "pairing needs a broker account allowed to manage dynamic security")
        }
        if (mqtt.certFile == nil) != (mqtt.keyFile == nil) {
            throw ConfigurationError(
                file: file, line: nil, key: "mqtt.cert_file",
                message: "a client certificate needs both cert_file and key_file")
        }
    }
}

extension BridgeConfiguration.MQTT {
    mutating func read(_ node: ConfigNode) throws(ConfigurationError) {
        let keys = try node.members(allowed: [
            "server", "base_topic", "client_id", "user", "password", "password_file", "ca_file", "cert_file",
            "key_file", "insecure", "version", "keepalive", "retain_state", "base_stations",
        ])
        if let value = keys["server"] {
            guard let server = BridgeConfiguration.BrokerAddress.parse(try value.string()) else {
                throw value.error("must be 'auto' or a URL such as mqtt://localhost:1883 or mqtts://broker:8883")
            }
            self.server = server
        }
        if let value = keys["base_topic"] {
            let topic = try value.string()
            guard !topic.isEmpty, !topic.contains("+"), !topic.contains("#"), !topic.hasPrefix("/"),
                !topic.hasSuffix("/")
            else { throw value.error("must be a topic without wildcards or leading/trailing '/'") }
            baseTopic = topic
        }
        if let value = keys["client_id"] {
            let id = try value.string()
            guard !id.isEmpty, id.utf8.count <= 128 else { throw value.error("must be 1…128 characters") }
            clientID = id
        }
        if let value = keys["user"] { user = try value.optionalString() }
        if let value = keys["password"] { password = try value.optionalString() }
        if let value = keys["password_file"] { passwordFile = try value.optionalString() }
        if let value = keys["ca_file"] { caFile = try value.optionalString() }
        if let value = keys["cert_file"] { certFile = try value.optionalString() }
        if let value = keys["key_file"] { keyFile = try value.optionalString() }
        if let value = keys["insecure"] { insecure = try value.bool() }
        if let value = keys["version"] {
            version = try value.int(in: 4...5)
        }
        if let value = keys["keepalive"] { keepAlive = try value.int(in: 5...3600) }
        if let value = keys["retain_state"] { retainState = try value.bool() }
        if let value = keys["base_stations"] { baseStations = try value.stringList() }
    }
}

extension BridgeConfiguration.HomeAssistant {
    mutating func read(_ node: ConfigNode) throws(ConfigurationError) {
        let keys = try node.members(allowed: ["enabled", "discovery_prefix", "status_topic", "republish_delay"])
        func topic(_ value: ConfigNode) throws(ConfigurationError) -> String {
            let topic = try value.string()
            guard !topic.isEmpty, !topic.contains("+"), !topic.contains("#"), !topic.hasPrefix("/"),
                !topic.hasSuffix("/")
            else { throw value.error("must be a topic without wildcards or leading/trailing '/'") }
            return topic
        }
        if let value = keys["enabled"] { enabled = try value.bool() }
        if let value = keys["discovery_prefix"] { discoveryPrefix = try topic(value) }
        if let value = keys["status_topic"] { statusTopic = try topic(value) }
        if let value = keys["republish_delay"] { republishDelay = try value.seconds(in: 0...300) }
    }
}

extension BridgeConfiguration.Discovery {
    mutating func read(_ node: ConfigNode) throws(ConfigurationError) {
        let keys = try node.members(allowed: ["enabled", "advertise", "advertise_broker", "timeout"])
        if let value = keys["enabled"] { enabled = try value.bool() }
        if let value = keys["advertise"] { advertise = try value.bool() }
        if let value = keys["advertise_broker"] { advertiseBroker = try value.bool() }
        if let value = keys["timeout"] { timeout = try value.seconds(in: 1...60) }
    }
}

extension BridgeConfiguration.Pairing {
    mutating func read(_ node: ConfigNode) throws(ConfigurationError) {
        let keys = try node.members(allowed: [
            "enabled", "listen", "legacy", "legacy_listen", "legacy_broadcast", "window_minutes", "max_pending",
            "grant_seconds",
            "control_socket", "approve_over_mqtt", "registry", "audit_log", "topic_prefix", "broker_admin_user",
            "broker_admin_password_file", "broker_host", "broker_port",
        ])
        if let value = keys["enabled"] { enabled = try value.bool() }
        if let value = keys["listen"] { listen = try value.string() }
        if let value = keys["legacy"] { legacy = try value.bool() }
        if let value = keys["legacy_listen"] { legacyListen = try value.string() }
        if let value = keys["legacy_broadcast"] { legacyBroadcast = try value.bool() }
        if let value = keys["window_minutes"] { windowMinutes = try value.int(in: 1...15) }
        if let value = keys["max_pending"] { maxPending = try value.int(in: 1...256) }
        if let value = keys["grant_seconds"] { grantSeconds = try value.int(in: 1...60) }
        if let value = keys["control_socket"] { controlSocket = try value.string() }
        if let value = keys["approve_over_mqtt"] { approveOverMQTT = try value.bool() }
        if let value = keys["registry"] { registry = try value.string() }
        if let value = keys["audit_log"] { auditLog = try value.string() }
        if let value = keys["topic_prefix"] { topicPrefix = try value.string() }
        if let value = keys["broker_admin_user"] { brokerAdminUser = try value.optionalString() }
        if let value = keys["broker_admin_password_file"] { brokerAdminPasswordFile = try value.optionalString() }
        if let value = keys["broker_host"] { brokerHost = try value.optionalString() }
        if let value = keys["broker_port"] { brokerPort = try value.optionalInt(in: 1...65535) }
    }
}

extension BridgeConfiguration.Health {
    mutating func read(_ node: ConfigNode) throws(ConfigurationError) {
        let keys = try node.members(allowed: ["interval"])
        if let value = keys["interval"] { interval = try value.seconds(in: 0...86400) }
    }
}

extension BridgeConfiguration.Metrics {
    mutating func read(_ node: ConfigNode) throws(ConfigurationError) {
        let keys = try node.members(allowed: ["enabled", "listen"])
        if let value = keys["enabled"] { enabled = try value.bool() }
        if let value = keys["listen"] {
            let text = try value.string()
            guard let (host, _) = splitHostPort(text, defaultPort: 9464), host.split(separator: ".").count == 4,
                host.split(separator: ".").allSatisfy({ UInt8($0) != nil })
            else { throw value.error("must be an IPv4 address and port, such as 127.0.0.1:9464") }
            listen = text
        }
    }
}

extension BridgeConfiguration.Web {
    mutating func read(_ node: ConfigNode) throws(ConfigurationError) {
        let keys = try node.members(allowed: ["enabled", "listen", "scheme", "password_file", "session_timeout"])
        if let value = keys["enabled"] { enabled = try value.bool() }
        if let value = keys["listen"] {
            var web = BridgeConfiguration.Web()
            web.listen = try value.string()
            guard let address = web.address, !address.host.isEmpty else {
                throw value.error("must be HOST:PORT, such as 127.0.0.1:8080 or 0.0.0.0:8443")
            }
            listen = web.listen
        }
        if let value = keys["scheme"] {
            scheme = Scheme(rawValue: try value.oneOf(["auto", "https", "http"])) ?? .auto
        }
        if let value = keys["password_file"] {
            let path = try value.string()
            guard path.hasPrefix("/") else { throw value.error("must be an absolute path") }
            passwordFile = path
        }
        if let value = keys["session_timeout"] { sessionTimeout = try value.seconds(in: 5...604_800) }
    }
}

extension BridgeConfiguration.Logging {
    mutating func read(_ node: ConfigNode) throws(ConfigurationError) {
        let keys = try node.members(allowed: ["level", "format", "repeat_interval"])
        if let value = keys["level"] {
            level = try value.oneOf(["trace", "debug", "info", "notice", "warning", "error"])
        }
        if let value = keys["format"] { format = try value.oneOf(["text", "json"]) }
        if let value = keys["repeat_interval"] { repeatInterval = try value.seconds(in: 0...86400) }
    }
}

/// Splits "host", "host:port" or "[v6]:port".
func splitHostPort(_ text: String, defaultPort: UInt16) -> (String, UInt16)? {
    guard !text.isEmpty, !text.contains(" ") else { return nil }
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]") else { return nil }
        let host = String(text[text.index(after: text.startIndex)..<close])
        let rest = text[text.index(after: close)...]
        if rest.isEmpty { return (host, defaultPort) }
        guard rest.hasPrefix(":"), let port = UInt16(rest.dropFirst()), port > 0 else { return nil }
        return (host, port)
    }
    let colons = text.filter { $0 == ":" }.count
    if colons == 0 { return (text, defaultPort) }
    if colons > 1 { return (text, defaultPort) }  // a bare IPv6 address
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard !parts[0].isEmpty, let port = UInt16(parts[1]), port > 0 else { return nil }
    return (String(parts[0]), port)
}
