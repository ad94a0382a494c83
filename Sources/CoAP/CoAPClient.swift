internal import CCoap
import Dispatch

/// One DTLS-PSK session to one CoAP server (a TRÅDFRI gateway or the simulator).
///
/// Contract:
/// - Everything runs on the libcoap queue (`@CoAPActor`); results leave through continuations and
///   streams, which are Sendable.
/// - A client is single-use: `connect()` once; after `close()` or a failure, make a new client.
///   That is also how a dead session is torn down fully (context, socket and DTLS state freed).
/// - Every await has a deadline: connect has `handshakeTimeout`, requests `requestTimeout`.
/// - When the session fails, every pending request throws and every observation stream finishes
///   with the error; `events` reports `.closed(error)`.
@CoAPActor
public final class CoAPClient {
    public struct Configuration: Sendable {
        public var host: String
        public var port: UInt16
        public var identity: String
        public var key: [UInt8]
        public var handshakeTimeout: Duration
        public var requestTimeout: Duration
        /// CoAP ACK_TIMEOUT in seconds (RFC 7252 default 2).
        public var ackTimeout: Double
        /// CoAP MAX_RETRANSMIT (RFC 7252 default 4).
        public var maxRetransmit: Int

        public init(
            host: String, port: UInt16 = 5684, identity: String, key: String,
            handshakeTimeout: Duration = .seconds(10), requestTimeout: Duration = .seconds(15),
            ackTimeout: Double = 2, maxRetransmit: Int = 4
        ) {
            self.host = host
            self.port = port
            self.identity = identity
            self.key = Array(key.utf8)
            self.handshakeTimeout = handshakeTimeout
            self.requestTimeout = requestTimeout
            self.ackTimeout = ackTimeout
            self.maxRetransmit = maxRetransmit
        }
    }

    public let configuration: Configuration
    /// Session events, in order. Finishes after `.closed`.
    public nonisolated let events: AsyncStream<CoAPSessionEvent>
    private let eventSink: AsyncStream<CoAPSessionEvent>.Continuation

    private enum State {
        case idle
        case connecting(CheckedContinuation<Void, any Error>?)
        case connected
        case closed
    }

    private enum Pending {
        case request(CheckedContinuation<CoAPResponse, any Error>)
        case observeRegistration(CheckedContinuation<CoAPResponse, any Error>, ObserverSink)
        case observing(ObserverSink)
    }

    private var state: State = .idle
    /// Why the session ended, for callers that arrive after the fact.
    private var closeReason: CoAPError?
    private var io: LibcoapContext?
    private var session: OpaquePointer?
    private var localAddress = ""
    private var trace: HandshakeTrace?
    private var pending: [[UInt8]: Pending] = [:]
    private var deadlines: [[UInt8]: CoAPTimer] = [:]
    private var pings: [Int32: CheckedContinuation<Void, any Error>] = [:]
    /// Observer callbacks waiting for the end of the current I/O pass (see `toObserver`).
    private var observerWork: [@CoAPActor () -> Void] = []
    private var runningObserverWork = false

    public nonisolated init(_ configuration: Configuration) {
        self.configuration = configuration
        (events, eventSink) = AsyncStream.makeStream(of: CoAPSessionEvent.self)
    }

    isolated deinit {
        // A client dropped without close() must not leave a context behind.
        teardown(error: .sessionClosed, notify: false)
    }

    public var isConnected: Bool {
        if case .connected = state { return true }
        return false
    }

    // MARK: Connecting

