internal import CMosquitto
import Foundation
import Logging

/// One `struct mosquitto` and the thread that drives it; the engine behind `MQTTClient`.
///
/// Threads:
/// - The *network thread* (started by `start()`) runs the cycle look the broker's name up (on a
///   thread of its own, `BrokerLookup`) → connect → socket loop until the
///   connection ends → backoff → connect again, until a stop is requested. The socket loop is our
///   own poll(2) loop over libmosquitto's external-loop calls (`mosquitto_loop_read`,
///   `mosquitto_loop_write`, `mosquitto_loop_misc`); see `turnSocketLoop`. Every libmosquitto
///   callback runs on it, inside those calls, with libmosquitto's callback mutex held; the
///   callbacks copy what they need, update state under `lock` and yield events.
/// - Callers (any thread or task) only queue packets (`mosquitto_publish_v5` & co.): the handle
///   is in threaded mode (`mosquitto_threaded_set`), so libmosquitto never writes from the
///   caller's thread; the caller then wakes the network thread through `wakeDescriptor` to write
///   them.
/// - `lock` guards every mutable Swift field. No libmosquitto function is called with `lock`
///   held, so libmosquitto's mutexes and `lock` never nest.
///
/// Why not `mosquitto_loop`: it waits with select(2) and refuses to run once the client's socket
/// (or its internal wake-up socket pair) has a descriptor of FD_SETSIZE (1024) or more:
/// `if(mosq->sock >= FD_SETSIZE || mosq->sockpairR >= FD_SETSIZE){ return MOSQ_ERR_INVAL; }`
/// (lib/loop.c, 2.0.11). A daemon with many open connections (the web page, pairing) gets such
/// descriptors, and a connection made then could never be served. poll(2) has no such limit.
///
/// Why not `mosquitto_loop_start`: its thread (`mosquitto_loop_forever`) gives up for good on
/// errors it considers fatal, which include an MQTT 5 CONNACK refusal (reported as
/// `MOSQ_ERR_PROTOCOL`), any TLS error and a failed DNS lookup; it has no jitter and grows the
/// delay quadratically; and it runs `mosquitto_loop`. A daemon has to keep trying, so this thread
/// does the reconnecting.
///
/// Lifetime: the network thread holds the session until it ends. It ends after a stop request
/// (`disconnect()`, or the client's deinit) and is the one that calls `mosquitto_destroy`: after
/// its last loop call returned, outside any callback, and once no call from another thread is
/// using the handle (`callsInProgress`). A session that never started is destroyed by deinit,
/// which also closes `wakeDescriptor`.
final class MosquittoSession: @unchecked Sendable {
    // @unchecked: `handle` is used only through libmosquitto's thread-safe entry points while
    // `withHandle` (or the network thread itself) keeps it alive; all mutable Swift state is
    // guarded by `lock`, but `nextAddress`, which only the network thread uses.

    let configuration: MQTTConfiguration
    let logger: Logger
    /// Events in order. Finishes when the session has stopped.
    let events: AsyncStream<MQTTEvent>
    private let eventSink: AsyncStream<MQTTEvent>.Continuation
    private let handle: OpaquePointer
    /// An eventfd (non-blocking, close-on-exec) the network thread polls together with the
    /// socket. Callers that queue a packet add to it (`wakeNetworkThread`), so a thread waiting
    /// in poll(2) comes round and writes; the thread drains it each time it wakes. Open for the
    /// session's whole life (closed by deinit), so a caller can never write to a recycled number.
    /// (libmosquitto still writes a byte to its own socket pair for each packet in threaded mode;
    /// nobody reads that pair now, and as both ends are non-blocking its writes simply fail with
    /// EAGAIN once its buffer is full.)
    private let wakeDescriptor: Int32
    private let lock = NSCondition()

    private enum Phase {
        /// `start()` not called yet.
        case idle
        /// A connection attempt is under way (TCP, TLS, CONNECT sent, waiting for CONNACK).
        case connecting
        case connected
        /// The last attempt ended; waiting out the backoff.
        case disconnected
        /// The network thread has ended (or never started and never will).
        case stopped
    }

    private enum WaiterKind {
        case publish(MQTTQoS)
        case subscribe([Subscription])
        case unsubscribe

        /// Whether the request dies with the connection. libmosquitto re-sends unacknowledged
        /// QoS 1/2 publishes after reconnecting, but drops queued QoS 0 publishes and never
        /// re-sends SUBSCRIBE or UNSUBSCRIBE.
        var diesWithConnection: Bool {
            if case .publish(let qos) = self { return qos == .atMostOnce }
            return true
        }
    }

    /// The broker's answer to a request, as reported by a libmosquitto callback.
    enum Completion: Sendable {
        /// PUBACK/PUBCOMP (QoS 1/2) or written to the socket (QoS 0); MQTT 5 reason code.
        case published(reasonCode: Int32)
        /// SUBACK: granted QoS or failure code per filter.
        case subscribed(codes: [Int32])
        case unsubscribed
    }

    private struct Waiter {
        let kind: WaiterKind
        let continuation: CheckedContinuation<Completion, any Error>
        let timer: Task<Void, Never>
    }

    private struct Subscription: Sendable {
        let filter: String
        let qos: MQTTQoS
        let options: MQTTSubscribeOptions
    }

    /// What happened during the current connection attempt.
    private struct Attempt {
        var connectedAt: ContinuousClock.Instant?
        var refused = false
        /// What libmosquitto logged as errors meanwhile. Its return codes say only "A TLS error
        /// occurred"; the log says why ("certificate verify failed", "host name verification
        /// failed").
        var loggedErrors: [String] = []
    }

    // MARK: State (guarded by `lock`)

