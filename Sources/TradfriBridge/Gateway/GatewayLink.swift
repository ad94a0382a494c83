import CoAP
import Foundation
import HubModel
import Logging
import TradfriModel

/// The bridge's one DTLS session with the gateway, kept alive for years.
///
/// Contract:
/// - Connects with exponential backoff and jitter; reports `.connected` / `.disconnected`. While
///   the gateway refuses the identity it tries only every `unknownIdentityRetryDelay` (and does
///   not log each attempt: the owner says what to do once), until `retryNow()`.
/// - While connected, sends a CoAP ping when nothing was heard for `keepAlive`. The session is
///   declared dead, and the whole DTLS context torn down and connected afresh, when the gateway
///   sends nothing at all for `silenceLimit` while a request or ping of ours waits (libcoap
///   retransmits meanwhile, at the learnt retransmission timeout: several tries are lost), after
///   `pingFailuresBeforeReset` unanswered pings, when the gateway announces a reboot, or when the
///   session fails. Observations do not survive that; the owner re-registers them on `.connected`.
/// - `run(_:)` owns the connection loop; cancelling its task stops it at once, in any state.
/// - Runs one request at a time (the gateway drops requests sent in quick succession, and one
///   outstanding request is the documented safe value); commands go before background reads.
///   A lost datagram costs its exchange one retransmission, after the retransmission timeout
///   learnt from the gateway's answers (`RetransmissionTimeout`: a fraction of a second on a
///   LAN) instead of RFC 7252's fixed 2–3 s. Requests fail at once with `.sessionClosed` while
///   disconnected.
@CoAPActor
public final class GatewayLink {
    public struct Settings: Sendable {
        public var keepAlive: Duration = .seconds(30)
        public var pingTimeout: Duration = .seconds(5)
        public var pingFailuresBeforeReset = 1
        /// Nothing at all from the gateway for this long while something of ours waits: the
        /// session is dead (see `CoAPClient.Configuration.silenceLimit`).
        public var silenceLimit: Duration = .seconds(6)
        public var requestTimeout: Duration = .seconds(10)
        /// Requests in a row that time out although the session is alive (pings answered, our
        /// datagrams acknowledged): the gateway keeps a half-dead session, and it is replaced.
        public var requestTimeoutsBeforeReset = 2
        public var handshakeTimeout: Duration = .seconds(10)
        public var reconnectInitialDelay: Duration = .seconds(1)
        public var reconnectMaxDelay: Duration = .seconds(60)
        /// Between attempts while the gateway refuses the identity (`unknownIdentity`): that
        /// needs a person (pairing again), so the gateway is asked rarely; `retryNow()` (new
        /// credentials) tries at once.
        public var unknownIdentityRetryDelay: Duration = .seconds(600)
        public init() {}
    }

    public enum Event: Sendable {
        case connected(host: String, port: UInt16)
        case connectFailed(CoAPError)
        case disconnected(CoAPError?)
        /// The session was ended because it stopped working without failing (see
        /// `Settings.requestTimeoutsBeforeReset`); `.disconnected` follows.
        case stalled(String)
    }

    public enum Priority: Sendable { case command, background }

    /// Where the gateway is; asked before every connection attempt (so a rediscovered address
    /// is used after the gateway moved).
    public typealias AddressResolver = @Sendable () async throws -> (host: String, port: UInt16)

    public let settings: Settings
    private var identity: String
    private var key: String
    private let resolve: AddressResolver
    private let logger = Logger(label: "gateway")
    private var onEvent: @CoAPActor (Event) -> Void = { _ in }

    private var client: CoAPClient?
    /// The client whose handshake is under way.
    private var attempt: CoAPClient?
    /// The keep-alive loop's wait for the next ping, and its timer (`checkSoon()` ends it early).
    private var keepAliveWake: CheckedContinuation<Void, Never>?
    private var keepAliveTimer: CoAPTimer?
    /// Work for each session (the owner's sync), run as a child task of the session.
    private var whileConnected: @Sendable @CoAPActor () async -> Void = {}
    private var sessionEnded: CheckedContinuation<Void, Never>?
    private var lastHeard = ContinuousClock.now
    /// When the gateway last answered or notified anything (nil before the first session).
    public private(set) var lastContact: Date?
    /// Sessions established since start (the first one, then one per reconnect).
    public private(set) var sessionsEstablished = 0
    private var stopping = false
    /// The wait before the next connection attempt, and its timer (`retryNow()` ends it early).
    private var retryWake: CheckedContinuation<Void, Never>?
    private var retryTimer: CoAPTimer?
    /// Where the last connection attempt went ("host:port").
    public private(set) var lastAddress: String?