    /// Performs the DTLS handshake; returns once the session is established.
    /// - Throws: `CoAPError` naming why the handshake failed (unknown identity, key rejected,
    ///   no answer, unreachable) or `.timeout`.
    public func connect() async throws {
        guard case .idle = state else { throw CoAPError.setup("connect() called twice") }
        state = .connecting(nil)
        let address: ResolvedAddress
        do {
            address = try await ResolvedAddress.resolve(host: configuration.host, port: configuration.port)
        } catch {
            teardown(error: error, notify: true)
            throw error
        }
        try openSession(to: address)

        let watchdog = CoAPTimer(after: configuration.handshakeTimeout) { [weak self] in self?.handshakeTimedOut() }
        defer { watchdog.cancel() }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            switch state {
            case .connecting:
                state = .connecting(continuation)
            case .connected:
                continuation.resume()
            case .idle, .closed:
                continuation.resume(throwing: closeReason ?? CoAPError.sessionClosed)
            }
        }
    }

    private func openSession(to address: ResolvedAddress) throws(CoAPError) {
        let io: LibcoapContext
        do {
            io = try LibcoapContext(owner: self)
        } catch {
            teardown(error: error, notify: true)
            throw error
        }
        self.io = io
        io.afterProcess = { [weak self] in self?.runObserverWork() }
        let context = io.context
        coap_register_response_handler(context, clientResponseHandler)
        coap_register_nack_handler(context, clientNackHandler)
        coap_register_event_handler(context, clientEventHandler)
        coap_register_pong_handler(context, clientPongHandler)

        var setup = coap_dtls_cpsk_t()
        setup.version = UInt8(COAP_DTLS_CPSK_SETUP_VERSION)
        var coapAddress = address.coapAddress()
        let identity = Array(configuration.identity.utf8)
        let key = configuration.key
        // The client setup is copied by libcoap (checked in its source), so these scopes suffice.
        let created: OpaquePointer? = identity.withUnsafeBufferPointer { identityBuffer in
            key.withUnsafeBufferPointer { keyBuffer in
                setup.psk_info.identity = coap_bin_const_t(length: identityBuffer.count, s: identityBuffer.baseAddress)
                setup.psk_info.key = coap_bin_const_t(length: keyBuffer.count, s: keyBuffer.baseAddress)
                return coap_new_client_session_psk2(context, nil, &coapAddress, COAP_PROTO_DTLS, &setup)
            }
        }
        guard let created else {
            let error = CoAPError.setup("libcoap could not create a DTLS session to \(address.description)")
            teardown(error: error, notify: true)
            throw error
        }
        session = created
        coap_session_set_ack_timeout(
            created,
            coap_fixed_point_t(
                integer_part: UInt16(configuration.ackTimeout),
                fractional_part: UInt16((configuration.ackTimeout.truncatingRemainder(dividingBy: 1)) * 1000)))
        coap_session_set_max_retransmit(created, UInt16(clamping: configuration.maxRetransmit))
        localAddress = Libcoap.describe(coap_session_get_addr_local(created))
        trace = Libcoap.beginHandshakeTrace(localAddress: localAddress)
        do {
            try io.start()
        } catch {
            teardown(error: error, notify: true)
            throw error
        }
    }

    private func handshakeTimedOut() {
        guard case .connecting = state else { return }
        teardown(error: handshakeFailure(timedOut: true), notify: true)
    }

    /// Turns what the handshake trace saw into the error a user can act on.
    private func handshakeFailure(timedOut: Bool) -> CoAPError {
        if let alert = trace?.alert {
            if alert.contains("unknown PSK identity") { return .unknownIdentity(configuration.identity) }
            if alert.contains("bad record mac") || alert.contains("decrypt") || alert.contains("handshake failure") {
                return .keyRejected(alert: alert)
            }
            return .dtlsAlert(alert)
        }
        if trace?.sentFinished == true { return .keyRejected(alert: nil) }
        if trace?.serverAnswered == true, timedOut {
            return .timeout("DTLS handshake with \(configuration.host):\(configuration.port)")
        }
        if timedOut { return .noAnswer(host: configuration.host, port: configuration.port) }
        return .unreachable(host: configuration.host, port: configuration.port, reason: "connection refused")
    }

    // MARK: Requests

    /// Sends a confirmable request and waits for its response (block-wise bodies reassembled).
    /// Non-2.xx codes are returned, not thrown: the caller decides what 4.04 means.
    public func request(
        _ method: CoAPMethod, _ path: String, payload: [UInt8]? = nil, timeout: Duration? = nil
    ) async throws -> CoAPResponse {
        let holder = TokenHolder()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                do {
                    // The entry is registered before the PDU leaves: the answer can arrive within
                    // the same coap_io_process call that sends it.
                    holder.token = try send(method, path, payload: payload, observe: nil) { token in
                        pending[token] = .request(continuation)
                        armDeadline(token, timeout ?? configuration.requestTimeout, what: "\(method.rawValue) \(path)")
                    }
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            Task { @CoAPActor [weak self] in
                if let token = holder.token { self?.fail(token, CoAPError.timeout("cancelled")) }
            }
        }
    }

    public func get(_ path: String) async throws -> CoAPResponse {
        try await request(.get, path)
    }

    public func put(_ path: String, json: String) async throws -> CoAPResponse {
        try await request(.put, path, payload: Array(json.utf8))
    }

    public func post(_ path: String, json: String) async throws -> CoAPResponse {
        try await request(.post, path, payload: Array(json.utf8))
    }

    /// Registers an observation. The returned value carries the first response (check its code:
    /// a 4.04 means the resource does not exist) and a stream of every later notification. The
    /// stream finishes when the server ends the observation (an error notification such as 4.04
    /// is yielded first), when `cancelObservation` is called, or throws when the session dies.
    public func observe(_ path: String, timeout: Duration? = nil) async throws -> CoAPObservation {
        let (stream, sink) = AsyncThrowingStream.makeStream(of: CoAPResponse.self, throwing: (any Error).self)
        let observer = ObserverSink(
            deliver: { sink.yield($0) },
            end: { error in
                if let error { sink.finish(throwing: error) } else { sink.finish() }
            })
        let (token, initial) = try await register(path, observer, timeout: timeout)
        return CoAPObservation(path: path, token: token, initial: initial, notifications: stream, sink: sink)
    }

    /// Registers an observation whose notifications are handed to `handler` on the libcoap queue,
    /// in order, at the end of the I/O pass that received them (right after libcoap acknowledged
    /// them): no task per observation and no hop per notification. Returns the token (for `cancelObservation(token:)`) and the first response;
    /// check its code and `observe` (nil when the server did not accept the observation, in which
    /// case nothing more is delivered). `handler` gets `.ended` once when the observation ends.
    public func observe(
        _ path: String, timeout: Duration? = nil, handler: @escaping @CoAPActor (CoAPObservationEvent) -> Void
    ) async throws -> (token: [UInt8], initial: CoAPResponse) {
        let observer = ObserverSink(
            deliver: { handler(.notification($0)) },
            end: { error in handler(.ended(error.map { ($0 as? CoAPError) ?? .sessionClosed })) })
        return try await register(path, observer, timeout: timeout)
    }

    private func register(
        _ path: String, _ observer: ObserverSink, timeout: Duration?
    ) async throws
        -> (token: [UInt8], initial: CoAPResponse)
    {
        let holder = TokenHolder()
        let initial = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                do {
                    holder.token = try send(.get, path, payload: nil, observe: 0) { token in
                        pending[token] = .observeRegistration(continuation, observer)
                        armDeadline(token, timeout ?? configuration.requestTimeout, what: "observe \(path)")
                    }
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            Task { @CoAPActor [weak self] in
                if let token = holder.token { self?.fail(token, CoAPError.timeout("cancelled")) }
            }
        }
        return (holder.token ?? [], initial)
    }

    /// Deregisters an observation (a GET with Observe = 1) and finishes its stream.
    public func cancelObservation(_ observation: CoAPObservation) {
        cancelObservation(token: observation.token)
    }

    /// Deregisters an observation; its handler gets `.ended(nil)`.
    public func cancelObservation(token: [UInt8]) {
        guard case .observing(let observer) = pending[token] else { return }
        pending[token] = nil
        toObserver { observer.end(nil) }
        guard let session, case .connected = state else { return }
        var token = token
        token.withUnsafeMutableBufferPointer { buffer in
            var binary = coap_binary_t(length: buffer.count, s: buffer.baseAddress)
            _ = coap_cancel_observe(session, &binary, COAP_MESSAGE_CON)
        }
        io?.process()
    }

    /// Sends a CoAP ping (an empty confirmable message) and waits for the peer's reset.
    public func ping(timeout: Duration = .seconds(5)) async throws {
        guard let session, case .connected = state else { throw closeReason ?? CoAPError.sessionClosed }
        let midHolder = TokenHolder()
        let watchdog = CoAPTimer(after: timeout) { [weak self] in
            guard let mid = midHolder.mid else { return }
            self?.pingFinished(mid, error: CoAPError.timeout("ping"))
        }
        defer { watchdog.cancel() }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let mid = coap_session_send_ping(session)
            guard mid != COAP_INVALID_MID else {
                continuation.resume(throwing: CoAPError.sendFailed("ping"))
                return
            }
            // Registered before processing: the reset can arrive within the next coap_io_process.
            midHolder.mid = mid
            pings[mid] = continuation
            io?.process()
        }
    }

    /// Ends the session: pending requests throw `.sessionClosed`, streams finish, and the DTLS
    /// context is freed.
    public func close() {
        teardown(error: nil, notify: true)
    }

    // MARK: Sending

    /// Builds and sends a request; `register` runs with the token before the PDU leaves.
    private func send(
        _ method: CoAPMethod, _ path: String, payload: [UInt8]?, observe: UInt32?, register: ([UInt8]) -> Void
    ) throws -> [UInt8] {
        guard let session, case .connected = state else { throw closeReason ?? CoAPError.sessionClosed }
        guard let pdu = coap_new_pdu(COAP_MESSAGE_CON, method.pduCode, session) else {
            throw CoAPError.sendFailed("no memory for a PDU")
        }
        var tokenLength = 0
        var token = [UInt8](repeating: 0, count: 8)
        coap_session_new_token(session, &tokenLength, &token)
        token = Array(token.prefix(tokenLength))
        _ = coap_add_token(pdu, token.count, token)
        // Options in ascending number order: Observe (6), Uri-Path (11).
        if let observe {
            var value = [UInt8](repeating: 0, count: 4)
            let length = coap_encode_var_safe(&value, value.count, observe)
            _ = coap_add_option(pdu, coap_option_num_t(COAP_OPTION_OBSERVE), Int(length), value)
        }
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            let bytes = Array(segment.utf8)
            _ = coap_add_option(pdu, coap_option_num_t(COAP_OPTION_URI_PATH), bytes.count, bytes)
        }
        if let payload, !payload.isEmpty {
            _ = coap_add_data(pdu, payload.count, payload)
        }
        register(token)
        // After coap_send the PDU belongs to libcoap, even on failure.
        guard coap_send(session, pdu) != COAP_INVALID_MID else {
            clearDeadline(token)
            pending[token] = nil
            throw CoAPError.sendFailed("\(method.rawValue) \(path)")
        }
        io?.process()
        return token
    }

    private func armDeadline(_ token: [UInt8], _ timeout: Duration, what: String) {
        deadlines[token] = CoAPTimer(after: timeout) { [weak self] in self?.fail(token, CoAPError.timeout(what)) }
    }

    private func clearDeadline(_ token: [UInt8]) {
        deadlines.removeValue(forKey: token)?.cancel()
    }

    // MARK: Callbacks (re-entered from libcoap on its queue)

    fileprivate func received(token: [UInt8], response: CoAPResponse) {
        guard let entry = pending[token] else { return }
        switch entry {
        case .request(let continuation):
            pending[token] = nil
            clearDeadline(token)
            continuation.resume(returning: response)
        case .observeRegistration(let continuation, let observer):
            clearDeadline(token)
            if response.code.isSuccess, response.observe != nil {
                pending[token] = .observing(observer)
            } else {
                // The server did not accept the observation: nothing more will come.
                pending[token] = nil
                toObserver { observer.end(nil) }
            }
            continuation.resume(returning: response)
        case .observing(let observer):
            toObserver { observer.deliver(response) }
            if !response.code.isSuccess {
                pending[token] = nil
                toObserver { observer.end(nil) }
            }
        }
    }

    fileprivate func notDelivered(token: [UInt8], mid: Int32, reason: coap_nack_reason_t) {
        if pings[mid] != nil {
            pingFinished(mid, error: reason == COAP_NACK_RST ? nil : CoAPError.timeout("ping"))
            return
        }
        let error: CoAPError
        switch reason {
        case COAP_NACK_TOO_MANY_RETRIES: error = .timeout("no acknowledgement after retransmissions")
        case COAP_NACK_RST: error = .reset
        case COAP_NACK_TLS_FAILED: error = .sessionClosed
        case COAP_NACK_ICMP_ISSUE:
            error = .unreachable(host: configuration.host, port: configuration.port, reason: "ICMP error")
        default: error = .sendFailed("message not deliverable")
        }
        fail(token, error)
    }

    fileprivate func pong(mid: Int32) {
        pingFinished(mid, error: nil)
    }

    fileprivate func sessionEvent(_ event: coap_event_t) {
        switch event {
        case COAP_EVENT_DTLS_CONNECTED:
            guard case .connecting(let continuation) = state else { return }
            endTrace()
            state = .connected
            eventSink.yield(.connected)
            continuation?.resume()
        case COAP_EVENT_DTLS_CLOSED, COAP_EVENT_DTLS_ERROR, COAP_EVENT_SESSION_FAILED, COAP_EVENT_SESSION_CLOSED:
            switch state {
            case .connecting:
                teardown(error: handshakeFailure(timedOut: false), notify: true)
            case .connected:
                teardown(error: .sessionClosed, notify: true)
            case .idle, .closed:
                break
            }
        default:
            break
        }
    }

    // MARK: Failure and teardown

    private func fail(_ token: [UInt8], _ error: any Error) {
        clearDeadline(token)
        guard let entry = pending.removeValue(forKey: token) else { return }
        switch entry {
        case .request(let continuation): continuation.resume(throwing: error)
        case .observeRegistration(let continuation, let observer):
            toObserver { observer.end(error) }
            continuation.resume(throwing: error)
        case .observing(let observer): toObserver { observer.end(error) }
        }
    }

    /// Runs an observer callback after the current libcoap I/O pass, in order with the others.
    ///
    /// libcoap acknowledges a confirmable notification only when the response handler returns,
    /// and a gateway sends an observer its next confirmable notification only after that
    /// acknowledgement. Handing a notification over inside the handler kept the gateway waiting
    /// for as long as the observer worked on it (a scene's notifications queued behind each
    /// other); now the acknowledgement goes out first, and the work overlaps the next round trip.
    private func toObserver(_ work: @escaping @CoAPActor () -> Void) {
        observerWork.append(work)
        if io?.isProcessing != true { runObserverWork() }
    }

    private func runObserverWork() {
        guard !runningObserverWork else { return }
        runningObserverWork = true
        defer { runningObserverWork = false }
        // In batches, in order: work queued while a batch runs goes into the next one.
        while !observerWork.isEmpty {
            let batch = observerWork
            observerWork.removeAll(keepingCapacity: true)
            for work in batch { work() }
        }
    }

    private func pingFinished(_ mid: Int32, error: (any Error)?) {
        guard let continuation = pings.removeValue(forKey: mid) else { return }
        if let error { continuation.resume(throwing: error) } else { continuation.resume() }
    }

    private func endTrace() {
        if trace != nil {
            Libcoap.endHandshakeTrace(localAddress: localAddress)
            trace = nil
        }
    }

    /// Fails everything outstanding with `error` (or `.sessionClosed`), frees libcoap state and
    /// reports `.closed(error)` once.
    private func teardown(error: CoAPError?, notify: Bool) {
        if case .closed = state { return }
        let previous = state
        state = .closed
        closeReason = error
        endTrace()
        let failure = error ?? CoAPError.sessionClosed
        if case .connecting(let continuation?) = previous {
            continuation.resume(throwing: failure)
        }
        for token in Array(pending.keys) { fail(token, failure) }
        for mid in Array(pings.keys) { pingFinished(mid, error: failure) }
        if let session {
            coap_session_set_app_data(session, nil)
            coap_session_release(session)
            self.session = nil
        }
        io?.close()
        io = nil
        if notify {
            eventSink.yield(.closed(error))
        }
        eventSink.finish()
    }
}