    private var phase = Phase.idle
    private var stopRequested = false
    /// Set once the handle is about to be destroyed; no new call may start using it.
    private var closing = false
    private var handleDestroyed = false
    private var callsInProgress = 0
    private var attempt = Attempt()
    private var subscriptions: [Subscription] = []
    private var waiters: [Int32: Waiter] = [:]
    /// Callers between "libmosquitto returned the message id" and "waiter registered".
    private var registering = 0
    /// Answers that arrived while a caller was registering: libmosquitto can call on_publish for a
    /// message before `mosquitto_publish_v5` has returned its id to us. Cleared whenever
    /// `registering` drops to 0, so it only ever holds a handful of entries.
    private var earlyCompletions: [Int32: Completion] = [:]
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []
    /// Counts for `statistics` (published, received, accepted connections).
    private var counts = MQTTStatistics()
    /// Publishes handed to libmosquitto and not yet written (QoS 0) or acknowledged (QoS 1, 2),
    /// with whether each is QoS 0 (those die with the connection; the others are sent again).
    private var unacknowledged: [Int32: Bool] = [:]
    /// Callers inside `mosquitto_publish_v5`; while there are any, a completion for a message id
    /// not known yet is kept in `completedEarly` (it can beat the id back to the caller).
    private var publishesUnderWay = 0
    private var completedEarly: Set<Int32> = []
    /// Which of the broker's addresses the next attempt takes (without TLS). The one field not
    /// guarded by `lock`: only the network thread uses it.
    private var nextAddress = 0

    #if DEBUG
    /// Test-only: the network thread blocks for this long at its next turn (`stallNetworkThread`).
    private var stallRequested: Duration?
    #endif

    // MARK: Setup

