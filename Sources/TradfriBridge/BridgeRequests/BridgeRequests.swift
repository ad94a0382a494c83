import CoAP
import HubModel
import Logging
import MQTT
import TradfriModel

/// The bridge's request/response API: `<base>/bridge/request/<verb>` → `<base>/bridge/response/<verb>`.
///
/// Contract:
/// - Verbs are registered by name (`register(verb:handler:)`); a verb may contain `/`
///   (`device/rename`). Features that arrive later (pairing) register their own verbs.
/// - Every request gets exactly one response payload
///   `{"data": …, "status": "ok"|"error", "error"?: "…", "transaction"?: <echo>}`; `data` is `{}`
///   on error. It is published (QoS 1, never retained) on `<base>/bridge/response/<verb>`, and,
///   when an MQTT 5 request carries a response topic, also on that topic, both with the request's
///   correlation data.
/// - Refused with a clear error: unknown verbs, malformed JSON, missing or unknown members,
///   a response topic inside the bridge's own topics (other than `bridge/response/…`) or the
///   discovery prefix, and retained requests (removed from the broker so they cannot replay at
///   every restart).
/// - Handlers run on the libcoap actor, one task per request; requests do not wait for each
///   other (the gateway link serialises what reaches the gateway).
@CoAPActor
public final class BridgeRequests: BridgeFeature {
    /// Carries out a request and returns its `data`; throwing `BridgeRequestError` (or anything
    /// else) answers `status: error` with the error's text.
    public typealias Handler = @CoAPActor (BridgeRequest) async throws -> JSON

    let context: BridgeContext
    let logger = Logger(label: "requests")
    private var handlers: [String: Handler] = [:]
    private var retained = RetainedCommands()
    /// The requests being carried out (cancelled when the bridge stops).
    private let tasks = Tasks()
    private struct Waiter {
        let condition: @CoAPActor () -> Bool
        let continuation: CheckedContinuation<Bool, Never>
        let timer: CoAPTimer
    }
    private var waiters: [Int: Waiter] = [:]
    private var nextWaiter = 0

    /// Creates the API with the bridge's own verbs registered.
    init(context: BridgeContext) {
        self.context = context
        registerBridgeVerbs()
    }

    /// Adds (or replaces) the handler of `verb`.
    public func register(verb: String, handler: @escaping Handler) {
        precondition(
            !verb.isEmpty && !verb.contains("+") && !verb.contains("#") && !verb.hasPrefix("/"),
            "a verb is a topic path without wildcards")
        handlers[verb] = handler
    }

    /// The bridge's own verbs: `device/rename`, `group/rename`, `gateway/reboot`, `health_check`,
    /// `resync`, `options`.
    private func registerBridgeVerbs() {
        registerRenameVerbs()
        registerGatewayVerbs()
        registerOptionsVerb()
    }

    /// The registered verbs, sorted.
    public var verbs: [String] { handlers.keys.sorted() }

    public var subscriptions: [String] { [context.topic("bridge/request/#")] }

    public func handle(_ event: BridgeEvent) {
        switch event {
        case .message(let message):
            received(message)
        case .hub:
            checkWaiters()
        case .stopping:
            tasks.cancelAll()
            for id in Array(waiters.keys) { finishWaiter(id, false) }
        default:
            break
        }
    }

    // MARK: Requests

