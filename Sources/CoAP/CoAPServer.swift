internal import CCoap
import Dispatch

/// A request as a server-side resource handler sees it.
public struct CoAPRequest: Sendable {
    public var method: CoAPMethod
    /// The resource path without leading slash, e.g. "15001/65537".
    public var path: String
    public var payload: [UInt8]
    /// The PSK identity the client's DTLS session authenticated with.
    public var identity: String
    /// The client's address, e.g. "127.0.0.1:40123".
    public var peer: String
    /// True when the request carries the Observe option: a registration (or deregistration), and
    /// every notification built from a registration by calling the GET handler again.
    public var observe: Bool
    /// The CoAP message ID: a retransmitted request carries the same one (RFC 7252 §4.5).
    public var messageID: Int32

    public var text: String { String(decoding: payload, as: UTF8.self) }
}

/// What a resource handler answers.
public struct CoAPServerResponse: Sendable {
    public var code: CoAPCode
    public var payload: [UInt8]

    public init(code: CoAPCode, payload: [UInt8] = []) {
        self.code = code
        self.payload = payload
    }

    public init(code: CoAPCode, json: String) {
        self.init(code: code, payload: Array(json.utf8))
    }
}

/// A DTLS-PSK CoAP server on libcoap's server API.
///
/// Contract:
/// - `@CoAPActor`: handlers run synchronously on the libcoap queue, also when libcoap re-invokes
///   the GET handler to build an Observe notification.
/// - `keyForIdentity` decides which identities may connect; returning nil rejects the handshake
///   with the DTLS alert unknown_psk_identity.
/// - `stop()` frees the context: every session and observation is dropped, as on a reboot.
///   `start()` binds again (same port) and re-creates every registered resource.
/// - Observe (RFC 7641), as a TRÅDFRI gateway does it: a GET with an Observe option of any value
///   but 1 registers, a GET with Observe 1 and the same token deregisters. libcoap 4.3.1
///   registers only the value 0 (`handle_request` in its net.c; it ignores other values with
///   "observe: unexpected action") and its function that adds an observer is internal, so this
///   wrapper keeps the observations registered with other values itself (`Observation`) and
///   treats them as libcoap treats its own: the first response and every notification carry
///   the resource's sequence number; notifications are confirmable and built by the GET handler
///   from the current state; a notification that is not acknowledged (or answered with RST)
///   ends the observation, as does the end of the DTLS session; removing the resource sends a
///   4.04 (NON). Observe 0 stays libcoap's own.
@CoAPActor
public final class CoAPServer {
    /// Answers one request. A GET on an observable resource is also how each notification is
    /// built, so while the resource exists it must answer GET with a 2.xx code.
    public typealias Handler = @CoAPActor (CoAPRequest) -> CoAPServerResponse

    /// Registered resources survive stop()/start().
    @CoAPActor
    final class Resource {
        let path: String
        let observable: Bool
        var handler: Handler
        var native: OpaquePointer?
        weak var server: CoAPServer?
        /// Observations libcoap does not keep (Observe values other than 0 and 1).
        var observations: [Observation] = []
        /// The Observe sequence number of those observations: the first response carries the
        /// current one, every change a higher one (24 bits, as libcoap's).
        var sequence: UInt32 = 2

        init(path: String, observable: Bool, handler: @escaping Handler, server: CoAPServer) {
            self.path = path
            self.observable = observable
            self.handler = handler
            self.server = server
        }
    }

    /// An observation registered with an Observe value libcoap ignores.
    ///
    /// Owns what libcoap's own subscriptions own: a reference to the session (so the pointer
    /// stays valid until `end()` releases it, even after libcoap closed the session) and a
    /// copy of the registering GET (each notification is built from it, as libcoap builds its
    /// own from its copy).
    @CoAPActor
    final class Observation {
        let session: OpaquePointer
        let token: [UInt8]
        let request: OpaquePointer
        private var ended = false

        /// Nil if libcoap cannot copy the request.
        init?(session: OpaquePointer, request: OpaquePointer, token: [UInt8]) {
            guard
                let copy = token.withUnsafeBufferPointer({
                    coap_pdu_duplicate(request, session, $0.count, $0.baseAddress, nil)
                })
            else { return nil }
            self.session = coap_session_reference(session)
            self.request = copy
            self.token = token
        }