/// Carries a token (or ping message ID) from the sending code to the cancellation handler.
@CoAPActor
private final class TokenHolder {
    var token: [UInt8]?
    var mid: Int32?
    nonisolated init() {}
}

/// Where an observation's notifications go (a stream, or a caller's handler).
@CoAPActor
final class ObserverSink {
    let deliver: @CoAPActor (CoAPResponse) -> Void
    let end: @CoAPActor ((any Error)?) -> Void
    init(deliver: @escaping @CoAPActor (CoAPResponse) -> Void, end: @escaping @CoAPActor ((any Error)?) -> Void) {
        self.deliver = deliver
        self.end = end
    }
}

/// What a handler-based observation reports.
public enum CoAPObservationEvent: Sendable {
    /// A notification (an error code such as 4.04 means the resource is gone; `.ended` follows).
    case notification(CoAPResponse)
    /// The observation ended: nil when cancelled or ended by the server, else why the session failed.
    case ended(CoAPError?)
}

/// An Observe registration: the first response and the stream of later notifications.
public struct CoAPObservation: Sendable {
    public let path: String
    public let token: [UInt8]
    public let initial: CoAPResponse
    public let notifications: AsyncThrowingStream<CoAPResponse, any Error>
    let sink: AsyncThrowingStream<CoAPResponse, any Error>.Continuation
}