    // One request at a time: a FIFO per priority of tasks waiting for their turn.
    private var busy = false
    private var waiting: [Priority: [CheckedContinuation<Void, Never>]] = [.command: [], .background: []]
    /// Command turns given in a row while background work waited (see `handOver`).
    private var commandStreak = 0
    /// Commands go first, but not forever: under a steady stream of commands that the gateway
    /// cannot keep up with (a lossy link), observing everything again after a reconnect would
    /// otherwise wait until the commands stop, and changes made at the gateway meanwhile would
    /// not reach MQTT (seen in the soak: 13.7 s after a gateway reboot).
    static let commandTurnsBeforeBackground = 3

    public init(identity: String, key: String, settings: Settings, resolve: @escaping AddressResolver) {
        self.identity = identity
        self.key = key
        self.settings = settings
        self.resolve = resolve
    }

    public var isConnected: Bool { client?.isConnected ?? false }

    /// Connects and keeps the session up (reconnecting with backoff) until the calling task is
    /// cancelled; then closes the session (close_notify to the gateway) and returns at once,
    /// whatever it was doing: a cancelled task ends a handshake in progress, the wait for the
    /// session's end and the pause before the next attempt. Events go to `handler` (on the
    /// libcoap actor). Run it as a child task of its owner (the bridge does).
    /// - Parameter whileConnected: started after each `.connected` as a child task of that
    ///   session; cancelled and awaited when the session ends (its requests fail then).
    public func run(
        _ handler: @escaping @CoAPActor (Event) -> Void,
        whileConnected: @escaping @Sendable @CoAPActor () async -> Void = {}
    ) async {
        onEvent = handler
        self.whileConnected = whileConnected
        stopping = false
        await withTaskCancellationHandler {
            await connectAndServe()
        } onCancel: {
            // The handler runs on the cancelling thread; the waits it ends belong to this actor.
            Task { @CoAPActor [weak self] in self?.stopNow() }
        }
        stopNow()
    }

    /// Stops reconnecting and ends what the connection loop waits on: the handshake of an
    /// attempt (without it, a silent gateway held a stopping bridge for the whole handshake
    /// timeout) and the current session. Idempotent.
    private func stopNow() {
        stopping = true
        attempt?.close()
        attempt = nil
        endSession(reason: nil)
        wakeRetry()
    }

    /// Uses `identity` and `key` from the next connection attempt on (the session up, if any, is
    /// kept: the gateway accepted the old ones).
    public func updateCredentials(identity: String, key: String) {
        self.identity = identity
        self.key = key
    }

    /// Ends the wait before the next connection attempt: it starts now.
    public func retryNow() {
        wakeRetry()
    }

    /// Drops the session now and reconnects (used when the gateway announces a reboot).
    public func reset(reason: String) {
        guard client != nil else { return }
        logger.notice("resetting the gateway session", metadata: ["reason": "\(reason)"])
        endSession(reason: .sessionClosed)
    }

    // MARK: Requests

    /// Sends one request when it is this request's turn. Throws `.sessionClosed` while offline.
    public func request(
        _ method: CoAPMethod, _ path: String, payload: [UInt8]? = nil, priority: Priority = .background
    ) async throws -> CoAPResponse {
        try await withTurn(priority) { client in
            try await client.request(method, path, payload: payload, timeout: settings.requestTimeout)
        }
    }

    /// Registers an observation; notifications go to `handler` synchronously.
    public func observe(
        _ path: String, handler: @escaping @CoAPActor (CoAPObservationEvent) -> Void
    ) async throws -> (token: [UInt8], initial: CoAPResponse) {
        try await withTurn(.background) { client in
            try await client.observe(path, timeout: settings.requestTimeout, handler: handler)
        }
    }

    public func cancelObservation(token: [UInt8]) {
        client?.cancelObservation(token: token)
    }

    /// Registers an observation again with its token: the answer (the current representation)
    /// goes to the observation's handler as `.refreshed` and is returned.
    public func refresh(token: [UInt8], path: String, priority: Priority = .background) async throws -> CoAPResponse {
        try await withTurn(priority) { client in
            try await client.refreshObservation(token: token, path: path, timeout: settings.requestTimeout)
        }
    }

    /// What the session has learnt and seen so far (nil while disconnected).
    public var statistics: Statistics? {
        guard let client, client.isConnected else { return nil }
        return Statistics(
            retransmissionTimeout: client.retransmissionTimeout.seconds,
            roundTrip: client.retransmissionTimeout.smoothedRoundTrip,
            duplicatesAcknowledged: client.duplicatesAcknowledged,
            retransmissions: client.retransmissions,
            acknowledgementsRepeated: client.acknowledgementsRepeated,
            staleNotificationsDropped: client.staleNotificationsDropped)
    }

