import Foundation
import HubModel
import TradfriModel

/// One request received on `<base>/bridge/request/<verb>`.
public struct BridgeRequest: Sendable {
    /// The topic after `bridge/request/`, e.g. `health_check` or `device/rename`.
    public let verb: String
    /// The JSON object sent (`{}` for an empty payload), or the bare value for simple requests
    /// (`"kitchen"`, `42`, or text that is not JSON).
    public let payload: JSON
    /// The `transaction` member of the payload, echoed in the response.
    public let transaction: JSON?
    /// The payload as sent when it is not a JSON object (`A3K9`, `2E45`, `"kitchen"` without
    /// its quotes), for verbs that take a bare id: `2E45` is an id there, not a number.
    public let bareText: String?

    public init(verb: String, payload: JSON, transaction: JSON? = nil, bareText: String? = nil) {
        self.verb = verb
        self.payload = payload
        self.transaction = transaction
        self.bareText = bareText ?? payload.stringValue
    }

    /// Parses a request payload: empty → `{}`; a JSON object (its `transaction` is taken out);
    /// any other JSON value as itself; text that is not JSON as a string. Text that starts like
    /// an object but does not parse is an error.
    public static func parse(verb: String, payload bytes: [UInt8]) throws(BridgeRequestError) -> BridgeRequest {
        guard bytes.count <= 16_384 else {
            throw BridgeRequestError("payload of \(bytes.count) bytes is too large (at most 16384)")
        }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty { return BridgeRequest(verb: verb, payload: [:]) }
        let json: JSON
        do {
            json = try JSON(parsing: text, limits: .init(maxDepth: 8, maxBytes: 16_384))
        } catch {
            if text.hasPrefix("{") || text.hasPrefix("[") { throw BridgeRequestError("malformed JSON: \(error)") }
            return BridgeRequest(verb: verb, payload: .string(text), bareText: text)
        }
        guard var object = json.objectValue else {
            return BridgeRequest(verb: verb, payload: json, bareText: json.stringValue ?? text)
        }
        let transaction = object.removeValue(forKey: "transaction")
        return BridgeRequest(verb: verb, payload: .object(object), transaction: transaction)
    }

    /// The payload's members (empty for a bare value).
    public var members: [String: JSON] { payload.objectValue ?? [:] }

    /// A required text member (a number is taken as its digits, for ids).
    public func string(_ key: String) throws(BridgeRequestError) -> String {
        switch members[key] {
        case .string(let text)?: return text
        case .int(let number)?: return String(number)
        case nil, .null?: throw BridgeRequestError("missing '\(key)'")
        case let value?: throw BridgeRequestError("'\(key)' must be text (got \(value.kindDescription))")
        }
    }

    /// Rejects members other than `allowed`, naming the first unknown one.
    public func allowOnly(_ allowed: [String]) throws(BridgeRequestError) {
        if payload.objectValue == nil, payload != [:] {
            throw BridgeRequestError(
                "expected a JSON object such as {\(allowed.map { "\"\($0)\": …" }.joined(separator: ", "))}")
        }
        for key in members.keys.sorted() where !allowed.contains(key) {
            throw BridgeRequestError(
                "unknown member '\(key)'"
                    + (allowed.isEmpty ? " (this request takes none)" : " (known: \(allowed.joined(separator: ", ")))"))
        }
    }
}

/// Why a request failed; the message goes to the requester as `"error"`.
public struct BridgeRequestError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
