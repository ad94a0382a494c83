import TradfriBridge

/// A `bridge/request/<verb>` message: the verb on the first line, the payload after it; then what
/// the verbs read from it.
struct BridgeRequestTarget: FuzzTarget {
    static let name = "bridge-request"

    func run(_ input: [UInt8]) {
        let (verb, payload) = Fuzz.firstLine(input)
        guard let request = try? BridgeRequest.parse(verb: verb ?? "health_check", payload: payload) else { return }
        _ = request.members
        _ = request.bareText
        _ = request.transaction?.description
        _ = try? request.string("from")
        _ = try? request.string("to")
        _ = try? request.allowOnly(["from", "to"])
        _ = try? request.allowOnly([])
    }
}