    public struct Statistics: Sendable {
        /// Seconds before an unanswered request is sent again.
        public var retransmissionTimeout: Double
        /// Smoothed seconds from a request to its answer.
        public var roundTrip: Double?
        /// Repeated notifications acknowledged again (their first acknowledgement was lost).
        public var duplicatesAcknowledged: Int
        /// Messages sent again because their answer was late (a datagram was lost).
        public var retransmissions: Int
        /// Acknowledgements of notifications sent a second time (nothing newer followed soon).
        public var acknowledgementsRepeated: Int
        /// Notifications older than one already applied, left out.
        public var staleNotificationsDropped: Int
    }

    private func withTurn<T: Sendable>(
        _ priority: Priority, _ body: (CoAPClient) async throws -> T
    ) async throws -> T {
        guard client?.isConnected == true else { throw CoAPError.sessionClosed }
        if busy {
            await withCheckedContinuation { waiting[priority, default: []].append($0) }
        }
        busy = true
        defer { handOver() }
        guard let client, client.isConnected else { throw CoAPError.sessionClosed }
        do {
            let result = try await body(client)
            noteContact()
            requestTimeouts = 0
            return result
        } catch let error as CoAPError {
            if case .timeout = error { requestTimedOut(client) }
            throw error
        }
    }

    private func handOver() {
        let backgroundWaits = waiting[.background]?.isEmpty == false
        if let next = waiting[.command]?.first,
            !backgroundWaits || commandStreak < Self.commandTurnsBeforeBackground
        {
            waiting[.command]?.removeFirst()
            commandStreak += 1
            next.resume()
        } else if let next = waiting[.background]?.first {
            waiting[.background]?.removeFirst()
            commandStreak = 0
            next.resume()
        } else {
            busy = false
        }
    }

    // MARK: Connecting

    private func connectAndServe() async {
        var delay = settings.reconnectInitialDelay
        while !stopping, !Task.isCancelled {
            let attempt: CoAPClient
            let address: (host: String, port: UInt16)
            do {
                address = try await resolve()
                guard !stopping, !Task.isCancelled else { return }
                lastAddress = BridgeConfiguration.GatewayAddress.host(address.host, port: address.port).description
                attempt = CoAPClient(
                    .init(
                        host: address.host, port: address.port, identity: identity, key: key,
                        handshakeTimeout: settings.handshakeTimeout, requestTimeout: settings.requestTimeout,
                        silenceLimit: settings.silenceLimit))
                self.attempt = attempt
                defer { if self.attempt === attempt { self.attempt = nil } }
                try await attempt.connect()
            } catch {
                guard !stopping, !Task.isCancelled else { return }
                let failure = (error as? CoAPError) ?? .setup("\(error)")
                if case .unknownIdentity = failure {
                    // Only a person can fix this (the owner says how, once): ask again rarely.
                    onEvent(.connectFailed(failure))
                    await pause(settings.unknownIdentityRetryDelay)
                    delay = settings.reconnectInitialDelay
                    continue
                }
                logger.warning(
                    "cannot connect to the gateway",
                    metadata: [
                        "error": "\(failure)", "retry.in": "\(delay.seconds)s",
                    ])
                onEvent(.connectFailed(failure))
                await pause(jittered(delay))
                delay = min(delay * 2, settings.reconnectMaxDelay)
                continue
            }
            guard !stopping else {
                attempt.close()
                return
            }
            client = attempt
            requestTimeouts = 0
            sessionsEstablished += 1
            noteContact()
            delay = settings.reconnectInitialDelay
            logger.info("connected to the gateway", metadata: ["gateway.address": "\(address.host):\(address.port)"])
            let reason = await serve(attempt, address: address)
            if stopping { return }
            logger.warning("lost the gateway session", metadata: ["reason": "\(reason.map { "\($0)" } ?? "closed")"])
            await pause(jittered(delay))
            delay = min(delay * 2, settings.reconnectMaxDelay)
        }
    }