        /// Releases the session and the request copy. Idempotent. Every path that drops an
        /// observation calls it, before the context that owns the session is freed (`stop()`,
        /// deinit).
        func end() {
            guard !ended else { return }
            ended = true
            coap_delete_pdu(request)
            coap_session_release(session)
        }
    }

    public let host: String
    public private(set) var port: UInt16
    private let keyForIdentity: @CoAPActor (String) -> [UInt8]?
    private var io: LibcoapContext?
    private var resources: [String: Resource] = [:]
    /// Keys handed to libcoap must stay valid while the context lives (it does not copy them on
    /// the server side); one stable heap entry per identity, freed on deinit.
    private var keyStorage: [String: UnsafeMutablePointer<coap_bin_const_t>] = [:]
    private var emptyKey = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)

    public init(host: String, port: UInt16, keyForIdentity: @escaping @CoAPActor (String) -> [UInt8]?) {
        self.host = host
        self.port = port
        self.keyForIdentity = keyForIdentity
    }

    isolated deinit {
        endAllObservations()
        io?.close()
        for entry in keyStorage.values {
            entry.pointee.s.map { UnsafeMutablePointer(mutating: $0).deallocate() }
            entry.deallocate()
        }
        emptyKey.deallocate()
    }

    public var isRunning: Bool { io != nil }

    /// Binds the DTLS endpoint (port 0 picks a free port, kept for later restarts) and creates
    /// every registered resource.
    public func start() throws(CoAPError) {
        guard io == nil else { return }
        let io = try LibcoapContext(owner: self)
        let context = io.context

        var setup = coap_dtls_spsk_t()
        setup.version = UInt8(COAP_DTLS_SPSK_SETUP_VERSION)
        setup.validate_id_call_back = serverIdentityCallback
        setup.id_call_back_arg = UnsafeMutableRawPointer(context)
        setup.psk_info.key = coap_bin_const_t(length: 0, s: emptyKey)
        setup.psk_info.hint = coap_bin_const_t(length: 0, s: emptyKey)
        // Both handlers end the observations this wrapper keeps (libcoap ends its own).
        coap_register_nack_handler(context, serverNackHandler)
        coap_register_event_handler(context, serverEventHandler)
        guard coap_context_set_psk2(context, &setup) == 1 else {
            io.close()
            throw .setup("coap_context_set_psk2 failed")
        }

        guard let address = ResolvedAddress.literal(host: host, port: port) else {
            io.close()
            throw .setup("'\(host)' is not an IP address")
        }
        var coapAddress = address.coapAddress()
        guard let endpoint = coap_new_endpoint(context, &coapAddress, COAP_PROTO_DTLS) else {
            io.close()
            throw .setup("cannot bind \(address.description) (address in use or not local)")
        }
        // 4.3.1 has no getter for the bound address: it prints as "127.0.0.1:40123 (DTLS)".
        if port == 0, let text = coap_endpoint_str(endpoint) {
            let printed = String(cString: text)
            if let colon = printed.lastIndex(of: ":") {
                let digits = printed[printed.index(after: colon)...].prefix { $0.isNumber }
                port = UInt16(digits) ?? 0
            }
        }
        self.io = io
        for resource in resources.values {
            attach(resource)
        }
        try io.start()
    }

    /// Drops every session and observation and closes the socket, silently: a server that stops
    /// does not tell its observers the resources are gone (libcoap would send them a 4.04 each
    /// as it frees the resources, unless they are no longer observable).
    public func stop() {
        endAllObservations()
        for resource in resources.values {
            if let native = resource.native { coap_resource_set_get_observable(native, 0) }
            resource.native = nil
        }
        io?.close()
        io = nil
    }

    /// Adds (or replaces the handler of) the resource at `path`.
    public func addResource(_ path: String, observable: Bool = true, handler: @escaping Handler) {
        if let existing = resources[path] {
            existing.handler = handler
            if existing.native == nil { attach(existing) }
            return
        }
        let resource = Resource(path: path, observable: observable, handler: handler, server: self)
        resources[path] = resource
        attach(resource)
    }

    /// Removes the resource: observers get a 4.04 notification (NON, as libcoap sends it on
    /// deletion), later requests a 4.04 response.
    ///
    /// Never end an observation by answering a notification with an error code instead: libcoap
    /// 4.3.1 frees the observer and then writes to it (coap_notify_observers, resource.c).
    public func removeResource(_ path: String) {
        guard let resource = resources.removeValue(forKey: path) else { return }
        for observation in resource.observations {
            // As libcoap tells its own observers: a NON 4.04 without Observe.
            if io != nil, let pdu = coap_new_pdu(COAP_MESSAGE_NON, COAP_RESPONSE_CODE_NOT_FOUND, observation.session) {
                _ = coap_add_token(pdu, observation.token.count, observation.token)
                _ = coap_send(observation.session, pdu)
            }
            observation.end()
        }
        resource.observations.removeAll()
        if let io, let native = resource.native {
            // libcoap skips the deletion notice for an observer whose session has an unacknowledged
            // CON outstanding when the resource notifies with CON; in NON mode it always sends it.
            coap_resource_set_mode(native, Int32(COAP_RESOURCE_FLAGS_NOTIFY_NON))
            coap_delete_resource(io.context, native)
            resource.native = nil
            io.process()
        }
    }

    /// Marks the resource changed: every observer gets a notification built by its GET handler.
    public func notifyObservers(_ path: String) {
        guard let resource = resources[path], let native = resource.native else { return }
        coap_resource_notify_observers(native, nil)
        notifyOwnObservations(of: resource)
        io?.process()
    }

    /// Sends each observation this wrapper keeps a confirmable notification built by the GET
    /// handler from the current state. libcoap queues a notification while an earlier
    /// confirmable message to the same client is unacknowledged (NSTART 1), so they arrive in
    /// order; an unacknowledged one reaches `observationFailed` through the NACK handler.
    private func notifyOwnObservations(of resource: Resource) {
        guard let native = resource.native, !resource.observations.isEmpty else { return }
        resource.sequence = (resource.sequence + 1) & 0xFF_FFFF
        for observation in resource.observations {
            guard let pdu = coap_new_pdu(COAP_MESSAGE_CON, COAP_RESPONSE_CODE_CONTENT, observation.session) else {
                continue
            }
            _ = coap_add_token(pdu, observation.token.count, observation.token)
            let call = HandlerCall(
                native: native, session: observation.session, request: observation.request, query: nil,
                response: pdu)
            let answer = resource.handler(request(for: resource, call))
            // As libcoap does for its own, an error is sent without Observe and ends the observation.
            if answer.code.isSuccess { Self.addObserve(resource.sequence, to: pdu) }
            write(answer, call)
            // After coap_send the PDU belongs to libcoap, even on failure; a notification that
            // cannot be sent now is not retried (the next change sends the state again).
            _ = coap_send(observation.session, pdu)
            if !answer.code.isSuccess { end(observation, of: resource) }
        }
    }

    /// The server's part of a GET with Observe: libcoap handles 0 (register) and 1 (deregister)
    /// for its own observations; every other value registers here (a success only), 1 also ends
    /// an observation kept here, and any registration replaces one kept here for the same client
    /// and resource (RFC 7641 §4.1).
    private func observeRequested(
        _ value: UInt32, _ resource: Resource, _ call: HandlerCall, succeeded: Bool
    ) {
        guard let session = call.session, let request = call.request, let response = call.response else { return }
        let token = copyToken(request)
        let previous = resource.observations.filter {
            $0.session == session && (value == 1 ? $0.token == token : true)
        }
        for observation in previous { end(observation, of: resource) }
        guard value != 0, value != 1, succeeded,
            let observation = Observation(session: session, request: request, token: token)
        else { return }
        resource.observations.append(observation)
        Self.addObserve(resource.sequence, to: response)
    }

    private func end(_ observation: Observation, of resource: Resource) {
        observation.end()
        resource.observations.removeAll { $0 === observation }
    }

    /// A notification (or the session) failed: the observation with `token` (every observation
    /// of the session when nil) ends.
    fileprivate func observationFailed(session: OpaquePointer, token: [UInt8]?) {
        for resource in resources.values {
            for observation in resource.observations
            where observation.session == session && (token == nil || observation.token == token) {
                end(observation, of: resource)
            }
        }
    }

    private func endAllObservations() {
        for resource in resources.values {
            for observation in resource.observations { observation.end() }
            resource.observations.removeAll()
        }
    }

    private static func addObserve(_ sequence: UInt32, to pdu: OpaquePointer) {
        var value = [UInt8](repeating: 0, count: 4)
        let length = coap_encode_var_safe(&value, value.count, sequence)
        _ = coap_add_option(pdu, coap_option_num_t(COAP_OPTION_OBSERVE), Int(length), value)
    }

    private func attach(_ resource: Resource) {
        guard let io, resource.native == nil else { return }
        let bytes = Array(resource.path.utf8)
        guard let uri = bytes.withUnsafeBufferPointer({ coap_new_str_const($0.baseAddress, $0.count) }),
            let native = coap_resource_init(
                uri, Int32(COAP_RESOURCE_FLAGS_RELEASE_URI | COAP_RESOURCE_FLAGS_NOTIFY_CON))
        else { return }
        coap_resource_set_userdata(native, Unmanaged.passUnretained(resource).toOpaque())
        for method in [COAP_REQUEST_GET, COAP_REQUEST_PUT, COAP_REQUEST_POST, COAP_REQUEST_DELETE] {
            coap_register_handler(native, method, serverMethodHandler)
        }
        if resource.observable { coap_resource_set_get_observable(native, 1) }
        coap_add_resource(io.context, native)
        resource.native = native
    }

    fileprivate func key(for identity: String) -> UnsafePointer<coap_bin_const_t>? {
        guard let key = keyForIdentity(identity) else { return nil }
        if let stored = keyStorage[identity], stored.pointee.length == key.count,
            let bytes = stored.pointee.s, Array(UnsafeBufferPointer(start: bytes, count: key.count)) == key
        {
            return UnsafePointer(stored)
        }
        let bytes = UnsafeMutablePointer<UInt8>.allocate(capacity: max(key.count, 1))
        bytes.initialize(from: key, count: key.count)
        let entry = UnsafeMutablePointer<coap_bin_const_t>.allocate(capacity: 1)
        entry.initialize(to: coap_bin_const_t(length: key.count, s: bytes))
        if let old = keyStorage[identity] {
            // libcoap duplicated the old key when it used it; nothing refers to this copy now.
            old.pointee.s.map { UnsafeMutablePointer(mutating: $0).deallocate() }
            old.deallocate()
        }
        keyStorage[identity] = entry
        return UnsafePointer(entry)
    }

    /// Answers one request libcoap hands to a resource handler (on the libcoap queue).
    fileprivate func serve(_ resource: Resource, _ call: HandlerCall) {
        guard let request = call.request, call.response != nil else { return }
        let swiftRequest = self.request(for: resource, call)
        let answer = resource.handler(swiftRequest)
        if swiftRequest.method == .get, resource.observable, let value = Self.observeValue(of: request) {
            observeRequested(value, resource, call, succeeded: answer.code.isSuccess)
        }
        write(answer, call)
    }

    /// The request as handlers see it.
    private func request(for resource: Resource, _ call: HandlerCall) -> CoAPRequest {
        let method: CoAPMethod =
            switch call.request.map({ coap_pdu_get_code($0) }) {
            case COAP_REQUEST_CODE_PUT: .put
            case COAP_REQUEST_CODE_POST: .post
            case COAP_REQUEST_CODE_DELETE: .delete
            default: .get
            }
        var identity = ""
        if let session = call.session, let psk = coap_session_get_psk_identity(session), let bytes = psk.pointee.s {
            identity = String(decoding: UnsafeBufferPointer(start: bytes, count: psk.pointee.length), as: UTF8.self)
        }
        return CoAPRequest(
            method: method, path: resource.path, payload: copyPayload(call.request),
            identity: identity, peer: call.session.map { Libcoap.describe(coap_session_get_addr_remote($0)) } ?? "?",
            observe: call.request.flatMap { Self.observeValue(of: $0) } != nil,
            messageID: call.request.map { coap_pdu_get_mid($0) } ?? 0)
    }

    /// Sets the response code and body (block-wise when large, libcoap sending the rest).
    private func write(_ answer: CoAPServerResponse, _ call: HandlerCall) {
        guard let response = call.response else { return }
        coap_pdu_set_code(response, coap_pdu_code_t(rawValue: UInt32(answer.code.rawValue)))
        guard !answer.payload.isEmpty else { return }
        // libcoap keeps the body until the last block is sent: hand it a malloc'd copy it frees.
        guard let copy = malloc(answer.payload.count) else { return }
        answer.payload.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        _ = coap_add_data_large_response(
            call.native, call.session, call.request, response, call.query, UInt16(COAP_MEDIATYPE_APPLICATION_JSON),
            -1, 0, answer.payload.count, copy.assumingMemoryBound(to: UInt8.self), { _, pointer in free(pointer) },
            copy)
    }

    /// The Observe option's value, or nil without one.
    private static func observeValue(of pdu: OpaquePointer) -> UInt32? {
        var iterator = coap_opt_iterator_t()
        guard let option = coap_check_option(pdu, coap_option_num_t(COAP_OPTION_OBSERVE), &iterator) else {
            return nil
        }
        return UInt32(coap_decode_var_bytes(coap_opt_value(option), Int(coap_opt_length(option))))
    }
}

