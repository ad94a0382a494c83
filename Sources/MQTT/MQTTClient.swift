import Logging

/// A connection to one MQTT broker over libmosquitto, kept up until `disconnect()`.
///
/// Contract:
/// - `start()` returns at once; a background thread connects and, whenever the connection fails
///   or is lost, reconnects after the backoff of `configuration.reconnect`, forever, whatever the
///   reason (refused credentials, DNS, TLS, broker down). What happens is reported on `events`.
/// - Subscriptions made with `subscribe` are remembered and re-issued by the client on every
///   reconnect that does not resume a broker session, before `.connected` is reported;
///   `unsubscribe` forgets them. Callers never re-subscribe themselves.
/// - Publishing, subscribing and unsubscribing need an accepted connection: while there is none
///   they throw `MQTTError.notConnected` at once (nothing is queued for later; a bridge decides
///   itself what to resend when `.connected` comes back). A QoS 1/2 message already handed to
///   libmosquitto when the connection drops is re-sent by it after reconnecting.
/// - Every wait has a deadline. All methods may be called from any thread or task.
/// - `disconnect()` sends DISCONNECT, so the broker discards the will; releasing the client
///   without `disconnect()` does the same in the background.
/// - The client is single-use: after `disconnect()` every call throws `MQTTError.closed`.
///
/// Messages, and every other event, arrive on `events`, which has a single consumer and buffers
/// without limit: keep consuming it.
public final class MQTTClient: Sendable {
    public let configuration: MQTTConfiguration
    private let session: MosquittoSession

    /// Creates the client and checks the configuration; does not connect yet.
    /// - Throws: `MQTTError.invalidConfiguration` or `.library` if libmosquitto rejects a setting.
    public init(_ configuration: MQTTConfiguration, logger: Logger = Logger(label: "mqtt")) throws(MQTTError) {
        self.configuration = configuration
        self.session = try MosquittoSession(configuration, logger: logger)
    }

    deinit {
        session.requestStop()
    }

    /// Connection changes and received messages, in order. Single consumer. Finishes after
    /// `disconnect()` (or once the released client's background thread has ended).
    public var events: AsyncStream<MQTTEvent> { session.events }

    /// True between `.connected` and the next `.disconnected`.
    public var isConnected: Bool { session.isConnected }

    /// Counts since the client was created, the publish queue, and when the network thread last
    /// came round.
    public var statistics: MQTTStatistics { session.statistics }

    #if DEBUG
    /// Test-only (debug builds): the network thread blocks for `duration` at its next turn, as a
    /// thread stuck in a system call would; for testing a watchdog.
    public func stallNetworkThread(for duration: Duration) {
        session.stallNetworkThread(for: duration)
    }
    #endif

    /// Starts connecting in the background; returns at once. Wait for `.connected` on `events`.
    /// - Throws: `MQTTError.invalidArgument` if called twice, `.closed` after `disconnect()`.
    public func start() throws(MQTTError) {
        try session.start()
    }

    /// Hands `message` to libmosquitto and returns at once, without waiting for the broker.
    /// - Throws: `MQTTError.notConnected` while there is no accepted connection (including before
    ///   the first `.connected`), `.closed` after `disconnect()`, `.library` for an invalid topic,
    ///   an oversized payload or a QoS above the broker's maximum.
    public func publish(_ message: MQTTMessage) throws(MQTTError) {
        _ = try session.enqueue(message)
    }

    /// Publishes `message` and waits until the broker acknowledged it: PUBACK for QoS 1, PUBCOMP
    /// for QoS 2. A QoS 0 message has no acknowledgement; the call returns once it was written to
    /// the socket.
    /// - Throws: what `publish(_:)` throws; `MQTTError.publishRefused` if the broker answered
    ///   with an MQTT 5 failure code (e.g. its ACL forbids the topic); `.timeout` after `timeout`
    ///   (a QoS 1/2 message may still be delivered later: libmosquitto keeps re-sending it);
    ///   `.connectionLost` for a QoS 0 message that died with the connection; `.closed` on
    ///   `disconnect()`; `CancellationError` if the task is cancelled.
    public func publish(_ message: MQTTMessage, acknowledgedWithin timeout: Duration) async throws {
        try await session.publish(message, timeout: timeout)
    }

    /// Subscribes to `filters` and waits for the broker's SUBACK. Granted filters are remembered
    /// and re-issued after every reconnect (see the type's contract).
    /// - Parameter options: MQTT 5 subscription options (e.g. `.noLocal`); empty over 3.1.1.
    /// - Returns: the granted QoS per filter, in order.
    /// - Throws: `MQTTError.subscriptionRefused` naming the filters the broker refused (the others
    ///   are subscribed), `.notConnected`, `.connectionLost`, `.timeout`, `.closed`,
    ///   `.invalidArgument`, `.library`, or `CancellationError`.
    @discardableResult
    public func subscribe(
        _ filters: [String], qos: MQTTQoS = .atLeastOnce, options: MQTTSubscribeOptions = [],
        timeout: Duration = .seconds(10)
    ) async throws -> [MQTTQoS] {
        try await session.subscribe(filters, qos: qos, options: options, timeout: timeout)
    }

    /// Forgets `filters` (they are not re-issued any more) and waits for the broker's UNSUBACK.
    /// - Throws: `MQTTError.notConnected` (the filters are forgotten all the same), `.timeout`,
    ///   `.connectionLost`, `.closed`, `.library`, or `CancellationError`.
    public func unsubscribe(_ filters: [String], timeout: Duration = .seconds(10)) async throws {
        try await session.unsubscribe(filters, timeout: timeout)
    }

    /// Disconnects cleanly (DISCONNECT, so the broker does not publish the will) and returns once
    /// the background thread has ended and libmosquitto's resources are freed. Requests still
    /// waiting throw `MQTTError.closed`; `events` reports `.disconnected(.requested)` if the client
    /// was connected, then finishes. Messages queued before the call are written first; to be sure
    /// a QoS 1 message arrived, await `publish(_:acknowledgedWithin:)` before disconnecting.
    /// Takes a network round trip when connected, up to about a second during a connection
    /// attempt (a DNS lookup of the broker's name still under way is abandoned).
    /// Safe to call more than once and before `start()`.
    public func disconnect() async {
        session.requestStop()
        await session.stopped()
    }
}
