/// One resolved DNS-SD service instance, e.g. a TRÅDFRI gateway
/// (`gw-a0cc2b6f6b31` of type `_coap._udp`) or an MQTT broker (`_mqtt._tcp`).
public struct MDNSService: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The instance name, unescaped, e.g. `gw-a0cc2b6f6b31` or `Living Room Broker`.
    public var name: String
    /// The service type, e.g. `_coap._udp`.
    public var type: String
    /// The domain, normally `local`.
    public var domain: String
    /// The SRV target host, e.g. `TRADFRI-Gateway-a0cc2b6f6b31.local`.
    public var hostName: String
    /// Every address currently known for `hostName`, best first:
    /// routable IPv4, link-local IPv4 (169.254/16, which a gateway that booted without DHCP keeps
    /// advertising), loopback IPv4, IPv6, link-local IPv6 (with a `%<interface index>` scope).
    /// Never empty for a service reported by `MDNSBrowser`.
    public var addresses: [String]
    public var port: UInt16
    /// The TXT record as key/value pairs (`version=1.3.14` → `["version": "1.3.14"]`); a key
    /// without `=` maps to "". Values that are not UTF-8 are decoded lossily.
    public var txt: [String: String]
    /// The interface (in the avahi-daemon's network namespace) the service was first seen on.
    public var interfaceIndex: Int32

    public init(
        name: String, type: String, domain: String = "local", hostName: String, addresses: [String],
        port: UInt16, txt: [String: String] = [:], interfaceIndex: Int32 = -1
    ) {
        self.name = name
        self.type = type
        self.domain = domain
        self.hostName = hostName
        self.addresses = addresses
        self.port = port
        self.txt = txt
        self.interfaceIndex = interfaceIndex
    }

    /// The first routable IPv4 address, else the best address there is.
    public var preferredAddress: String? { addresses.first }

    public var description: String {
        let txtText = txt.keys.sorted().map { "\($0)=\(txt[$0]!)" }.joined(separator: " ")
        return "\(name).\(type).\(domain) at \(hostName):\(port) \(addresses) [\(txtText)]"
    }
}

/// Which IP protocol to use for mDNS traffic and addresses.
public enum MDNSIPProtocol: Sendable, Equatable {
    /// IPv4 and IPv6.
    case any
    case ipv4
    case ipv6
}

/// Orders addresses as documented on `MDNSService.addresses`; stable within a class.
func sortedAddresses(_ addresses: [String]) -> [String] {
    func rank(_ address: String) -> Int {
        if address.contains(":") {
            return address.lowercased().hasPrefix("fe80") ? 4 : 3
        }
        if address.hasPrefix("169.254.") { return 1 }
        if address.hasPrefix("127.") { return 2 }
        return 0
    }
    return addresses.enumerated()
        .sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }
        .map(\.element)
}
