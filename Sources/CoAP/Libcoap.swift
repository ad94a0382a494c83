internal import CCoap
import Dispatch
import Logging

/// Process-wide libcoap state: startup, log routing and handshake tracing. `@CoAPActor`, like
/// every libcoap call.
@CoAPActor
enum Libcoap {
    private static var started = false
    /// TRADFRI_COAP_DEBUG=1 forwards libcoap's own debug log (every PDU and DTLS step).
    private static let verbose = getenv("TRADFRI_COAP_DEBUG").map { String(cString: $0) == "1" } ?? false
    private static let logger = Logger(label: "libcoap")

    /// Handshakes in progress, keyed by the client session's local address ("127.0.0.1:40001"),
    /// which libcoap prints at the start of every DTLS log line of that session.
    private static var handshakeTraces: [String: HandshakeTrace] = [:]

    /// Starts libcoap once. Every entry point that creates a context calls this first.
    static func startup() {
        guard !started else { return }
        started = true
        coap_startup()
        coap_set_show_pdu_output(0)  // PDU dumps go through the log handler, never to stdout
        coap_set_log_handler { level, message in
            // Called by libcoap synchronously, on the libcoap queue, inside a libcoap call.
            guard let message else { return }
            let text = String(cString: message)
            CoAPActor.assumeIsolated { Libcoap.route(level: level, text: text) }
        }
        setQuietLevels()
    }

    private static func setQuietLevels() {
        let level = verbose ? CCOAP_LOG_DEBUG : CCOAP_LOG_WARNING
        coap_set_log_level(coap_log_t(level))
        coap_dtls_set_log_level(level)
    }

    /// Begins recording the handshake of the session whose local address is `localAddress`.
    /// libcoap reports handshake progress only at debug level, so the level is raised while any
    /// handshake is in progress.
    static func beginHandshakeTrace(localAddress: String) -> HandshakeTrace {
        let trace = HandshakeTrace()
        handshakeTraces[localAddress + " <-> "] = trace
        coap_set_log_level(coap_log_t(CCOAP_LOG_DEBUG))
        coap_dtls_set_log_level(CCOAP_LOG_DEBUG)
        return trace
    }

    static func endHandshakeTrace(localAddress: String) {
        handshakeTraces[localAddress + " <-> "] = nil
        if handshakeTraces.isEmpty { setQuietLevels() }
    }

    private static func route(level: coap_log_t, text: String) {
        let line = text.hasSuffix("\n") ? String(text.dropLast()) : text
        if !handshakeTraces.isEmpty, line.contains("DTLS:") {
            for (key, trace) in handshakeTraces where line.contains(key) {
                trace.record(line)
            }
        }
        if verbose {
            logger.debug("libcoap", metadata: ["message": "\(line)"])
            return
        }
        // We report an unreachable peer ourselves, with the address.
        if line.contains("ICMP") { return logger.debug("libcoap", metadata: ["message": "\(line)"]) }
        switch Int32(level) {
        case ...CCOAP_LOG_ERR:
            // "got RST for mid" is how libcoap logs the expected answer to a CoAP ping.
            if line.contains("got RST for mid") { return }
            logger.error("libcoap", metadata: ["message": "\(line)"])
        case CCOAP_LOG_WARNING:
            logger.warning("libcoap", metadata: ["message": "\(line)"])
        case CCOAP_LOG_NOTICE, CCOAP_LOG_INFO:
            logger.debug("libcoap", metadata: ["message": "\(line)"])
        default:
            logger.trace("libcoap", metadata: ["message": "\(line)"])
        }
    }

    /// Prints a libcoap address as "host:port" (IPv6 in brackets).
    nonisolated static func describe(_ address: UnsafePointer<coap_address_t>?) -> String {
        guard let address else { return "?" }
        var buffer = [UInt8](repeating: 0, count: 128)
        let length = coap_print_addr(address, &buffer, buffer.count)
        return String(decoding: buffer.prefix(length), as: UTF8.self)
    }
}