/// The libcoap pointers of one handler call (or of one notification built by this wrapper).
/// @unchecked Sendable: only ever used synchronously on the libcoap queue, inside the libcoap
/// callback (or the `@CoAPActor` method) that received them; none is kept.
struct HandlerCall: @unchecked Sendable {
    let native: OpaquePointer
    let session: OpaquePointer?
    let request: OpaquePointer?
    let query: UnsafePointer<coap_string_t>?
    let response: OpaquePointer?
}

/// A session pointer handed from a NACK or event callback to the server, which only compares it
/// with the sessions of its observations. @unchecked Sendable for the same reason as `HandlerCall`.
struct SessionPointer: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}

// MARK: - C callbacks (on the libcoap queue, inside coap_io_process)

private let serverIdentityCallback: coap_dtls_id_callback_t = { identity, _, argument in
    // The argument is the server's coap_context_t; its app data leads to the (weakly held) server.
    guard let identity, let server = LibcoapContext.owner(of: OpaquePointer(argument), as: CoAPServer.self)
    else { return nil }
    let name = String(
        decoding: UnsafeBufferPointer(start: identity.pointee.s, count: identity.pointee.length), as: UTF8.self)
    let key = CoAPActor.assumeIsolated { server.key(for: name).map { UInt(bitPattern: $0) } }
    return key.flatMap { UnsafePointer(bitPattern: $0) }
}

