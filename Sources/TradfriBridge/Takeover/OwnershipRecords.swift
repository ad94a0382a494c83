import Foundation
import HubModel
import MQTT

/// The topics and payloads of the ownership protocol (see `GatewayOwnership` for the rules).
///
/// Everything lives under `<base>/bridge/takeover/`:
///
/// | topic | retained | payload |
/// |---|---|---|
/// | `instance/<instance>` | yes | `{"instance","session","since","gateways"}` while the instance's ownership connection is up; deleted by its MQTT will and by a clean stop |
/// | `instance/<instance>` | no | the same with `"check": <n>`, before a claim: its echo shows the instance's view is current |
/// | `gateway/<gateway>` | yes | the ownership record: `{"state":"owned","owner","token","since"}`; `"released"` or `"withdrawn"` once given up |
/// | `gateway/<gateway>` | no | the owner's heartbeat `{"heartbeat":<n>,"owner","token"}`, every `heartbeatInterval` |
///
/// Everything is published with QoS 0: libmosquitto sends QoS 1 messages that were in flight when
/// a connection dropped again on the next connection, and a claim or record from before a broker
/// restart arriving after it would replace a newer one. A message lost on the way (which TCP makes
/// rare) only delays a decision: a claim not echoed is made again, a heartbeat not echoed shortens
/// the lease. Only the very last message before a clean disconnect uses QoS 1, so its
/// acknowledgement proves that the broker processed everything before it.
struct OwnershipTopics: Sendable, Equatable {
    let base: String

    var root: String { "\(base)/bridge/takeover" }
    func instance(_ id: String) -> String { "\(root)/instance/\(id)" }
    func gateway(_ id: String) -> String { "\(root)/gateway/\(id)" }
    /// What an instance subscribes to: every instance record and every gateway topic.
    var filters: [String] { ["\(root)/instance/+", "\(root)/gateway/+"] }

    enum Parsed: Equatable {
        case instance(String)
        case gateway(String)
    }

    func parse(_ topic: String) -> Parsed? {
        let prefix = root + "/"
        guard topic.hasPrefix(prefix) else { return nil }
        let parts = topic.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[1].isEmpty else { return nil }
        switch parts[0] {
        case "instance": return .instance(String(parts[1]))
        case "gateway": return .gateway(String(parts[1]))
        default: return nil
        }
    }

    /// Whether `id` can be one level of a topic: not empty, no `/`, `+`, `#`, no control characters
    /// or spaces, at most 128 bytes.
    static func isValidLevel(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128
            && !id.unicodeScalars.contains {
                $0 == "/" || $0 == "+" || $0 == "#" || $0.properties.generalCategory == .control
                    || $0.properties.isWhitespace
            }
    }
}

/// The retained record on `gateway/<id>`.
struct OwnershipRecord: Sendable, Equatable {
    enum State: String, Sendable {
        /// Claimed or held by `owner`.
        case owned
        /// Given up by `owner` after it stopped driving the gateway (a clean stop, a hand-over), or
        /// a claim given up when nobody could have been driving it: the next claimant need not wait
        /// for anyone.
        case released
        /// A claim given up while whoever drove the gateway before might still be driving it: the
        /// next claimant waits the full settle time.
        case withdrawn
    }

    var state: State
    /// The instance id.
    var owner: String
    /// Unique per claim: tells one claim from another by the same instance (before and after a restart).
    var token: String
    /// When the claim was made (ISO 8601, UTC).
    var since: String

    var payload: [UInt8] {
        JSON.object([
            "state": .string(state.rawValue), "owner": .string(owner), "token": .string(token),
            "since": .string(since),
        ]).bytes
    }

    func message(_ topics: OwnershipTopics, gateway: String) -> MQTTMessage {
        MQTTMessage(
            topic: topics.gateway(gateway), payload: payload, qos: .atMostOnce, retain: true,
            contentType: "application/json", payloadIsUTF8: true)
    }
}