extension CoAPMethod {
    var pduCode: coap_pdu_code_t {
        switch self {
        case .get: COAP_REQUEST_CODE_GET
        case .post: COAP_REQUEST_CODE_POST
        case .put: COAP_REQUEST_CODE_PUT
        case .delete: COAP_REQUEST_CODE_DELETE
        }
    }
}

// MARK: - C callbacks
// Each runs on the libcoap queue inside coap_io_process. They copy what they need out of the PDU
// (valid only during the callback) and hand Sendable values to the client found via the
// context's app data.

private func client(of session: OpaquePointer?) -> CoAPClient? {
    guard let session else { return nil }
    return LibcoapContext.owner(of: coap_session_get_context(session), as: CoAPClient.self)
}

func copyToken(_ pdu: OpaquePointer?) -> [UInt8] {
    guard let pdu else { return [] }
    let token = coap_pdu_get_token(pdu)
    guard token.length > 0, let bytes = token.s else { return [] }
    return Array(UnsafeBufferPointer(start: bytes, count: token.length))
}

func copyPayload(_ pdu: OpaquePointer?) -> [UInt8] {
    guard let pdu else { return [] }
    var length = 0
    var data: UnsafePointer<UInt8>?
    var offset = 0
    var total = 0
    guard coap_get_data_large(pdu, &length, &data, &offset, &total) != 0, let data, length > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: length))
}