    /// Runs one established session until it ends; returns why it ended. The session's watcher,
    /// its keep-alive loop and the owner's `whileConnected` work are child tasks of this one,
    /// cancelled and awaited when the session ends.
    private func serve(_ session: CoAPClient, address: (host: String, port: UInt16)) async -> CoAPError? {
        let work = whileConnected
        await withDiscardingTaskGroup { group in
            group.addTask { [weak self] in
                for await event in session.events {
                    if case .closed(let error) = event {
                        await self?.endSession(reason: error ?? .sessionClosed)
                    }
                }
            }
            group.addTask { [weak self] in await self?.keepAlive(session) }
            onEvent(.connected(host: address.host, port: address.port))
            group.addTask { await work() }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if client === session {
                    sessionEnded = continuation
                } else {
                    continuation.resume()
                }
            }
            group.cancelAll()
        }
        return endReason
    }

    private var endReason: CoAPError?

    /// Ends the current session (idempotent): frees the DTLS context, fails queued requests.
    private func endSession(reason: CoAPError?) {
        guard let session = client else { return }
        client = nil
        endReason = reason
        wakeKeepAlive()
        session.close()
        for priority in [Priority.command, .background] {
            for waiter in waiting[priority] ?? [] { waiter.resume() }
            waiting[priority] = []
        }
        busy = false
        onEvent(.disconnected(reason))
        sessionEnded?.resume()
        sessionEnded = nil
    }

    // MARK: Keep-alive

    private func keepAlive(_ session: CoAPClient) async {
        var failures = 0
        while !Task.isCancelled, client === session {
            // The client notes every datagram the gateway sends, acknowledgements included.
            let quiet = ContinuousClock.now - max(lastHeard, session.lastHeard)
            if !pingSoon, quiet < settings.keepAlive {
                await waitForKeepAlive(settings.keepAlive - quiet)
                continue
            }
            pingSoon = false
            do {
                try await session.ping(timeout: min(settings.pingTimeout, settings.keepAlive))
                failures = 0
                noteContact()
            } catch {
                guard client === session else { return }
                failures += 1
                logger.warning("gateway did not answer a ping", metadata: ["failures": "\(failures)"])
                if failures >= settings.pingFailuresBeforeReset {
                    endSession(reason: .timeout("\(failures) pings unanswered"))
                    return
                }
                pingSoon = true  // ping again at once
            }
        }
    }

    /// A request of the session `client` timed out: the session is checked with a ping at once,
    /// and after `requestTimeoutsBeforeReset` in a row (the pings answered meanwhile, or the
    /// session would have ended already) it is declared half-dead and replaced.
    private func requestTimedOut(_ session: CoAPClient) {
        guard self.client === session else { return }
        requestTimeouts += 1
        guard requestTimeouts >= settings.requestTimeoutsBeforeReset else { return checkSoon() }
        requestTimeouts = 0
        let detail = "the gateway answered pings but not \(settings.requestTimeoutsBeforeReset) requests in a row"
        logger.warning("the gateway session is half-dead; connecting afresh", metadata: ["reason": "\(detail)"])
        onEvent(.stalled(detail))
        endSession(reason: .timeout(detail))
    }

    /// Requests in a row that timed out in the current session.
    private var requestTimeouts = 0

    /// After a request timed out, check the session with a ping instead of waiting for the next
    /// keep-alive round.
    private func checkSoon() {
        pingSoon = true
        wakeKeepAlive()
    }

    /// The next keep-alive round pings at once (a request timed out, or a ping failed).
    private var pingSoon = false

    /// Waits `delay`, less if `checkSoon()` or the session's end wakes it; at once when the task
    /// is cancelled.
    private func waitForKeepAlive(_ delay: Duration) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                guard !Task.isCancelled else { return continuation.resume() }
                wakeKeepAlive()
                keepAliveWake = continuation
                keepAliveTimer = CoAPTimer(after: delay) { [weak self] in self?.wakeKeepAlive() }
            }
        } onCancel: {
            Task { @CoAPActor [weak self] in self?.wakeKeepAlive() }
        }
    }

    private func wakeKeepAlive() {
        keepAliveTimer?.cancel()
        keepAliveTimer = nil
        keepAliveWake?.resume()
        keepAliveWake = nil
    }

    /// Notes that the gateway spoke (a notification arrived), postponing the next ping.
    public func heard() {
        noteContact()
    }

    private func noteContact() {
        lastHeard = .now
        lastContact = Date()
    }

    // MARK: Timing

    private func jittered(_ delay: Duration) -> Duration {
        delay * Double.random(in: 0.8...1.2)
    }

    /// Waits `delay` before the next attempt; less if `retryNow()` or a stop ends it, and not at
    /// all when the task is cancelled.
    private func pause(_ delay: Duration) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                guard !Task.isCancelled, !stopping else { return continuation.resume() }
                wakeRetry()
                retryWake = continuation
                retryTimer = CoAPTimer(after: delay) { [weak self] in self?.wakeRetry() }
            }
        } onCancel: {
            Task { @CoAPActor [weak self] in self?.wakeRetry() }
        }
    }

    private func wakeRetry() {
        retryTimer?.cancel()
        retryTimer = nil
        retryWake?.resume()
        retryWake = nil
    }
}

extension Duration {
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
