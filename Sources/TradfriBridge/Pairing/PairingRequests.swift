import CoAP
import HubModel
import TradfriModel

/// The pairing verbs of `bridge/request` (for Home Assistant automations, Node-RED, scripts):
///
///     pairing/status                       the window, pending count, devices, fingerprint
///     pairing/list                         pending requests (id, name, ip, mac, mode, age, code)
///     pairing/devices                      paired devices (never their passwords)
///     pairing/open     {"minutes": 5, "legacy": false}
///     pairing/close
///     pairing/allow    {"id": "<request id>"}    or the bare id
///     pairing/deny     {"id": "<request id>"}    or the bare id
///     pairing/revoke   {"device": "<device id or name>"}    or the bare id
///
/// Reading is always allowed. The decisions are taken over MQTT only with
/// `pairing.approve_over_mqtt: true`: whoever may publish to `bridge/request/#` could otherwise
/// let any device in, so they stay at the local prompt (`tradfri-bridge pair`) unless the user
/// has locked that topic down in the broker's ACL and says so. No answer carries a password.
extension BridgeRequests {
    func registerPairingVerbs(_ service: PairingService, approveOverMQTT: Bool) {
        let reading = ["status", "list", "devices"]
        for command in reading {
            register(verb: "pairing/\(command)") { request in
                try request.allowOnly([])
                return try await Self.pairing(service, ["command": .string(command)])
            }
        }
        let deciding: [Decision] = [
            Decision(command: "open", members: ["minutes", "legacy"]), Decision(command: "close", members: []),
            Decision(command: "allow", members: ["id"]), Decision(command: "deny", members: ["id"]),
            Decision(command: "revoke", members: ["device"]),
        ]
        for decision in deciding {
            register(verb: "pairing/\(decision.command)") { request in
                guard approveOverMQTT else {
                    throw BridgeRequestError(
                        "pairing decisions over MQTT are off: use `tradfri-bridge pair`, or set "
                            + "pairing.approve_over_mqtt: true once the broker's ACL protects bridge/request/#")
                }
                return try await Self.pairing(service, try decision.controlCommand(from: request))
            }
        }
    }

    /// A pairing decision and the members its request takes. A decision about one thing (allow,
    /// deny, revoke) also takes that thing's id as the bare payload.
    private struct Decision {
        let command: String
        let members: [String]

        func controlCommand(from request: BridgeRequest) throws(BridgeRequestError) -> JSON {
            var command: [String: JSON] = ["command": .string(self.command)]
            let subject = members.count == 1 && members[0] != "minutes" ? members[0] : nil
            if let subject, request.payload.objectValue == nil, let id = request.bareText {
                command[subject] = .string(id)
                return .object(command)
            }
            try request.allowOnly(members)
            if let subject { command[subject] = .string(try request.string(subject)) }
            if let minutes = request.members["minutes"] {
                guard minutes.intValue != nil else {
                    throw BridgeRequestError("'minutes' must be a whole number (1 to 15)")
                }
                command["minutes"] = minutes
            }
            if let legacy = request.members["legacy"] {
                guard legacy.boolValue != nil else { throw BridgeRequestError("'legacy' must be true or false") }
                command["legacy"] = legacy
            }
            return .object(command)
        }
    }

    /// Runs a control command on the pairing service; its refusal becomes the request's error.
    private static func pairing(_ service: PairingService, _ command: JSON) async throws -> JSON {
        let answer = await service.control(command)
        guard answer["ok"] == true else {
            throw BridgeRequestError(answer["error"]?.stringValue ?? "the pairing service did not answer")
        }
        return answer["data"] ?? [:]
    }
}
