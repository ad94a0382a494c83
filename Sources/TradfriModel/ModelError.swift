import HubModel

/// Why a gateway payload could not be read; the description names the resource and key.
public enum ModelError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidJSON(JSONError)
    case notAnObject(String)
    case missingKey(String, in: String)
    case wrongType(key: String, expected: String, found: String, in: String)

    public var description: String {
        switch self {
        case .invalidJSON(let error): return "gateway sent \(error)"
        case .notAnObject(let what): return "\(what) is not a JSON object"
        case .missingKey(let key, let what): return "\(what) has no key \(key)"
        case .wrongType(let key, let expected, let found, let what):
            return "\(what): key \(key) should be \(expected) but is \(found)"
        }
    }
}

/// Reading typed values out of a gateway object, with errors that name the key.
struct ObjectReader {
    let members: [String: JSON]
    let what: String

    init(_ json: JSON, _ what: String) throws(ModelError) {
        guard let members = json.objectValue else { throw .notAnObject(what) }
        self.members = members
        self.what = what
    }

    func requiredInt(_ key: String) throws(ModelError) -> Int {
        guard let value = members[key] else { throw .missingKey(key, in: what) }
        guard let int = value.intValue else {
            throw .wrongType(key: key, expected: "an integer", found: value.kindDescription, in: what)
        }
        return int
    }

    /// A lenient read: absent or of another type gives nil (the gateway adds and drops keys
    /// between firmware versions; a bridge must not fail on that).
    func int(_ key: String) -> Int? { members[key]?.intValue }
    func double(_ key: String) -> Double? { members[key]?.doubleValue }
    func bool(_ key: String) -> Bool? { members[key]?.boolValue }
    func string(_ key: String) -> String? { members[key]?.stringValue }
    func has(_ key: String) -> Bool { members[key] != nil }

    /// The first element of a capability array such as "3311": [{…}].
    func capability(_ key: String) -> JSON? {
        members[key]?.arrayValue?.first
    }
}

/// Something the gateway returns as one JSON object (a device, group, scene, its details).
public protocol GatewayResource {
    init(json: JSON) throws(ModelError)
}

extension GatewayResource {
    /// Decodes a payload as the gateway sent it; broken JSON is `ModelError.invalidJSON`.
    public init(payload: [UInt8]) throws(ModelError) {
        try self.init(json: try JSON.gatewayPayload(payload))
    }
}

extension JSON {
    /// Parses a gateway payload, wrapping syntax errors in `ModelError`.
    static func gatewayPayload(_ bytes: [UInt8]) throws(ModelError) -> JSON {
        do {
            return try JSON(parsing: bytes)
        } catch {
            throw .invalidJSON(error)
        }
    }
}
