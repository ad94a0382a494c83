/// What a client has done since it was created: for health reports and metrics.
public struct MQTTStatistics: Sendable, Equatable {
    /// Messages handed to the broker connection (`publish`).
    public var published = 0
    /// Messages received on the client's subscriptions.
    public var received = 0
    /// Connections the broker accepted (the first, then one per reconnect).
    public var connections = 0
    /// Messages handed over and not yet written to the socket (QoS 0) or acknowledged by the
    /// broker (QoS 1 and 2): the client's publish queue.
    public var unacknowledged = 0
    /// How many times the network thread has come round (from waiting on the socket, or between
    /// connection attempts): a count that stops moving means a stuck thread, if
    /// `MQTTConfiguration.maximumLoopWait` bounds the waits.
    public var loopTurns = 0

    public init() {}

    /// Connections after the first one.
    public var reconnects: Int { max(0, connections - 1) }
}