    private func received(_ message: MQTTMessage) {
        let prefix = context.topic("bridge/request/")
        guard message.topic.hasPrefix(prefix) else { return }
        let verb = String(message.topic.dropFirst(prefix.count))
        // A response topic the bridge will not publish to is never used, not even for an error.
        let refused = refusal(ofResponseTopic: message.responseTopic)
        var reply = Reply(
            verb: verb, responseTopic: refused == nil ? message.responseTopic : nil,
            correlationData: message.correlationData)

        switch retained.check(message, outbox: context.outbox) {
        case .ignore:
            return
        case .refuse:
            return respond(
                reply, .failure(BridgeRequestError("requests must not be retained; the retained message was removed")))
        case .handle:
            break
        }
        let request: BridgeRequest
        do {
            request = try BridgeRequest.parse(verb: verb, payload: message.payload)
        } catch {
            return respond(reply, .failure(error))
        }
        reply.transaction = request.transaction
        // Takeover: a request for a gateway another instance drives is that instance's to answer.
        if context.drivesOnlySome, let gateway = request.members["gateway"]?.stringValue,
            context.hub(named: gateway) != nil, !context.drives(gateway)
        {
            return
        }
        if let refused { return respond(reply, .failure(BridgeRequestError(refused))) }
        guard let handler = handlers[verb] else {
            return respond(
                reply,
                .failure(BridgeRequestError("unknown request '\(verb)' (known: \(verbs.joined(separator: ", ")))")))
        }
        let answer = reply
        logger.info("request", metadata: ["verb": "\(verb)"])
        tasks.start { [weak self] in
            let result: Result<JSON, BridgeRequestError>
            do {
                result = .success(try await handler(request))
            } catch let error as BridgeRequestError {
                result = .failure(error)
            } catch {
                result = .failure(BridgeRequestError("\(error)"))
            }
            self?.respond(answer, result)
        }
    }

    /// Why the bridge will not publish an answer on `topic`, if it will not: a requester must
    /// not be able to make the bridge publish into its own topics or the discovery prefix.
    private func refusal(ofResponseTopic topic: String?) -> String? {
        guard let topic else { return nil }
        if topic.isEmpty || topic.contains("+") || topic.contains("#") {
            return "the response topic must be a topic name without wildcards"
        }
        let own = context.base + "/"
        if topic.hasPrefix(own), !topic.hasPrefix(context.topic("bridge/response/")) {
            return
                "the response topic must not be one of the bridge's topics (\(own)…) other than \(own)bridge/response/…"
        }
        let prefix = context.configuration.homeAssistant.discoveryPrefix
        if topic == prefix || topic.hasPrefix(prefix + "/") {
            return "the response topic must not be under the Home Assistant discovery prefix"
        }
        return nil
    }

    // MARK: Responses

    private struct Reply {
        var verb: String
        var responseTopic: String?
        var correlationData: [UInt8]?
        var transaction: JSON?
    }

    private func respond(_ reply: Reply, _ result: Result<JSON, BridgeRequestError>) {
        var payload: [String: JSON]
        switch result {
        case .success(let data):
            payload = ["data": data, "status": "ok"]
        case .failure(let error):
            payload = ["data": [:], "status": "error", "error": .string(error.message)]
            logger.warning("request failed", metadata: ["verb": "\(reply.verb)", "reason": "\(error.message)"])
        }
        if let transaction = reply.transaction { payload["transaction"] = transaction }
        let topic = context.topic("bridge/response/\(reply.verb)")
        context.outbox.publishEvent(topic, .object(payload), correlationData: reply.correlationData, qos: .atLeastOnce)
        if let responseTopic = reply.responseTopic, responseTopic != topic {
            context.outbox.publishEvent(
                topic, .object(payload), responseTopic: responseTopic,
                correlationData: reply.correlationData, qos: .atLeastOnce)
        }
    }

    // MARK: Waiting for the gateway

    /// Waits until `condition` holds after a gateway change (checked at once, then after every
    /// change the mirror reports), at most `limit`. Returns whether it came true.
    func waitForGateway(within limit: Duration, until condition: @escaping @CoAPActor () -> Bool) async -> Bool {
        if condition() { return true }
        nextWaiter += 1
        let id = nextWaiter
        return await withCheckedContinuation { continuation in
            // The timer is cancelled as soon as the waiter ends, so none outlives its request.
            let timer = CoAPTimer(after: limit) { [weak self] in self?.finishWaiter(id, false) }
            waiters[id] = Waiter(condition: condition, continuation: continuation, timer: timer)
        }
    }

    private func checkWaiters() {
        for (id, waiter) in waiters where waiter.condition() { finishWaiter(id, true) }
    }

    private func finishWaiter(_ id: Int, _ outcome: Bool) {
        guard let waiter = waiters.removeValue(forKey: id) else { return }
        waiter.timer.cancel()
        waiter.continuation.resume(returning: outcome)
    }
}
