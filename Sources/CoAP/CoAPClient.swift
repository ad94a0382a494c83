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
        /// Retransmit on a timeout learnt from the answers (`RetransmissionTimeout`, starting at
        /// `ackTimeout` or from the handshake) instead of a fixed one: libcoap 4.3.1 accepts no
        /// ACK_TIMEOUT below 1 s, so on a LAN every lost datagram would cost 1 to 3 s (2 to 3 s
        /// with RFC 7252's defaults) and hold up every request behind it. While the learnt
        /// timeout is under 1 s, the client repeats an unanswered GET (a read or an observe
        /// registration) itself, same message ID (a retransmission as RFC 7252 §4.2 defines it),
        /// after the learnt timeout and twice as long each further time, until libcoap's own
        /// retransmission (from 1 s, or from the learnt timeout when that is longer) takes over;
        /// libcoap's also covers what it sends by itself (the requests for the next blocks of a
        /// large body). Commands (PUT, POST, DELETE) keep libcoap's retransmission only: libcoap
        /// keeps retransmitting every copy it queued until that copy is answered, so a faster
        /// copy of a command could reach the gateway again after a later command and undo it on a
        /// gateway that does not recognise repeats (libcoap's own server does not); a repeated
        /// read does no harm. One request is sent at a time as before; libcoap's NSTART is raised
        /// only so that copies it still tracks never hold a retransmission back.
        public var adaptiveRetransmission: Bool
        /// The session is declared dead when the server sends nothing at all for this long while
        /// a request or ping of ours waits for its answer (nil: only each request's own deadline).
        public var silenceLimit: Duration?

        public init(
            host: String, port: UInt16 = 5684, identity: String, key: String,
            handshakeTimeout: Duration = .seconds(10), requestTimeout: Duration = .seconds(15),
            ackTimeout: Double = 2, maxRetransmit: Int = 4, adaptiveRetransmission: Bool = true,
            silenceLimit: Duration? = nil
        ) {
            self.host = host
            self.port = port
            self.identity = identity
            self.key = Array(key.utf8)
            self.handshakeTimeout = handshakeTimeout
            self.requestTimeout = requestTimeout
            self.ackTimeout = ackTimeout
            self.maxRetransmit = maxRetransmit
            self.adaptiveRetransmission = adaptiveRetransmission
            self.silenceLimit = silenceLimit
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
        case observing(ObserverSink, Freshness)
        /// Observing, and a re-registration with the same token awaits its answer.
        case refreshing(CheckedContinuation<CoAPResponse, any Error>, ObserverSink, Freshness)
    }

    /// The newest notification of an observation (RFC 7641 §3.4: an older one arriving later is
    /// not applied).
    private struct Freshness {
        var sequence: UInt32?
        var time: ContinuousClock.Instant

        /// Whether a notification with `next` arriving now is newer than the last one. An answer
        /// to a re-registration (`isAnswer`) may carry the same number as the last notification:
        /// the server built it after that one, from the state it holds now.
        func admits(_ next: UInt32?, at now: ContinuousClock.Instant, isAnswer: Bool = false) -> Bool {
            guard let sequence, let next else { return true }
            if isAnswer, next == sequence { return true }
            let window: UInt32 = 1 << 23
            return (sequence < next && next - sequence < window) || (sequence > next && sequence - next > window)
                || now - time > .seconds(128)
        }
    }

    /// A request of ours in flight: what it is, when it left, and its next retransmission.
    private struct Sent {
        var method: CoAPMethod
        var path: String
        var payload: [UInt8]?
        var observe: UInt32?
        var messageID: coap_mid_t
        var time: ContinuousClock.Instant
        var timeout: Double
        var transmissions = 1
        var next: CoAPTimer?
    }

    /// A ping of ours in flight.
    private struct Ping {
        var continuation: CheckedContinuation<Void, any Error>
        var sent = ContinuousClock.now
        var timeout: Double
        var transmissions = 1
        var next: CoAPTimer?
    }

    private var state: State = .idle
    /// Why the session ended, for callers that arrive after the fact.
    private var closeReason: CoAPError?
    private var io: LibcoapContext?
    private var session: OpaquePointer?
    private var localAddress = ""
    private var trace: HandshakeTrace?
    private var handshakeStarted = ContinuousClock.now
    private var pending: [[UInt8]: Pending] = [:]
    private var deadlines: [[UInt8]: CoAPTimer] = [:]
    private var sent: [[UInt8]: Sent] = [:]
    private var pings: [coap_mid_t: Ping] = [:]
    /// The retransmission timeout learnt from the answers so far.
    public private(set) var retransmissionTimeout: RetransmissionTimeout
    /// DTLS application records read (written by the C message callback, see `ccoap_count_records`);
    /// allocated for the client's whole life, so the pointer OpenSSL holds is always valid.
    /// nonisolated(unsafe): initialised in init, then written by the callback and read by the
    /// client, both only on the libcoap queue; freed in deinit.
    private nonisolated(unsafe) let recordsRead = UnsafeMutablePointer<UInt>.allocate(capacity: 1)
    /// Records accounted for: all of them as of the end of the last I/O pass, plus each one a
    /// handler of ours saw since.
    private var recordsAccounted: UInt = 0
    /// The message ID of the last confirmable response our handler got (what a drop repeats).
    private var lastConfirmableMID: coap_mid_t?
    /// Acknowledges the last confirmable response once more if nothing newer follows it soon.
    private var reacknowledgement: ReusableCoAPTimer?
    private var reacknowledgementArmed = false
    private var lastConfirmableAt = ContinuousClock.now
    /// When the server was last heard from (any record), and since when something of ours waits.
    public private(set) var lastHeard = ContinuousClock.now
    private var waitingSince: ContinuousClock.Instant?
    private var silenceWatchdog: CoAPTimer?
    /// How often a dropped duplicate was acknowledged again (libcoap 4.3.1 workaround), and how
    /// many notifications were older than one already delivered.
    public private(set) var duplicatesAcknowledged = 0
    /// Acknowledgements sent once more because nothing followed a notification (see
    /// `confirmableReceived`).
    public private(set) var acknowledgementsRepeated = 0
    /// Messages sent again because no answer came within the retransmission timeout.
    public private(set) var retransmissions = 0
    public private(set) var staleNotificationsDropped = 0
    /// Observer callbacks waiting for the end of the current I/O pass (see `toObserver`).
    private var observerWork: [@CoAPActor () -> Void] = []
    private var runningObserverWork = false

    public nonisolated init(_ configuration: Configuration) {
        self.configuration = configuration
        (events, eventSink) = AsyncStream.makeStream(of: CoAPSessionEvent.self)
        retransmissionTimeout = RetransmissionTimeout(initial: configuration.ackTimeout)
        recordsRead.initialize(to: 0)
    }

    isolated deinit {
        // A client dropped without close() must not leave a context behind.
        teardown(error: .sessionClosed, notify: false)
        recordsRead.deallocate()
    }

    public var isConnected: Bool {
        if case .connected = state { return true }
        return false
    }

    // MARK: Connecting

    /// Performs the DTLS handshake; returns once the session is established. The handshake's
    /// three round trips give the retransmission timeout its first sample.
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
        io.afterProcess = { [weak self] in
            self?.afterIO()
            self?.runObserverWork()
        }
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
        coap_session_set_max_retransmit(created, UInt16(clamping: configuration.maxRetransmit))
        if configuration.adaptiveRetransmission {
            // libcoap retransmits from its minimum ACK_TIMEOUT, 1 s, on (also what it sends by
            // itself: the requests for the next blocks of a large body); every copy it still
            // tracks counts against NSTART (see adaptiveRetransmission).
            setAckTimeout(1)
            coap_session_set_nstart(created, 16)
        } else {
            setAckTimeout(configuration.ackTimeout)
        }
        // The counter outlives the session (freed in deinit); counting stops in teardown.
        _ = ccoap_count_records(created, recordsRead)
        localAddress = Libcoap.describe(coap_session_get_addr_local(created))
        trace = Libcoap.beginHandshakeTrace(localAddress: localAddress)
        handshakeStarted = .now
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
                    holder.token = try send(method, path, payload: payload, observe: nil, token: nil) { token in
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
            deliver: { response, _ in sink.yield(response) },
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
            deliver: { response, refreshed in handler(refreshed ? .refreshed(response) : .notification(response)) },
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
                    holder.token = try send(.get, path, payload: nil, observe: 0, token: nil) { token in
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

    /// Registers the observation `token` of `path` again, with the same token (RFC 7641 §3.3.1):
    /// the server answers with the current representation and keeps (or, if it had dropped it,
    /// re-creates) the observation. The answer also goes to the observation's handler, as
    /// `.refreshed` (or to its stream). If no answer comes in time the observation stays as it
    /// was and this throws `.timeout`; if the server refuses, the observation ends.
    public func refreshObservation(token: [UInt8], path: String, timeout: Duration? = nil) async throws -> CoAPResponse
    {
        guard case .observing(let observer, let freshness) = pending[token] else {
            throw CoAPError.sendFailed("no observation with that token")
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                do {
                    _ = try send(.get, path, payload: nil, observe: 0, token: token) { token in
                        pending[token] = .refreshing(continuation, observer, freshness)
                        armDeadline(token, timeout ?? configuration.requestTimeout, what: "observe \(path) again")
                    }
                } catch {
                    pending[token] = .observing(observer, freshness)
                    continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            Task { @CoAPActor [weak self] in self?.refreshFailed(token, CoAPError.timeout("cancelled")) }
        }
    }

    /// A re-registration got no answer: the observation stays as it was.
    private func refreshFailed(_ token: [UInt8], _ error: any Error) {
        guard case .refreshing(let continuation, let observer, let freshness) = pending[token] else { return }
        clearDeadline(token)
        sent.removeValue(forKey: token)?.next?.cancel()
        pending[token] = .observing(observer, freshness)
        continuation.resume(throwing: error)
    }

    /// Deregisters an observation (a GET with Observe = 1) and finishes its stream.
    public func cancelObservation(_ observation: CoAPObservation) {
        cancelObservation(token: observation.token)
    }

    /// Deregisters an observation; its handler gets `.ended(nil)`.
    public func cancelObservation(token: [UInt8]) {
        guard let observer = observingSink(token) else { return }
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

    /// Forgets an observation here without telling the server (its handler gets `.ended(nil)`).
    /// For an observation replaced by a newer registration of the same resource, which the
    /// server replaces too (RFC 7641 §4.1); a server that notifies the old token anyway gets a
    /// reset, which ends it there (RFC 7641 §3.6).
    public func forgetObservation(token: [UInt8]) {
        guard let observer = observingSink(token) else { return }
        pending[token] = nil
        toObserver { observer.end(nil) }
    }

    /// The handler of an established observation (also while it is being refreshed), resuming a
    /// waiting refresh with `.sessionClosed` (the observation is being ended).
    private func observingSink(_ token: [UInt8]) -> ObserverSink? {
        switch pending[token] {
        case .observing(let observer, _):
            return observer
        case .refreshing(let continuation, let observer, _):
            clearDeadline(token)
            sent.removeValue(forKey: token)?.next?.cancel()
            continuation.resume(throwing: CoAPError.sessionClosed)
            return observer
        default:
            return nil
        }
    }

    /// Sends a CoAP ping (an empty confirmable message) and waits for the peer's reset,
    /// retransmitting it like a request.
    public func ping(timeout: Duration = .seconds(5)) async throws {
        guard let session, case .connected = state else { throw closeReason ?? CoAPError.sessionClosed }
        let midHolder = TokenHolder()
        let watchdog = CoAPTimer(after: timeout) { [weak self] in
            guard let mid = midHolder.mid else { return }
            self?.pingFinished(mid, error: CoAPError.timeout("ping"))
        }
        defer { watchdog.cancel() }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            if configuration.adaptiveRetransmission { setAckTimeout(max(1, retransmissionTimeout.seconds)) }
            let mid = coap_session_send_ping(session)
            guard mid != COAP_INVALID_MID else {
                continuation.resume(throwing: CoAPError.sendFailed("ping"))
                return
            }
            // Registered before processing: the reset can arrive within the next coap_io_process.
            midHolder.mid = mid
            pings[mid] = Ping(continuation: continuation, timeout: retransmissionTimeout.seconds)
            schedulePingRetransmission(mid)
            startWaiting()
            io?.process()
        }
    }

    private func schedulePingRetransmission(_ mid: coap_mid_t) {
        guard configuration.adaptiveRetransmission, let ping = pings[mid] else { return }
        let wait = backoff(ping.timeout, after: ping.transmissions)
        guard ContinuousClock.now + wait < ping.sent + .seconds(1) else { return }
        pings[mid]?.next = CoAPTimer(after: wait) { [weak self] in
            guard let self, let session = self.session, case .connected = self.state, self.pings[mid] != nil,
                let copy = coap_pdu_init(COAP_MESSAGE_CON, COAP_EMPTY_CODE, mid, 0)
            else { return }
            // The same empty message again (same message ID): the peer answers each with a reset.
            if coap_send(session, copy) != COAP_INVALID_MID { self.retransmissions += 1 }
            self.pings[mid]?.transmissions += 1
            self.schedulePingRetransmission(mid)
            self.io?.process()
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
        _ method: CoAPMethod, _ path: String, payload: [UInt8]?, observe: UInt32?, token given: [UInt8]?,
        register: ([UInt8]) -> Void
    ) throws -> [UInt8] {
        guard let session, case .connected = state else { throw closeReason ?? CoAPError.sessionClosed }
        var token: [UInt8]
        if let given {
            token = given
        } else {
            var tokenLength = 0
            token = [UInt8](repeating: 0, count: 8)
            coap_session_new_token(session, &tokenLength, &token)
            token = Array(token.prefix(tokenLength))
        }
        register(token)
        var request = Sent(
            method: method, path: path, payload: payload, observe: observe, messageID: COAP_INVALID_MID, time: .now,
            timeout: retransmissionTimeout.seconds)
        // libcoap reads ACK_TIMEOUT when it queues a message: its own retransmissions start at the
        // learnt timeout when that is over its 1 s minimum.
        if configuration.adaptiveRetransmission { setAckTimeout(max(1, request.timeout)) }
        guard let mid = transmit(request, token: token, on: session) else {
            clearDeadline(token)
            pending[token] = nil
            throw CoAPError.sendFailed("\(method.rawValue) \(path)")
        }
        request.messageID = mid
        sent[token] = request
        scheduleRetransmission(token)
        startWaiting()
        io?.process()
        return token
    }

    /// Builds and sends one CON message of `request` (a new message ID, or its own again for a
    /// retransmission); the message ID, or nil if libcoap refused it.
    private func transmit(_ request: Sent, token: [UInt8], on session: OpaquePointer) -> coap_mid_t? {
        let pdu: OpaquePointer?
        if request.messageID == COAP_INVALID_MID {
            pdu = coap_new_pdu(COAP_MESSAGE_CON, request.method.pduCode, session)
        } else {
            pdu = coap_pdu_init(
                COAP_MESSAGE_CON, request.method.pduCode, request.messageID, coap_session_max_pdu_size(session))
        }
        guard let pdu else { return nil }
        _ = coap_add_token(pdu, token.count, token)
        // Options in ascending number order: Observe (6), Uri-Path (11).
        if let observe = request.observe {
            var value = [UInt8](repeating: 0, count: 4)
            let length = coap_encode_var_safe(&value, value.count, observe)
            _ = coap_add_option(pdu, coap_option_num_t(COAP_OPTION_OBSERVE), Int(length), value)
        }
        for segment in request.path.split(separator: "/", omittingEmptySubsequences: true) {
            let bytes = Array(segment.utf8)
            _ = coap_add_option(pdu, coap_option_num_t(COAP_OPTION_URI_PATH), bytes.count, bytes)
        }
        if let payload = request.payload, !payload.isEmpty {
            _ = coap_add_data(pdu, payload.count, payload)
        }
        // After coap_send the PDU belongs to libcoap, even on failure.
        let mid = coap_send(session, pdu)
        return mid == COAP_INVALID_MID ? nil : mid
    }

    /// Arms the next retransmission of the GET `token`: after the learnt timeout, then twice as
    /// long each time, as long as that comes before libcoap's own first retransmission (1 s).
    private func scheduleRetransmission(_ token: [UInt8]) {
        guard configuration.adaptiveRetransmission, let request = sent[token], request.method == .get else { return }
        let wait = backoff(request.timeout, after: request.transmissions)
        guard ContinuousClock.now + wait < request.time + .seconds(1) else { return }
        sent[token]?.next = CoAPTimer(after: wait) { [weak self] in self?.retransmit(token) }
    }

    private func retransmit(_ token: [UInt8]) {
        guard let session, case .connected = state, let request = sent[token], isAwaitingAnswer(token) else { return }
        if transmit(request, token: token, on: session) != nil { retransmissions += 1 }
        sent[token]?.transmissions += 1
        scheduleRetransmission(token)
        io?.process()
    }

    private func backoff(_ timeout: Double, after transmissions: Int) -> Duration {
        let factor = Double(1 << min(max(transmissions - 1, 0), 16))
        return .milliseconds(Int(min(timeout * factor, 8) * 1000))
    }

    private func isAwaitingAnswer(_ token: [UInt8]) -> Bool {
        switch pending[token] {
        case .request, .observeRegistration, .refreshing: true
        case .observing, nil: false
        }
    }

    private func setAckTimeout(_ seconds: Double) {
        guard let session else { return }
        let milliseconds = Int((seconds * 1000).rounded())
        coap_session_set_ack_timeout(
            session,
            coap_fixed_point_t(
                integer_part: UInt16(clamping: milliseconds / 1000), fractional_part: UInt16(milliseconds % 1000)))
    }

    /// Takes a round-trip sample for the request `token` answered now.
    private func answered(_ token: [UInt8]) {
        guard let request = sent.removeValue(forKey: token) else { return }
        request.next?.cancel()
        let elapsed = ContinuousClock.now - request.time
        let (whole, fraction) = elapsed.components
        retransmissionTimeout.record(Double(whole) + Double(fraction) / 1e18, timeoutAtSend: request.timeout)
    }

    private func armDeadline(_ token: [UInt8], _ timeout: Duration, what: String) {
        deadlines[token] = CoAPTimer(after: timeout) { [weak self] in
            guard let self else { return }
            if case .refreshing = self.pending[token] {
                self.refreshFailed(token, CoAPError.timeout(what))
            } else {
                self.fail(token, CoAPError.timeout(what))
            }
        }
    }

    private func clearDeadline(_ token: [UInt8]) {
        deadlines.removeValue(forKey: token)?.cancel()
    }

    // MARK: Callbacks (re-entered from libcoap on its queue)

    /// A response or notification for `token`, in a message of `type` with message ID `mid`.
    /// Returns false for a notification nobody observes any more: libcoap then answers with a
    /// reset, which ends that observation at the server (RFC 7641 §3.6).
    fileprivate func received(token: [UInt8], response: CoAPResponse, type: coap_pdu_type_t, mid: coap_mid_t) -> Bool {
        recordsAccounted &+= 1
        let confirmable = type == COAP_MESSAGE_CON
        if confirmable { confirmableReceived(mid) }
        guard let entry = pending[token] else {
            // A late answer (in an ACK) to a request we gave up on is fine; a CON or NON message
            // for a token we do not know is a notification nobody wants.
            return type == COAP_MESSAGE_ACK
        }
        switch entry {
        case .request(let continuation):
            pending[token] = nil
            clearDeadline(token)
            answered(token)
            continuation.resume(returning: response)
        case .observeRegistration(let continuation, let observer):
            clearDeadline(token)
            answered(token)
            if response.code.isSuccess, response.observe != nil {
                pending[token] = .observing(observer, Freshness(sequence: response.observe, time: .now))
            } else {
                // The server did not accept the observation: nothing more will come.
                pending[token] = nil
                toObserver { observer.end(nil) }
            }
            continuation.resume(returning: response)
        case .observing(let observer, var freshness):
            let now = ContinuousClock.now
            guard freshness.admits(response.observe, at: now) else {
                staleNotificationsDropped += 1
                return true
            }
            freshness.sequence = response.observe ?? freshness.sequence
            freshness.time = now
            pending[token] = .observing(observer, freshness)
            toObserver { observer.deliver(response, false) }
            if !response.code.isSuccess {
                pending[token] = nil
                toObserver { observer.end(nil) }
            }
        case .refreshing(let continuation, let observer, var freshness):
            // The answer to the re-registration, or a notification that crossed it.
            let now = ContinuousClock.now
            let isAnswer = type == COAP_MESSAGE_ACK
            if isAnswer {
                clearDeadline(token)
                answered(token)
            }
            if freshness.admits(response.observe, at: now, isAnswer: isAnswer) {
                freshness.sequence = response.observe ?? freshness.sequence
                freshness.time = now
                toObserver { observer.deliver(response, isAnswer) }
            } else {
                staleNotificationsDropped += 1
            }
            if !response.code.isSuccess || (isAnswer && response.observe == nil) {
                // The server refused, or answered without observing: the observation is over.
                pending[token] = nil
                toObserver { observer.end(nil) }
            } else if isAnswer {
                pending[token] = .observing(observer, freshness)
            } else {
                pending[token] = .refreshing(continuation, observer, freshness)
            }
            if isAnswer { continuation.resume(returning: response) }
        }
        return true
    }

    fileprivate func notDelivered(token: [UInt8], mid: Int32, reason: coap_nack_reason_t) {
        // A reset is a record our handlers saw; the other reasons are decided locally.
        if reason == COAP_NACK_RST { recordsAccounted &+= 1 }
        // libcoap gave up on one copy of a message it may have several of (adaptiveRetransmission):
        // the request's own deadline decides.
        let ownRetransmission = configuration.adaptiveRetransmission && reason == COAP_NACK_TOO_MANY_RETRIES
        if pings[mid] != nil {
            if reason == COAP_NACK_RST {
                pingFinished(mid, error: nil)
            } else if !ownRetransmission {
                pingFinished(mid, error: CoAPError.timeout("ping"))
            }
            return
        }
        // Only about the request still waiting for this message (not a copy of an earlier one).
        guard !ownRetransmission, isAwaitingAnswer(token), sent[token]?.messageID == mid else { return }
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
        recordsAccounted &+= 1
        pingFinished(mid, error: nil)
    }

    fileprivate func sessionEvent(_ event: coap_event_t) {
        switch event {
        case COAP_EVENT_DTLS_CONNECTED:
            guard case .connecting(let continuation) = state else { return }
            endTrace()
            // Three round trips (cookie, key exchange, finished) if nothing was retransmitted:
            // OpenSSL waits 1 s before repeating a flight.
            let handshake = ContinuousClock.now - handshakeStarted
            if handshake < .milliseconds(900) {
                let (whole, fraction) = handshake.components
                retransmissionTimeout.seed(roundTrip: (Double(whole) + Double(fraction) / 1e18) / 3)
            }
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
        sent.removeValue(forKey: token)?.next?.cancel()
        guard let entry = pending.removeValue(forKey: token) else { return }
        switch entry {
        case .request(let continuation): continuation.resume(throwing: error)
        case .observeRegistration(let continuation, let observer):
            toObserver { observer.end(error) }
            continuation.resume(throwing: error)
        case .observing(let observer, _): toObserver { observer.end(error) }
        case .refreshing(let continuation, let observer, _):
            toObserver { observer.end(error) }
            continuation.resume(throwing: error)
        }
    }

    // MARK: After each I/O pass

    /// Runs after every outermost `coap_io_process`: notes that the server spoke, and
    /// acknowledges again a confirmable message libcoap dropped without acknowledging it.
    private func afterIO() {
        let read = recordsRead.pointee
        if read != recordsHeard {
            recordsHeard = read
            lastHeard = .now
        }
        guard case .connected = state else { return }
        // More records arrived than our handlers saw: libcoap 4.3.1 consumed some itself. The one
        // that matters is a repeated confirmable response (our acknowledgement was lost, so the
        // server sent it again and holds every later notification behind it until one arrives);
        // acknowledging the last confirmable message once more is right for that and ignored by
        // the server in every other case (an acknowledgement for a message it is not
        // retransmitting, RFC 7252 §4.2).
        // (`recordsAccounted` was `recordsRead` at the end of the last pass, plus one for every
        // record a handler of ours saw during this one.)
        if read > recordsAccounted, let session, let mid = lastConfirmableMID,
            ccoap_acknowledge(session, mid) != COAP_INVALID_MID
        {
            duplicatesAcknowledged += 1
        }
        recordsAccounted = read
        checkSilence()
    }

    /// A confirmable response (a notification) arrived; libcoap acknowledges it when our handler
    /// returns. A server sends its next confirmable notification only once that acknowledgement
    /// arrived (and holds every later one meanwhile), so when nothing newer comes within the
    /// retransmission timeout, the acknowledgement is sent once more: if the first was lost, the
    /// server is released about one round trip later instead of after its own retransmission
    /// (2 to 3 s); if not, the server ignores the copy (RFC 7252 §4.2). Costs one small datagram
    /// per notification in a quiet home.
    ///
    /// The timer is armed once per quiet spell, not per notification: while notifications keep
    /// coming it fires once per retransmission timeout, finds the last one too recent, and waits
    /// for the rest of that time.
    private func confirmableReceived(_ mid: coap_mid_t) {
        lastConfirmableMID = mid
        lastConfirmableAt = .now
        guard configuration.adaptiveRetransmission, !reacknowledgementArmed else { return }
        if reacknowledgement == nil {
            reacknowledgement = ReusableCoAPTimer { [weak self] in self?.acknowledgeAgain() }
        }
        reacknowledgementArmed = true
        reacknowledgement?.arm(after: .milliseconds(Int(retransmissionTimeout.seconds * 1000)))
    }

    private func acknowledgeAgain() {
        reacknowledgementArmed = false
        guard let session, case .connected = state, let mid = lastConfirmableMID else { return }
        let wait = Duration.milliseconds(Int(retransmissionTimeout.seconds * 1000))
        let quiet = ContinuousClock.now - lastConfirmableAt
        if quiet < wait {
            reacknowledgementArmed = true
            reacknowledgement?.arm(after: wait - quiet)
            return
        }
        if ccoap_acknowledge(session, mid) != COAP_INVALID_MID { acknowledgementsRepeated += 1 }
        io?.process()
    }

    /// Records read as of the last I/O pass (to see whether anything arrived since).
    private var recordsHeard: UInt = 0

    /// Something of ours now waits for an answer: the silence watchdog watches from here.
    private func startWaiting() {
        if waitingSince == nil { waitingSince = .now }
        armSilenceWatchdog()
    }

    /// Whether a request or ping of ours waits for its answer (`sent` holds exactly the requests
    /// in flight; it is checked after every I/O pass, so it must not walk every observation).
    private var isWaiting: Bool {
        !pings.isEmpty || !sent.isEmpty
    }

    private func armSilenceWatchdog() {
        guard let limit = configuration.silenceLimit, silenceWatchdog == nil, let since = waitingSince else { return }
        let due = max(lastHeard, since) + limit
        silenceWatchdog = CoAPTimer(after: max(due - .now, .milliseconds(1))) { [weak self] in
            self?.silenceWatchdog = nil
            self?.checkSilence()
        }
    }

    /// Ends the session when the server has sent nothing for `silenceLimit` while we waited.
    private func checkSilence() {
        guard isWaiting else {
            waitingSince = nil
            silenceWatchdog?.cancel()
            silenceWatchdog = nil
            return
        }
        guard let limit = configuration.silenceLimit, let since = waitingSince, case .connected = state else { return }
        if ContinuousClock.now - max(lastHeard, since) >= limit {
            teardown(
                error: .timeout("no answer from \(configuration.host):\(configuration.port) for \(limit)"), notify: true
            )
        } else {
            armSilenceWatchdog()
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
        guard let ping = pings.removeValue(forKey: mid) else { return }
        ping.next?.cancel()
        if let error { ping.continuation.resume(throwing: error) } else { ping.continuation.resume() }
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
        for request in sent.values { request.next?.cancel() }
        sent.removeAll()
        silenceWatchdog?.cancel()
        silenceWatchdog = nil
        waitingSince = nil
        reacknowledgement?.disarm()
        reacknowledgement = nil
        reacknowledgementArmed = false
        if let session {
            _ = ccoap_count_records(session, nil)
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
    /// A notification, or (true) the answer to a re-registration.
    let deliver: @CoAPActor (CoAPResponse, Bool) -> Void
    let end: @CoAPActor ((any Error)?) -> Void
    init(
        deliver: @escaping @CoAPActor (CoAPResponse, Bool) -> Void, end: @escaping @CoAPActor ((any Error)?) -> Void
    ) {
        self.deliver = deliver
        self.end = end
    }
}

/// What a handler-based observation reports.
public enum CoAPObservationEvent: Sendable {
    /// A notification (an error code such as 4.04 means the resource is gone; `.ended` follows).
    case notification(CoAPResponse)
    /// The answer to `refreshObservation`: the current representation, as asked for.
    case refreshed(CoAPResponse)
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

private let clientResponseHandler: coap_response_handler_t = { session, _, received, mid in
    let target = client(of: session)
    let token = copyToken(received)
    let response = CoAPResponse(
        code: CoAPCode(rawValue: UInt8(truncatingIfNeeded: coap_pdu_get_code(received).rawValue)),
        payload: copyPayload(received),
        observe: copyObserve(received))
    let type = coap_pdu_get_type(received)
    let wanted = CoAPActor.assumeIsolated {
        target?.received(token: token, response: response, type: type, mid: mid) ?? true
    }
    return wanted ? COAP_RESPONSE_OK : COAP_RESPONSE_FAIL
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