private let serverMethodHandler: coap_method_handler_t = { native, session, request, query, response in
    guard let native, let data = coap_resource_get_userdata(native) else { return }
    // The Swift resource outlives the native one: both are dropped together by stop()/deinit.
    let resource = Unmanaged<CoAPServer.Resource>.fromOpaque(data).takeUnretainedValue()
    let call = HandlerCall(
        native: native, session: session, request: request, query: query,
        response: response)
    CoAPActor.assumeIsolated {
        if let server = resource.server {
            server.serve(resource, call)
        } else if let response = call.response {
            coap_pdu_set_code(response, coap_pdu_code_t(rawValue: UInt32(CoAPCode.serviceUnavailable.rawValue)))
        }
    }
}

/// A confirmable message was not acknowledged (retransmissions exhausted), was answered with
/// RST, or died with its session. For a notification of an observation kept here, that ends the
/// observation, as a failed notification ends libcoap's own (COAP_OBS_MAX_FAIL is 1 in 4.3.1).
/// An ICMP error is not final: libcoap keeps retransmitting.
private let serverNackHandler: coap_nack_handler_t = { session, sent, reason, _ in
    guard let session, reason != COAP_NACK_ICMP_ISSUE,
        let server = LibcoapContext.owner(of: coap_session_get_context(session), as: CoAPServer.self)
    else { return }
    let token = copyToken(sent)
    let failed = SessionPointer(session)
    CoAPActor.assumeIsolated { server.observationFailed(session: failed.pointer, token: token) }
}

/// A DTLS session closed or failed: its observations kept here end (libcoap ends its own in
/// coap_session_disconnected).
private let serverEventHandler: coap_event_handler_t = { session, event in
    switch event {
    case COAP_EVENT_DTLS_CLOSED, COAP_EVENT_DTLS_ERROR, COAP_EVENT_SESSION_CLOSED, COAP_EVENT_SESSION_FAILED,
        COAP_EVENT_SERVER_SESSION_DEL:
        guard let session,
            let server = LibcoapContext.owner(of: coap_session_get_context(session), as: CoAPServer.self)
        else { return 0 }
        let ended = SessionPointer(session)
        CoAPActor.assumeIsolated { server.observationFailed(session: ended.pointer, token: nil) }
    default:
        break
    }
    return 0
}