    init(_ configuration: MQTTConfiguration, logger: Logger) throws(MQTTError) {
        Libmosquitto.initialized
        try Self.validate(configuration)
        let clientID = configuration.clientID.isEmpty ? nil : configuration.clientID
        guard let handle = mosquitto_new(clientID, configuration.cleanSession, nil) else {
            throw .library(
                operation: "creating the MQTT client", code: MOSQ_ERR_ERRNO.rawValue,
                message: String(cString: strerror(errno)))
        }
        let wakeDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeDescriptor >= 0 else {
            let message = String(cString: strerror(errno))
            mosquitto_destroy(handle)
            throw .library(
                operation: "creating the MQTT client's wake-up descriptor", code: MOSQ_ERR_ERRNO.rawValue,
                message: message)
        }
        self.handle = handle
        self.wakeDescriptor = wakeDescriptor
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "mqtt.broker"] = "\(configuration)"
        logger[metadataKey: "mqtt.client_id"] = "\(configuration.clientID)"
        self.logger = logger
        (events, eventSink) = AsyncStream.makeStream(of: MQTTEvent.self)
        // From here on, a throw runs deinit, which destroys the handle.
        try applyConfiguration()
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        installCallbacks()
    }

    deinit {
        // Reached only once the network thread has ended (it holds the session), or if it never
        // started; either way nothing else can touch the handle any more.
        if !handleDestroyed {
            mosquitto_destroy(handle)
        }
        close(wakeDescriptor)
        eventSink.finish()
    }

    private static func validate(_ configuration: MQTTConfiguration) throws(MQTTError) {
        let keepAlive = configuration.keepAlive.components.seconds
        guard keepAlive == 0 || (5...65535).contains(keepAlive) else {
            throw .invalidConfiguration(
                "keepalive must be 0 (off) or 5 … 65535 seconds, not \(configuration.keepAlive)")
        }
        guard !configuration.host.isEmpty else { throw .invalidConfiguration("no broker host") }
        guard configuration.port != 0 else { throw .invalidConfiguration("broker port 0") }
        guard configuration.cleanSession || !configuration.clientID.isEmpty else {
            throw .invalidConfiguration("a persistent session (cleanSession false) needs a client id")
        }
        if let tls = configuration.tls {
            for (path, what) in [
                (tls.caFile, "CA file"), (tls.certificateFile, "certificate file"), (tls.keyFile, "key file"),
            ] {
                if let path, !FileManager.default.isReadableFile(atPath: path) {
                    throw .invalidConfiguration("TLS \(what) '\(path)' is not readable")
                }
            }
            guard (tls.certificateFile == nil) == (tls.keyFile == nil) else {
                throw .invalidConfiguration(
                    "a TLS client certificate needs its key file, and a key file its certificate")
            }
            guard tls.certificateFile == nil || tls.caFile != nil else {
                throw .invalidConfiguration("a TLS client certificate needs an explicit CA file")
            }
        }
    }

    private func applyConfiguration() throws(MQTTError) {
        let configuration = self.configuration
        try check(mosquitto_threaded_set(handle, true), "enabling threaded mode")
        let version = configuration.protocolVersion == .v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311
        try check(
            mosquitto_int_option(handle, MOSQ_OPT_PROTOCOL_VERSION, version),
            "selecting \(configuration.protocolVersion)")
        try check(
            mosquitto_int_option(handle, MOSQ_OPT_TCP_NODELAY, configuration.tcpNoDelay ? 1 : 0), "setting TCP_NODELAY")
        if configuration.username != nil || configuration.password != nil {
            try check(
                mosquitto_username_pw_set(handle, configuration.username, configuration.password),
                "setting the user name and password")
        }
        if let tls = configuration.tls {
            if let caFile = tls.caFile {
                try check(
                    mosquitto_tls_set(handle, caFile, nil, tls.certificateFile, tls.keyFile, nil),
                    "setting up TLS with CA file '\(caFile)'")
            } else {
                try check(
                    mosquitto_int_option(handle, MOSQ_OPT_TLS_USE_OS_CERTS, 1), "setting up TLS with the system's CAs")
            }
            // SSL_VERIFY_PEER; "tlsv1.2" means TLS 1.2 or newer.
            try check(mosquitto_tls_opts_set(handle, 1, "tlsv1.2", nil), "requiring TLS 1.2 or newer")
            try check(mosquitto_tls_insecure_set(handle, tls.insecure), "setting the TLS host name check")
        }
        if let will = configuration.will {
            let properties =
                configuration.protocolVersion == .v5 && will.hasProperties
                ? try MosquittoProperties(publishing: will) : nil
            let code = will.payload.withUnsafeBytes { bytes in
                mosquitto_will_set_v5(
                    handle, will.topic, Int32(clamping: bytes.count), bytes.baseAddress, Int32(will.qos.rawValue),
                    will.retain, properties?.list)
            }
            try check(code, "setting the will on '\(will.topic)'")
            _ = properties?.release()  // libmosquitto owns the list once will_set succeeded
        }
    }

    // MARK: Starting and stopping

    func start() throws(MQTTError) {
        let problem: MQTTError? = locked {
            if stopRequested { return .closed }
            guard phase == .idle else { return .invalidArgument("start() was called twice") }
            phase = .connecting
            return nil
        }
        if let problem { throw problem }
        Thread { self.runNetworkLoop() }.start()
    }

    /// Asks for a clean end: DISCONNECT (so the broker drops the will), then the network thread
    /// ends. Returns at once; `stopped()` waits for the end.
    func requestStop() {
        let phase: Phase = locked {
            stopRequested = true
            let phase = self.phase
            if phase == .idle {
                self.phase = .stopped
                closing = true
            }
            lock.broadcast()  // ends a backoff wait
            return phase
        }
        switch phase {
        case .idle:
            eventSink.finish()
        case .connected:
            // Queues DISCONNECT and wakes the network thread to write it. Only once connected:
            // during an attempt the network thread may be inside mosquitto_connect_bind_async,
            // which is not safe to overlap; it notices the request when it next comes round (the
            // wake-up below, or within a second) and sends DISCONNECT itself.
            _ = try? withHandle { handle throws(MQTTError) in mosquitto_disconnect(handle) }
            wakeNetworkThread()
        case .connecting:
            wakeNetworkThread()
        case .disconnected, .stopped:
            break
        }
    }

    /// Returns once the network thread has ended and the handle is destroyed.
    func stopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done: Bool = locked {
                if phase == .stopped { return true }
                stopWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    var isConnected: Bool { locked { phase == .connected } }

    var statistics: MQTTStatistics {
        locked {
            var statistics = counts
            statistics.unacknowledged = unacknowledged.count
            return statistics
        }
    }

    /// `duration` in whole milliseconds for a libmosquitto timeout, at least 1, at most `limit`.
    private static func milliseconds(_ duration: Duration, atMost limit: Int32) -> Int32 {
        let (seconds, attoseconds) = duration.components
        let total = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: max(1, min(Int64(limit), total)))
    }

    /// Called with `lock` held, each time the network thread comes round.
    private func turned() {
        counts.loopTurns &+= 1
    }

    #if DEBUG
    /// Test-only (the watchdog test): makes the network thread block for `duration` at its next
    /// turn of the socket loop, as a thread stuck in a system call would. The next packet queued
    /// (or the loop's own timeout) brings that turn.
    func stallNetworkThread(for duration: Duration) {
        locked { stallRequested = duration }
    }

    private func stallIfRequested() {
        guard
            let duration = locked({ () -> Duration? in
                defer { stallRequested = nil }
                return stallRequested
            })
        else { return }
        logger.warning("test hook: the MQTT network thread stops turning", metadata: ["for": "\(duration)"])
        Thread.sleep(forTimeInterval: duration.seconds)
    }
    #endif

    // MARK: The network thread

    private func runNetworkLoop() {
        // "mqtt <client id>", cut to the 15 bytes Linux allows, so the thread is recognisable in
        // ps, gdb and /proc. (Thread.current.name would race with Thread.start() and
        // pthread_setname_np is not visible from Swift, so the thread names itself via /proc.)
        var name = "mqtt \(configuration.clientID)"
        while name.utf8.count > 15 { name.removeLast() }
        try? name.write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
        logger.debug("MQTT network thread started")
        var failures = -1
        while beginAttempt() {
            let error = connectAndServe()
            failures = configuration.reconnect.failures(after: failures, connectedFor: endAttempt(error: error))
            let delay = configuration.reconnect.delay(afterFailures: failures)
            guard waitBeforeReconnecting(delay) else { break }
        }
        finish()
    }

    /// Starts a connection attempt unless a stop was requested.
    private func beginAttempt() -> Bool {
        locked {
            guard !stopRequested else { return false }
            phase = .connecting
            attempt = Attempt()
            return true
        }
    }

    /// Opens a connection and runs the socket loop until it ends. Returns why it ended, or nil if
    /// it ended because a stop was requested.
    private func connectAndServe() -> MQTTError? {
        let endpoint = configuration.endpoint
        let host: String
        switch addressToConnect() {
        case nil: return nil
        case .failure(let error): return error
        case .success(let address): host = address
        }
        // Non-blocking (but see addressToConnect for a name with TLS); TCP, TLS and CONNECT
        // proceed in the socket loop. A connect that never completes is cut off by
        // libmosquitto's keepalive check.
        let code = mosquitto_connect_bind_async(
            handle, host, Int32(configuration.port), Int32(configuration.keepAlive.components.seconds), nil)
        if code != MOSQ_ERR_SUCCESS.rawValue {
            let error = MQTTError(code: code, operation: "connecting to \(endpoint)")
            return locked { stopRequested } ? nil : error
        }
        // The connect set libmosquitto's keep-alive clock (next PINGREQ due a keepalive from now).
        var keepAlive = KeepAliveClock(keepAlive: configuration.keepAlive)
        var stopDeadline: ContinuousClock.Instant?
        while true {
            // While connected, wait until the next keep-alive check is due (see KeepAliveClock);
            // a caller that queues something wakes us through `wakeDescriptor`; so an idle
            // connection wakes only for the keep-alive (and `maximumLoopWait`, when a watchdog
            // asks for it). During an attempt or a stop, look again every second.
            let idle: Int32 =
                configuration.maximumLoopWait.map { Self.milliseconds($0, atMost: 3_600_000) } ?? 3_600_000
            let (connected, handshaking) = locked {
                turned()
                return (phase == .connected && !stopRequested, phase == .connecting && configuration.tls != nil)
            }
            #if DEBUG
            stallIfRequested()
            #endif
            let timeout = keepAlive.wait(atMost: connected ? idle : min(idle, 1000))
            let code = turnSocketLoop(timeout: timeout, handshaking: handshaking, keepAlive: &keepAlive)
            acknowledgeReadData()
            let error =
                code == MOSQ_ERR_SUCCESS.rawValue
                ? nil : MQTTError(code: code, operation: "the connection to \(endpoint)")
            guard locked({ stopRequested }) else {
                if let error { return error }
                continue
            }
            if error != nil { return nil }
            if let deadline = stopDeadline {
                if ContinuousClock.now >= deadline {
                    logger.warning("MQTT DISCONNECT did not go out in time; closing the connection")
                    return nil
                }
            } else {
                // requestStop() sent one already if the connection was up; a second DISCONNECT is
                // harmless (the socket closes after the first).
                _ = mosquitto_disconnect(handle)
                stopDeadline = .now + .seconds(2)
            }
        }
    }

    /// The host to hand libmosquitto for this attempt: a name is first looked up on a thread of
    /// its own (`BrokerLookup`) while this thread keeps turning (for the watchdog) and watching
    /// for a stop; nil when a stop came first.
    /// - Without TLS libmosquitto gets one of the addresses found, so it does not look the name
    ///   up again in this thread; each attempt takes the next one (a non-blocking connect tries
    ///   only one address, so this is how an address that does not answer is left behind).
    /// - With TLS it gets the name, because it checks the broker's certificate against the name
    ///   it connected to: its own lookup, in this thread, then follows one that has just been
    ///   answered. A name server that answers one query and drops the next (an A record but no
    ///   AAAA, say) can still hold this thread for the resolver's timeouts there.
    private func addressToConnect() -> Result<String, MQTTError>? {
        let name = configuration.host
        guard !BrokerLookup.literal(name) else { return .success(name) }
        let lookup = BrokerLookup.start(name)
        while true {
            guard
                !locked({ () -> Bool in
                    turned()
                    return stopRequested
                })
            else { return nil }
            guard let outcome = lookup.wait(atMost: .milliseconds(100)) else { continue }
            switch outcome {
            case .addresses(let addresses):
                guard configuration.tls == nil else { return .success(name) }
                let address = addresses[nextAddress % addresses.count]
                nextAddress &+= 1
                return .success(address)
            case .failed(let reason):
                return .failure(
                    .library(
                        operation: "connecting to \(configuration.endpoint)", code: MOSQ_ERR_EAI.rawValue,
                        message: "the host name could not be resolved (\(reason))"))
            }
        }
    }

    /// One turn of the socket loop: what `mosquitto_loop(handle, timeout, 1)` did (lib/loop.c,
    /// 2.0.11), with poll(2) instead of select(2) and our `wakeDescriptor` instead of
    /// libmosquitto's socket pair. Waits up to `timeout` ms for the socket to be readable (or
    /// writable, if libmosquitto has something to write) or for a wake-up; reads, writes, then
    /// runs libmosquitto's keep-alive check. Returns a `MOSQ_ERR_*` code: success, or what ended
    /// the connection (libmosquitto has closed the socket and called on_disconnect by then), or
    /// `MOSQ_ERR_NO_CONN` if there was no socket to begin with.
    ///
    /// `handshaking`: a TLS connection attempt. While its handshake is under way, libmosquitto
    /// asks for "writable" when OpenSSL wants to write, but `mosquitto_loop_write` does nothing
    /// until the handshake is done; `mosquitto_loop` then ran the handshake step instead, which
    /// `mosquitto_loop_read` does too (it starts with it while the handshake is pending, and
    /// otherwise reads what is there, or nothing).
    private func turnSocketLoop(timeout: Int32, handshaking: Bool, keepAlive: inout KeepAliveClock) -> Int32 {
        let socket = mosquitto_socket(handle)
        guard socket >= 0 else { return MOSQ_ERR_NO_CONN.rawValue }
        // mosquitto_want_write reads libmosquitto's queue without its mutex: a caller may be
        // queueing at this moment. A stale "no" is harmless, as the caller wakes us afterwards.
        let wantWrite = mosquitto_want_write(handle)
        var descriptors = [
            pollfd(fd: socket, events: Int16(POLLIN) | (wantWrite ? Int16(POLLOUT) : 0), revents: 0),
            pollfd(fd: wakeDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
        if ready < 0 {
            // As mosquitto_loop: a signal is no error; anything else is reported from errno.
            return errno == EINTR ? MOSQ_ERR_SUCCESS.rawValue : MOSQ_ERR_ERRNO.rawValue
        }
        let events = descriptors[0].revents
        var write = events & Int16(POLLOUT) != 0
        if descriptors[1].revents != 0 {
            drainWakeUps()
            // A caller queued something (or asked for a stop). Try to write at once, as
            // mosquitto_loop did after a wake-up: the socket is nearly always writable, and if
            // not, the write stops at EAGAIN and the next turn waits for POLLOUT.
            write = write || mosquitto_want_write(handle)
        }
        var didRead = false
        // Errors and hang-ups (always reported by poll) go through a read, which returns what
        // ended the connection, as select(2) reported them as "readable" to mosquitto_loop.
        if events & Int16(POLLIN | POLLERR | POLLHUP) != 0 {
            didRead = true
            let code = mosquitto_loop_read(handle, 1)
            if code != MOSQ_ERR_SUCCESS.rawValue || mosquitto_socket(handle) < 0 { return code }
        }
        if write {
            if handshaking && !didRead {
                let code = mosquitto_loop_read(handle, 1)
                if code != MOSQ_ERR_SUCCESS.rawValue || mosquitto_socket(handle) < 0 { return code }
            }
            let code = mosquitto_loop_write(handle, 1)
            keepAlive.wrote()
            if code != MOSQ_ERR_SUCCESS.rawValue || mosquitto_socket(handle) < 0 { return code }
        }
        let due = keepAlive.isDue()
        let code = mosquitto_loop_misc(handle)
        if due { keepAlive.checked() }
        return code
    }

    /// When libmosquitto's keep-alive check (`mosquitto_loop_misc`) has something to do: send a
    /// PINGREQ once nothing was written for a keepalive, or give up on a connection whose
    /// PINGRESP (or, during an attempt, CONNACK) has not come a keepalive later.
    /// `mosquitto_loop` shortened its wait to that moment itself; libmosquitto does not expose
    /// it (`next_msg_out`), so we keep a conservative copy: libmosquitto sets it to a keepalive
    /// after each complete packet written (whole seconds of CLOCK_MONOTONIC, rounded down),
    /// after connecting, and after the check sends a PINGREQ. We restart the copy's clock
    /// *after* each of those calls, so our deadline is never before libmosquitto's (never a
    /// busy loop) and at most a round-down second plus one call later. The check also runs
    /// after every other turn (as before), and the wait is capped at half a keepalive as a
    /// safety net. Measured on `SuspendingClock`, which is CLOCK_MONOTONIC on Linux, as
    /// libmosquitto's (`ContinuousClock` also counts time suspended).
    private struct KeepAliveClock {
        /// nil: keepalive 0 (off).
        let interval: Duration?
        private var lastWrite = SuspendingClock.now

        init(keepAlive: Duration) {
            interval = keepAlive > .zero ? keepAlive : nil
        }

        /// `limit` ms, shortened to when the next keep-alive check is due; 0 if it is overdue.
        func wait(atMost limit: Int32) -> Int32 {
            guard let interval else { return limit }
            let untilDue = lastWrite + interval - .now
            if untilDue <= .zero { return 0 }
            return MosquittoSession.milliseconds(min(untilDue, interval / 2), atMost: limit)
        }

        /// Called right after `mosquitto_loop_write`, which may have written a packet.
        mutating func wrote() {
            lastWrite = .now
        }

        /// Whether the check about to run will act. Asked just before it: a moment at or past
        /// libmosquitto's whole-second deadline is past it on its clock too.
        func isDue() -> Bool {
            guard let interval else { return false }
            return SuspendingClock.now >= lastWrite + interval
        }

        /// Called right after a check that was due: it queued a PINGREQ and restarted
        /// libmosquitto's clock (or closed the connection).
        mutating func checked() {
            lastWrite = .now
        }
    }

    /// Wakes the network thread if it is waiting in poll(2). Called after queueing a packet (or
    /// asking for a stop).
    private func wakeNetworkThread() {
        var one: UInt64 = 1
        // Fails only if the counter would overflow (EAGAIN), and then it is set anyway.
        _ = write(wakeDescriptor, &one, MemoryLayout<UInt64>.size)
    }

    /// Resets the wake-up counter (network thread, after poll(2) reported it).
    private func drainWakeUps() {
        var count: UInt64 = 0
        _ = read(wakeDescriptor, &count, MemoryLayout<UInt64>.size)
    }

    /// Sends the TCP acknowledgement of what the socket loop just read at once, instead of
    /// letting the kernel delay it (up to 40 ms) in the hope of piggybacking it on a reply.
    ///
    /// Brokers do not set TCP_NODELAY on their side by default (mosquitto: `set_tcp_nodelay
    /// false`), so Nagle's algorithm on the broker holds a small message to us (a command) while
    /// its previous one (say the PUBACK of our last state) is unacknowledged; with a delayed ACK
    /// here, a command waited up to 40 ms. TCP_QUICKACK is not sticky (writing can put the
    /// socket back in delayed-ACK mode), so it is set after every turn of the loop; setting it
    /// also sends an ACK that is pending. One cheap syscall per turn.
    private func acknowledgeReadData() {
        let socket = mosquitto_socket(handle)
        guard socket >= 0 else { return }
        var on: Int32 = 1
        _ = setsockopt(socket, Int32(IPPROTO_TCP), TCP_QUICKACK, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Closes the books on an attempt, reporting how it ended unless a callback already did.
    /// Returns how long the connection was up, if it got that far.
    private func endAttempt(error: MQTTError?) -> Duration? {
        let (wasConnected, stopping, attempt, abandoned) = locked {
            let wasConnected = phase == .connected
            phase = .disconnected
            unacknowledged = unacknowledged.filter { !$0.value }
            return (wasConnected, stopRequested, self.attempt, takeWaiters(where: \.kind.diesWithConnection))
        }
        fail(abandoned, with: stopping ? .closed : .connectionLost)
        if wasConnected {
            // No on_disconnect callback came (e.g. the stop deadline cut the connection).
            report(.disconnected(stopping ? .requested : .connectionLost(error ?? .connectionLost)))
        } else if attempt.connectedAt == nil, !attempt.refused, !stopping, let error {
            let explained = error.explained(by: attempt.loggedErrors)
            logger.warning("MQTT connection attempt failed", metadata: ["error": "\(explained)"])
            report(.connectionFailed(explained))
        }
        return attempt.connectedAt.map { .now - $0 }
    }

    /// Sleeps for `delay` unless a stop is requested meanwhile. Returns false on a stop request.
    private func waitBeforeReconnecting(_ delay: Duration) -> Bool {
        logger.debug("MQTT reconnecting after a delay", metadata: ["delay": "\(delay)"])
        // Measured on the monotonic clock; NSCondition only takes wall-clock dates, so each wait
        // is recomputed from what remains.
        let deadline = ContinuousClock.now + delay
        lock.lock()
        defer { lock.unlock() }
        while !stopRequested {
            turned()
            var remaining = deadline - .now
            if remaining <= .zero { break }
            if let most = configuration.maximumLoopWait { remaining = min(remaining, most) }
            _ = lock.wait(until: Date(timeIntervalSinceNow: remaining.seconds))
        }
        return !stopRequested
    }

    /// Last act of the network thread: destroy the handle, fail what is still waiting, finish
    /// the event stream, release `stopped()`.
    private func finish() {
        lock.lock()
        closing = true
        while callsInProgress > 0 { lock.wait() }
        let abandoned = takeWaiters { _ in true }
        lock.unlock()

        mosquitto_destroy(handle)

        let stopWaiters: [CheckedContinuation<Void, Never>] = locked {
            handleDestroyed = true
            phase = .stopped
            earlyCompletions.removeAll()
            defer { self.stopWaiters.removeAll() }
            return self.stopWaiters
        }
        fail(abandoned, with: .closed)
        eventSink.finish()
        logger.debug("MQTT network thread ended")
        for waiter in stopWaiters { waiter.resume() }
    }

    // MARK: Requests

    /// Queues `message` for sending; returns libmosquitto's message id.
    func enqueue(_ message: MQTTMessage) throws(MQTTError) -> Int32 {
        let properties =
            configuration.protocolVersion == .v5 && message.hasProperties
            ? try MosquittoProperties(publishing: message) : nil
        locked { publishesUnderWay += 1 }
        let mid: Int32
        do {
            mid = try withConnectedHandle { handle throws(MQTTError) in
                var mid: Int32 = 0
                let code = message.payload.withUnsafeBytes { bytes in
                    mosquitto_publish_v5(
                        handle, &mid, message.topic, Int32(clamping: bytes.count), bytes.baseAddress,
                        Int32(message.qos.rawValue), message.retain, properties?.list)
                }
                try check(code, "publishing to '\(message.topic)'")
                wakeNetworkThread()
                return mid
            }
        } catch {
            locked { publishDone(nil, qos0: false) }
            throw error
        }
        locked { publishDone(mid, qos0: message.qos == .atMostOnce) }
        return mid
    }

    /// A caller's `mosquitto_publish_v5` returned (`mid` nil: it failed). Called with `lock` held.
    private func publishDone(_ mid: Int32?, qos0: Bool) {
        publishesUnderWay -= 1
        if let mid {
            counts.published += 1
            if completedEarly.remove(mid) == nil { unacknowledged[mid] = qos0 }
        }
        if publishesUnderWay == 0 { completedEarly.removeAll() }
    }

    /// on_publish: the message was written (QoS 0) or acknowledged (QoS 1, 2).
    private func publishCompleted(_ mid: Int32) {
        locked {
            if unacknowledged.removeValue(forKey: mid) == nil, publishesUnderWay > 0 { completedEarly.insert(mid) }
        }
    }

    /// Queues `message` and waits for the broker's acknowledgement (QoS 1/2) or until it was
    /// written to the socket (QoS 0).
    func publish(_ message: MQTTMessage, timeout: Duration) async throws {
        let mid = try registering { () throws(MQTTError) in try enqueue(message) }
        let completion = try await completion(
            of: mid, kind: .publish(message.qos), timeout: timeout,
            what: "the broker to acknowledge the publish to '\(message.topic)'")
        if case .published(let code) = completion, code >= 0x80 {
            throw MQTTError.publishRefused(
                topic: message.topic, reason: MQTTReasonCode(rawValue: UInt8(clamping: code)))
        }
    }

    func subscribe(
        _ filters: [String], qos: MQTTQoS, options: MQTTSubscribeOptions, timeout: Duration
    ) async throws -> [MQTTQoS] {
        guard !filters.isEmpty else { throw MQTTError.invalidArgument("no topic filter to subscribe to") }
        guard options.isEmpty || configuration.protocolVersion == .v5 else {
            throw MQTTError.invalidArgument("subscribe options need MQTT 5")
        }
        let list = filters.map { "'\($0)'" }.joined(separator: ", ")
        let mid = try registering { () throws(MQTTError) in
            try withConnectedHandle { handle throws(MQTTError) in
                try Self.withCStrings(filters) { array throws(MQTTError) in
                    var mid: Int32 = 0
                    let code = mosquitto_subscribe_multiple(
                        handle, &mid, Int32(filters.count), array, Int32(qos.rawValue), Int32(options.rawValue), nil)
                    try check(code, "subscribing to \(list)")
                    wakeNetworkThread()
                    return mid
                }
            }
        }
        let requested = filters.map { Subscription(filter: $0, qos: qos, options: options) }
        let completion = try await completion(
            of: mid, kind: .subscribe(requested), timeout: timeout,
            what: "the broker to acknowledge the subscription to \(list)")
        guard case .subscribed(let codes) = completion else { throw MQTTError.connectionLost }

        var granted: [MQTTQoS] = []
        var refused: [String] = []
        var firstRefusal = MQTTReasonCode.unspecifiedError
        for (index, filter) in filters.enumerated() {
            let code = index < codes.count ? codes[index] : 0x80
            if let qos = MQTTQoS(rawValue: Int(code)) {
                granted.append(qos)
            } else {
                if refused.isEmpty { firstRefusal = MQTTReasonCode(rawValue: UInt8(clamping: code)) }
                refused.append(filter)
            }
        }
        if !refused.isEmpty {
            throw MQTTError.subscriptionRefused(filters: refused, reason: firstRefusal)
        }
        return granted
    }

    func unsubscribe(_ filters: [String], timeout: Duration) async throws {
        guard !filters.isEmpty else { throw MQTTError.invalidArgument("no topic filter to unsubscribe from") }
        locked { subscriptions.removeAll { filters.contains($0.filter) } }
        let list = filters.map { "'\($0)'" }.joined(separator: ", ")
        let mid = try registering { () throws(MQTTError) in
            try withConnectedHandle { handle throws(MQTTError) in
                try Self.withCStrings(filters) { array throws(MQTTError) in
                    var mid: Int32 = 0
                    try check(
                        mosquitto_unsubscribe_multiple(handle, &mid, Int32(filters.count), array, nil),
                        "unsubscribing from \(list)")
                    wakeNetworkThread()
                    return mid
                }
            }
        }
        _ = try await completion(
            of: mid, kind: .unsubscribe, timeout: timeout,
            what: "the broker to acknowledge the unsubscription from \(list)")
    }

    // MARK: Waiting for answers

    /// Runs `enqueue` (which hands a packet to libmosquitto and returns its message id) marked as
    /// registering, so an answer that beats the id back to us is kept for `completion(of:)`.
    private func registering(_ enqueue: () throws(MQTTError) -> Int32) throws(MQTTError) -> Int32 {
        locked { registering += 1 }
        do {
            return try enqueue()
        } catch {
            locked { doneRegistering() }
            throw error
        }
    }

    /// Called with `lock` held.
    private func doneRegistering() {
        registering -= 1
        if registering == 0 { earlyCompletions.removeAll() }
    }

    /// Waits for libmosquitto to report the answer to message `mid`. Must follow a successful
    /// `registering(_:)`. Throws `MQTTError.timeout` after `timeout`, `.connectionLost` if the
    /// request died with the connection, `.closed` on disconnect, `CancellationError` if the task
    /// is cancelled.
    private func completion(of mid: Int32, kind: WaiterKind, timeout: Duration, what: String) async throws -> Completion
    {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Completion, any Error>) in
                let immediate: Result<Completion, any Error>? = locked {
                    defer { doneRegistering() }
                    if let early = earlyCompletions.removeValue(forKey: mid) {
                        remember(kind, early)
                        return .success(early)
                    }
                    if closing { return .failure(MQTTError.closed) }
                    // The connection the request went out on ended before we got here, and took
                    // the request with it (endAttempt found no waiter to fail).
                    if kind.diesWithConnection && phase != .connected { return .failure(MQTTError.connectionLost) }
                    // Checked under the lock: a cancellation handler that already ran found no
                    // waiter, but it ran after isCancelled became true.
                    if Task.isCancelled { return .failure(CancellationError()) }
                    let timer = Task { [weak self] in
                        try? await Task.sleep(for: timeout)
                        guard !Task.isCancelled else { return }
                        self?.fail(mid, with: MQTTError.timeout(what))
                    }
                    waiters[mid] = Waiter(kind: kind, continuation: continuation, timer: timer)
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            fail(mid, with: CancellationError())
        }
    }

    /// Hands a broker answer to whoever waits for it. Called from libmosquitto callbacks.
    func complete(_ mid: Int32, _ completion: Completion) {
        let waiter: Waiter? = locked {
            if let waiter = waiters.removeValue(forKey: mid) {
                remember(waiter.kind, completion)
                return waiter
            }
            if registering > 0 { earlyCompletions[mid] = completion }
            return nil
        }
        if let waiter {
            waiter.timer.cancel()
            waiter.continuation.resume(returning: completion)
        } else if case .subscribed(let codes) = completion, codes.contains(where: { $0 >= 0x80 }) {
            // A re-subscription after reconnecting (nobody waits for those).
            logger.warning("MQTT broker refused a re-subscription", metadata: ["codes": "\(codes)"])
        }
    }

    private func fail(_ mid: Int32, with error: any Error) {
        guard let waiter = locked({ waiters.removeValue(forKey: mid) }) else { return }
        waiter.timer.cancel()
        waiter.continuation.resume(throwing: error)
    }

    private func fail(_ abandoned: [Waiter], with error: MQTTError) {
        for waiter in abandoned {
            waiter.timer.cancel()
            waiter.continuation.resume(throwing: error)
        }
    }

    /// Updates the remembered subscriptions from a SUBACK: granted filters are added (or replace
    /// an earlier entry), refused ones forgotten. Called with `lock` held, from the callback that
    /// reported the SUBACK, so a reconnect cannot slip in between.
    private func remember(_ kind: WaiterKind, _ completion: Completion) {
        guard case .subscribe(let requested) = kind, case .subscribed(let codes) = completion else { return }
        for (subscription, code) in zip(requested, codes) {
            subscriptions.removeAll { $0.filter == subscription.filter }
            if (0..<0x80).contains(code) { subscriptions.append(subscription) }
        }
    }

    /// Removes and returns the waiters matching `predicate`. Called with `lock` held.
    private func takeWaiters(where predicate: (Waiter) -> Bool) -> [Waiter] {
        let matching = waiters.filter { predicate($0.value) }
        for mid in matching.keys { waiters[mid] = nil }
        return Array(matching.values)
    }

    // MARK: Callbacks (network thread, libmosquitto's callback mutex held)

    private func installCallbacks() {
        mosquitto_connect_v5_callback_set(handle) { _, userdata, code, flags, _ in
            MosquittoSession.from(userdata)?.connackReceived(code: code, flags: flags)
        }
        mosquitto_disconnect_v5_callback_set(handle) { _, userdata, code, _ in
            MosquittoSession.from(userdata)?.connectionEnded(code: code)
        }
        mosquitto_publish_v5_callback_set(handle) { _, userdata, mid, reasonCode, _ in
            let session = MosquittoSession.from(userdata)
            session?.publishCompleted(mid)
            session?.complete(mid, .published(reasonCode: reasonCode))
        }
        mosquitto_subscribe_v5_callback_set(handle) { _, userdata, mid, count, granted, _ in
            let codes = granted.map { Array(UnsafeBufferPointer(start: $0, count: Int(max(count, 0)))) } ?? []
            MosquittoSession.from(userdata)?.complete(mid, .subscribed(codes: codes))
        }
        mosquitto_unsubscribe_v5_callback_set(handle) { _, userdata, mid, _ in
            MosquittoSession.from(userdata)?.complete(mid, .unsubscribed)
        }
        mosquitto_message_v5_callback_set(handle) { _, userdata, message, properties in
            guard let message else { return }
            MosquittoSession.from(userdata)?.messageReceived(message.pointee, properties: properties)
        }
        mosquitto_log_callback_set(handle) { _, userdata, level, text in
            guard let text else { return }
            MosquittoSession.from(userdata)?.libraryLogged(level: level, String(cString: text))
        }
    }

    private static func from(_ userdata: UnsafeMutableRawPointer?) -> MosquittoSession? {
        // The user data is this session, set once its initialisation is complete. Callbacks run
        // on the network thread, which holds the session, or inside calls made through
        // `withHandle`, whose caller holds it; so the pointer is valid whenever it is used.
        userdata.map { Unmanaged<MosquittoSession>.fromOpaque($0).takeUnretainedValue() }
    }

    private func connackReceived(code: Int32, flags: Int32) {
        guard code == 0 else {
            locked { attempt.refused = true }
            let refusal = MQTTConnectionRefusal(connackCode: code, protocolVersion: configuration.protocolVersion)
            logger.warning("MQTT broker refused the connection", metadata: ["reason": "\(refusal)", "code": "\(code)"])
            report(.connectionRefused(refusal))
            return
        }
        let sessionPresent = flags & 1 != 0
        let resubscribe: [Subscription] = locked {
            phase = .connected
            counts.connections += 1
            attempt.connectedAt = .now
            return sessionPresent ? [] : subscriptions
        }
        // Re-issued before `.connected` is reported, so no message published after the caller
        // sees `.connected` can slip past a remembered subscription.
        for subscription in resubscribe {
            let code = mosquitto_subscribe_v5(
                handle, nil, subscription.filter, Int32(subscription.qos.rawValue),
                Int32(subscription.options.rawValue), nil)
            if code != MOSQ_ERR_SUCCESS.rawValue {
                let error = MQTTError(code: code, operation: "re-subscribing to '\(subscription.filter)'")
                logger.warning("MQTT re-subscription failed", metadata: ["error": "\(error)"])
            }
        }
        logger.info(
            "MQTT connected",
            metadata: ["session_present": "\(sessionPresent)", "resubscribed": "\(resubscribe.count)"])
        report(.connected(sessionPresent: sessionPresent))
    }

    /// on_disconnect: `code` is 0 after our DISCONNECT, an MQTT 5 reason code (≥ 0x80) if the
    /// broker sent DISCONNECT, otherwise the `MOSQ_ERR_*` that ended the connection. libmosquitto
    /// also calls it for attempts that never got a CONNACK; those are reported by `endAttempt`.
    private func connectionEnded(code: Int32) {
        let (wasConnected, stopping, abandoned) = locked {
            let wasConnected = phase == .connected
            if wasConnected { phase = .disconnected }
            unacknowledged = unacknowledged.filter { !$0.value }
            return (wasConnected, stopRequested, takeWaiters(where: \.kind.diesWithConnection))
        }
        fail(abandoned, with: stopping ? .closed : .connectionLost)
        guard wasConnected else { return }
        let reason: MQTTDisconnectReason
        if stopping {
            reason = .requested
        } else if code == 0 || code >= 0x80 {
            reason = .disconnectedByBroker(MQTTReasonCode(rawValue: UInt8(clamping: code)))
        } else {
            reason = .connectionLost(MQTTError(code: code, operation: "the connection to \(configuration.endpoint)"))
        }
        if reason.isUnexpected {
            logger.warning("MQTT connection ended", metadata: ["reason": "\(reason)"])
        } else {
            logger.info("MQTT disconnected")
        }
        report(.disconnected(reason))
    }

    /// Copies the message out of libmosquitto's buffers, which are freed when the callback returns.
    private func messageReceived(_ received: mosquitto_message, properties: OpaquePointer?) {
        let topic = received.topic.map { String(cString: $0) } ?? ""
        let payload: [UInt8] =
            if let bytes = received.payload, received.payloadlen > 0 {
                Array(UnsafeRawBufferPointer(start: bytes, count: Int(received.payloadlen)))
            } else {
                []
            }
        var message = MQTTMessage(
            topic: topic, payload: payload, qos: MQTTQoS(rawValue: Int(received.qos)) ?? .atMostOnce,
            retain: received.retain)
        locked { counts.received += 1 }
        MosquittoProperties.read(properties, into: &message)
        report(.message(message))
    }

    private func libraryLogged(level: Int32, _ text: String) {
        switch level {
        case MOSQ_LOG_ERR:
            locked {
                if attempt.loggedErrors.count < 4 { attempt.loggedErrors.append(text) }
            }
            logger.debug("libmosquitto", metadata: ["message": "\(text)"])
        case MOSQ_LOG_WARNING:
            logger.warning("libmosquitto", metadata: ["message": "\(text)"])
        case MOSQ_LOG_NOTICE, MOSQ_LOG_INFO:
            logger.debug("libmosquitto", metadata: ["message": "\(text)"])
        default:
            logger.trace("libmosquitto", metadata: ["message": "\(text)"])
        }
    }

    private func report(_ event: MQTTEvent) {
        eventSink.yield(event)
    }

    // MARK: Helpers

    private func locked<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Runs `body` with the handle, which cannot be destroyed meanwhile. Throws `.closed` once the
    /// session is shutting down.
    private func withHandle<R>(_ body: (OpaquePointer) throws(MQTTError) -> R) throws(MQTTError) -> R {
        try enterCall(requireConnection: false)
        defer { leaveCall() }
        return try body(handle)
    }

    /// `withHandle`, but throws `.notConnected` unless the broker has accepted the connection.
    private func withConnectedHandle<R>(_ body: (OpaquePointer) throws(MQTTError) -> R) throws(MQTTError) -> R {
        try enterCall(requireConnection: true)
        defer { leaveCall() }
        return try body(handle)
    }

    private func enterCall(requireConnection: Bool) throws(MQTTError) {
        try locked { () throws(MQTTError) in
            if closing || stopRequested && requireConnection { throw .closed }
            if requireConnection && phase != .connected { throw .notConnected }
            callsInProgress += 1
        }
    }

    private func leaveCall() {
        locked {
            callsInProgress -= 1
            if callsInProgress == 0 { lock.broadcast() }
        }
    }

    private static func withCStrings<R>(
        _ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) throws(MQTTError) -> R
    ) throws(MQTTError) -> R {
        let pointers = strings.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        return try pointers.withUnsafeBufferPointer { buffer throws(MQTTError) in
            // Never empty: callers reject an empty list first.
            try body(buffer.baseAddress!)
        }
    }
}