/// What the DTLS log lines of one client handshake said.
@CoAPActor
final class HandshakeTrace {
    /// The server answered our ClientHello (so the address and port are right).
    private(set) var serverAnswered = false
    /// We sent our Finished message (the key exchange is over; a stall now means a key mismatch).
    private(set) var sentFinished = false
    /// The first fatal alert read or written, e.g. "read:fatal:unknown PSK identity".
    private(set) var alert: String?

    func record(_ line: String) {
        if line.contains("read server hello") || line.contains("read hello verify request") {
            serverAnswered = true
        } else if line.contains("write finished") {
            sentFinished = true
        } else if alert == nil, let range = line.firstRange(of: "SSL3 alert ") {
            let description = String(line[range.upperBound...])
            if description.contains("fatal") { alert = description }
        }
    }
}

/// Owns one `coap_context_t` and drives it from its epoll descriptor: a dispatch read source on
/// the libcoap queue calls `coap_io_process(ctx, NO_WAIT)` whenever libcoap has I/O or a timer
/// due (its timers live on a timerfd inside that epoll set). No polling, no busy loop.
@CoAPActor
final class LibcoapContext {
    let context: OpaquePointer
    /// The CoAPClient or CoAPServer that owns this context. Weak: an owner whose isolated deinit
    /// is still queued reads as nil, so late callbacks find nobody instead of a dying object.
    /// nonisolated(unsafe): written once in init, read only by C callbacks on the libcoap queue.
    nonisolated(unsafe) private(set) weak var owner: AnyObject?
    private var source: (any DispatchSourceRead)?
    private var processing = false
    private var processAgain = false
    private var closed = false
    /// Runs after each outermost `process()`, once libcoap has sent what the pass produced
    /// (acknowledgements included).
    var afterProcess: (@CoAPActor () -> Void)?

    /// True inside `process()`, i.e. inside a libcoap callback.
    var isProcessing: Bool { processing }

    init(owner: AnyObject) throws(CoAPError) {
        Libcoap.startup()
        guard let context = coap_new_context(nil) else {
            throw .setup("coap_new_context failed")
        }
        self.context = context
        self.owner = owner
        coap_set_app_data(context, Unmanaged.passUnretained(self).toOpaque())
        // libcoap reassembles Block2 responses (also for notifications); needed for cancel_observe.
        coap_context_set_block_mode(context, UInt8(COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY))
    }

    /// The owner of the context a C callback was invoked for, if it is still alive.
    /// Nonisolated: called from C callbacks, which run on the libcoap queue.
    nonisolated static func owner<T: AnyObject>(of context: OpaquePointer?, as type: T.Type) -> T? {
        guard let context, let data = coap_get_app_data(context) else { return nil }
        // The app data is cleared in close() before the context is freed, and LibcoapContext
        // outlives its C context, so the pointer is valid whenever it is set.
        let io = Unmanaged<LibcoapContext>.fromOpaque(data).takeUnretainedValue()
        return io.owner as? T
    }

    /// Starts watching the context's descriptor. Call after sessions or endpoints exist.
    func start() throws(CoAPError) {
        let fd = coap_context_get_coap_fd(context)
        guard fd >= 0 else { throw .setup("libcoap was built without epoll support") }
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: CoAPActor.queue)
        source.setEventHandler { [weak self] in
            CoAPActor.assumeIsolated { self?.process() }
        }
        self.source = source
        source.resume()
        process()
    }

    /// Lets libcoap send what was queued, handle what arrived and re-arm its timer. Safe to call
    /// from inside a libcoap callback: the nested call is deferred to the end of the outer one.
    func process() {
        guard !closed else { return }
        if processing {
            processAgain = true
            return
        }
        processing = true
        repeat {
            processAgain = false
            _ = coap_io_process(context, CCOAP_IO_NO_WAIT)
        } while processAgain && !closed
        processing = false
        afterProcess?()
    }

    /// Frees the context (and with it every session, endpoint and resource) once the dispatch
    /// source has let go of the descriptor.
    func close() {
        guard !closed else { return }
        closed = true
        let context = self.context
        coap_set_app_data(context, nil)
        owner = nil
        guard let source else {
            coap_free_context(context)
            return
        }
        source.setCancelHandler {
            CoAPActor.assumeIsolated { coap_free_context(context) }
        }
        source.cancel()
        self.source = nil
    }
}
