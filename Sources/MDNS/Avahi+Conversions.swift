internal import CAvahiClient
import Glibc

// Conversions between avahi's C values and Swift values. Every function copies: nothing returned
// here points into memory owned by avahi, so callbacks can hand the results to other threads.

/// Copies a C string avahi passed to a callback (nil → "").
func copyString(_ pointer: UnsafePointer<CChar>?) -> String {
    guard let pointer else { return "" }
    return String(cString: pointer)
}

extension MDNSIPProtocol {
    var avahiProtocol: AvahiProtocol {
        switch self {
        case .any: AvahiProtocol(AVAHI_PROTO_UNSPEC)
        case .ipv4: AvahiProtocol(AVAHI_PROTO_INET)
        case .ipv6: AvahiProtocol(AVAHI_PROTO_INET6)
        }
    }

    /// The DNS record types that carry addresses of this protocol.
    var addressRecordTypes: [UInt16] {
        switch self {
        case .any: [UInt16(AVAHI_DNS_TYPE_A), UInt16(AVAHI_DNS_TYPE_AAAA)]
        case .ipv4: [UInt16(AVAHI_DNS_TYPE_A)]
        case .ipv6: [UInt16(AVAHI_DNS_TYPE_AAAA)]
        }
    }
}

let unspecifiedInterface = AvahiIfIndex(AVAHI_IF_UNSPEC)

// MARK: TXT records

/// Copies an avahi string list into a dictionary. `key=value` → value, `key` → "". If a key
/// repeats, the first entry in list order wins.
func copyTXT(_ list: UnsafeMutablePointer<AvahiStringList>?) -> [String: String] {
    var result: [String: String] = [:]
    var node = list
    while let current = node {
        let size = avahi_string_list_get_size(current)
        if let text = avahi_string_list_get_text(current), size > 0 {
            let bytes = UnsafeBufferPointer(start: text, count: size)
            let key: String
            let value: String
            if let equals = bytes.firstIndex(of: UInt8(ascii: "=")) {
                key = String(decoding: bytes[..<equals], as: UTF8.self)
                value = String(decoding: bytes[(equals + 1)...], as: UTF8.self)
            } else {
                key = String(decoding: bytes, as: UTF8.self)
                value = ""
            }
            if !key.isEmpty, result[key] == nil { result[key] = value }
        }
        node = avahi_string_list_get_next(current)
    }
    return result
}

/// Parses the rdata of a TXT record (length-prefixed strings).
func parseTXT(rdata: UnsafeRawPointer?, size: Int) -> [String: String] {
    guard let rdata else { return [:] }
    var list: UnsafeMutablePointer<AvahiStringList>?
    guard avahi_string_list_parse(rdata, size, &list) >= 0 else { return [:] }
    defer { avahi_string_list_free(list) }
    return copyTXT(list)
}

/// Builds an avahi string list (owned by the caller: `avahi_string_list_free`) in key order, so
/// the same dictionary always produces the same record.
func makeStringList(_ txt: [String: String]) -> UnsafeMutablePointer<AvahiStringList>? {
    var list: UnsafeMutablePointer<AvahiStringList>?
    // avahi_string_list_add_pair prepends, so add in reverse order.
    for key in txt.keys.sorted().reversed() {
        list = avahi_string_list_add_pair(list, key, txt[key]!)
    }
    return list
}

// MARK: Addresses

/// Formats an address; link-local IPv6 gets a `%<interface index>` scope so it can be used.
func formatAddress(_ address: UnsafePointer<AvahiAddress>, interface: AvahiIfIndex) -> String {
    var buffer = [CChar](repeating: 0, count: Int(AVAHI_ADDRESS_STR_MAX) + 16)
    guard avahi_address_snprint(&buffer, buffer.count, address) != nil else { return "" }
    let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    if address.pointee.proto == AvahiProtocol(AVAHI_PROTO_INET6), text.lowercased().hasPrefix("fe80"),
        interface >= 0
    {
        return "\(text)%\(interface)"
    }
    return text
}

/// Formats the rdata of an A or AAAA record; nil for anything else.
func formatAddress(rdata: UnsafeRawPointer?, size: Int, type: UInt16, interface: AvahiIfIndex) -> String? {
    guard let rdata else { return nil }
    var address = AvahiAddress()
    switch (Int(type), size) {
    case (AVAHI_DNS_TYPE_A, 4):
        address.proto = AvahiProtocol(AVAHI_PROTO_INET)
    case (AVAHI_DNS_TYPE_AAAA, 16):
        address.proto = AvahiProtocol(AVAHI_PROTO_INET6)
    default:
        return nil
    }
    withUnsafeMutableBytes(of: &address.data) { $0.copyMemory(from: UnsafeRawBufferPointer(start: rdata, count: size)) }
    return formatAddress(&address, interface: interface)
}

/// Parses an IPv4 or IPv6 address string for publishing.
func parseAddress(_ text: String) throws(MDNSError) -> AvahiAddress {
    var address = AvahiAddress()
    guard avahi_address_parse(text, AvahiProtocol(AVAHI_PROTO_UNSPEC), &address) != nil else {
        throw .invalidArgument("not an IP address: '\(text)'")
    }
    return address
}

// MARK: Names

/// The full DNS name of a service instance, e.g. `My\032Gateway._coap._udp.local`, escaped the
/// way `avahi_service_name_join` does (that function is not in the C module's headers).
func serviceFullName(name: String, type: String, domain: String) -> String {
    var escaped = ""
    for byte in name.utf8 {
        switch byte {
        case UInt8(ascii: "."), UInt8(ascii: "\\"):
            escaped += "\\" + String(UnicodeScalar(byte))
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            escaped += String(UnicodeScalar(byte))
        default:
            let digits = String(byte)
            escaped += "\\" + String(repeating: "0", count: 3 - digits.count) + digits
        }
    }
    return "\(escaped).\(trimmedName(type)).\(trimmedName(domain))"
}

/// Drops a trailing dot: "emonpi.local." → "emonpi.local".
func trimmedName(_ name: String) -> String {
    name.hasSuffix(".") ? String(name.dropLast()) : name
}