/// The non-retained heartbeat on `gateway/<id>`.
struct OwnershipHeartbeat: Sendable, Equatable {
    var sequence: Int
    var owner: String
    var token: String

    func message(_ topics: OwnershipTopics, gateway: String) -> MQTTMessage {
        MQTTMessage(
            topic: topics.gateway(gateway),
            payload: JSON.object(["heartbeat": .int(sequence), "owner": .string(owner), "token": .string(token)]).bytes,
            qos: .atMostOnce, retain: false, contentType: "application/json", payloadIsUTF8: true)
    }
}

/// The retained record on `instance/<id>`.
struct InstanceRecord: Sendable, Equatable {
    var instance: String
    /// Unique per connection: the instance recognises its own record coming back (see `GatewayOwnership`).
    var session: String
    var since: String
    var gateways: [String]

    func message(_ topics: OwnershipTopics) -> MQTTMessage {
        MQTTMessage(
            topic: topics.instance(instance), payload: json.bytes, qos: .atMostOnce, retain: true,
            contentType: "application/json", payloadIsUTF8: true)
    }

    /// The same record, not retained, with `"check": check`: when it comes back, everything the
    /// broker processed before it has arrived too (`OwnershipState`'s freshness check before a
    /// claim). It leaves the retained record alone.
    func check(_ topics: OwnershipTopics, _ check: Int) -> MQTTMessage {
        var json = self.json
        json["check"] = .int(check)
        return MQTTMessage(
            topic: topics.instance(instance), payload: json.bytes, qos: .atMostOnce, retain: false,
            contentType: "application/json", payloadIsUTF8: true)
    }

    private var json: JSON {
        .object([
            "instance": .string(instance), "session": .string(session), "since": .string(since),
            "gateways": .array(gateways.map { .string($0) }),
        ])
    }

    /// The check number in a record that came back, if it is a check.
    static func check(in payload: [UInt8]) -> Int? {
        (try? JSON(parsing: payload))?["check"]?.intValue
    }

    /// The empty retained message that deletes the record: the will, and (with QoS 1) the last
    /// word of a clean stop.
    static func deletion(_ topics: OwnershipTopics, instance: String, qos: MQTTQoS = .atMostOnce) -> MQTTMessage {
        MQTTMessage(topic: topics.instance(instance), payload: [], qos: qos, retain: true)
    }
}

/// What arrived on a gateway topic.
enum GatewayMessage: Equatable {
    /// An empty payload: the record was deleted (by hand; the protocol never deletes one).
    case deleted
    case record(OwnershipRecord)
    case heartbeat(OwnershipHeartbeat)
    /// Anything else. It replaced the retained record all the same, so it counts as a record
    /// nobody holds.
    case unreadable

    init(payload: [UInt8]) {
        guard !payload.isEmpty else {
            self = .deleted
            return
        }
        guard let json = try? JSON(parsing: payload), let owner = json["owner"]?.stringValue,
            let token = json["token"]?.stringValue
        else {
            self = .unreadable
            return
        }
        if let sequence = json["heartbeat"]?.intValue {
            self = .heartbeat(OwnershipHeartbeat(sequence: sequence, owner: owner, token: token))
        } else if let state = json["state"]?.stringValue.flatMap(OwnershipRecord.State.init(rawValue:)) {
            let since = json["since"]?.stringValue ?? ""
            self = .record(OwnershipRecord(state: state, owner: owner, token: token, since: since))
        } else {
            self = .unreadable
        }
    }
}

extension InstanceRecord {
    /// nil for an empty (deleted) or unreadable payload.
    init?(payload: [UInt8]) {
        guard !payload.isEmpty, let json = try? JSON(parsing: payload),
            let instance = json["instance"]?.stringValue, let session = json["session"]?.stringValue
        else { return nil }
        self.init(
            instance: instance, session: session, since: json["since"]?.stringValue ?? "",
            gateways: json["gateways"]?.arrayValue?.compactMap(\.stringValue) ?? [])
    }
}