private func copyObserve(_ pdu: OpaquePointer?) -> UInt32? {
    guard let pdu else { return nil }
    var iterator = coap_opt_iterator_t()
    guard let option = coap_check_option(pdu, coap_option_num_t(COAP_OPTION_OBSERVE), &iterator) else { return nil }
    return UInt32(coap_decode_var_bytes(coap_opt_value(option), Int(coap_opt_length(option))))
}

private let clientResponseHandler: coap_response_handler_t = { session, _, received, _ in
    let target = client(of: session)
    let token = copyToken(received)
    let response = CoAPResponse(
        code: CoAPCode(rawValue: UInt8(truncatingIfNeeded: coap_pdu_get_code(received).rawValue)),
        payload: copyPayload(received),
        observe: copyObserve(received))
    CoAPActor.assumeIsolated { target?.received(token: token, response: response) }
    return COAP_RESPONSE_OK
}

private let clientNackHandler: coap_nack_handler_t = { session, sent, reason, mid in
    let target = client(of: session)
    let token = copyToken(sent)
    let reasonValue = reason.rawValue
    CoAPActor.assumeIsolated {
        target?.notDelivered(token: token, mid: mid, reason: coap_nack_reason_t(rawValue: reasonValue))
    }
}

private let clientPongHandler: coap_pong_handler_t = { session, _, mid in
    let target = client(of: session)
    CoAPActor.assumeIsolated { target?.pong(mid: mid) }
}

private let clientEventHandler: coap_event_handler_t = { session, event in
    let target = client(of: session)
    let eventValue = event.rawValue
    CoAPActor.assumeIsolated { target?.sessionEvent(coap_event_t(rawValue: eventValue)) }
    return 0
}
