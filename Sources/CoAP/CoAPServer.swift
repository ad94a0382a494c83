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
    /// True when the request carries the Observe option: a registration, and every notification
    /// libcoap builds from it by calling the GET handler again.
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

        init(path: String, observable: Bool, handler: @escaping Handler, server: CoAPServer) {
            self.path = path
            self.observable = observable
            self.handler = handler
            self.server = server
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
        guard let native = resources[path]?.native else { return }
        coap_resource_notify_observers(native, nil)
        io?.process()
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

    fileprivate func handle(_ resource: Resource, _ request: CoAPRequest) -> CoAPServerResponse {
        resource.handler(request)
    }
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
    let code = coap_pdu_get_code(request)
    let method: CoAPMethod =
        switch code {
        case COAP_REQUEST_CODE_PUT: .put
        case COAP_REQUEST_CODE_POST: .post
        case COAP_REQUEST_CODE_DELETE: .delete
        default: .get
        }
    var identity = ""
    if let session, let psk = coap_session_get_psk_identity(session), let bytes = psk.pointee.s {
        identity = String(decoding: UnsafeBufferPointer(start: bytes, count: psk.pointee.length), as: UTF8.self)
    }
    var iterator = coap_opt_iterator_t()
    let observe = coap_check_option(request, coap_option_num_t(COAP_OPTION_OBSERVE), &iterator) != nil
    let peer = session.map { Libcoap.describe(coap_session_get_addr_remote($0)) } ?? "?"
    let swiftRequest = CoAPRequest(
        method: method, path: resource.path, payload: copyPayload(request),
        identity: identity, peer: peer, observe: observe,
        messageID: coap_pdu_get_mid(request))
    let answer = CoAPActor.assumeIsolated {
        resource.server?.handle(resource, swiftRequest) ?? CoAPServerResponse(code: .serviceUnavailable)
    }
    coap_pdu_set_code(response, coap_pdu_code_t(rawValue: UInt32(answer.code.rawValue)))
    guard !answer.payload.isEmpty else { return }
    // libcoap keeps the body until the last block is sent: hand it a malloc'd copy it frees.
    guard let copy = malloc(answer.payload.count) else { return }
    answer.payload.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    _ = coap_add_data_large_response(
        native, session, request, response, query, UInt16(COAP_MEDIATYPE_APPLICATION_JSON), -1, 0,
        answer.payload.count, copy.assumingMemoryBound(to: UInt8.self), { _, pointer in free(pointer) }, copy)
}
