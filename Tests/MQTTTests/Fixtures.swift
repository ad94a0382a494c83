import Foundation
import MQTT
import TestSupport

/// A client id no other test uses (≤ 10 characters, so the network thread's name shows it).
func uniqueClientID(_ prefix: String = "t") -> String {
    prefix + String(UInt32.random(in: 0...UInt32.max), radix: 36)
}

/// Fast reconnects, so broker restarts do not slow the tests down.
let quickReconnect = MQTTReconnectPolicy(minimumDelay: .milliseconds(50), maximumDelay: .milliseconds(300))

/// A configuration for `broker` (or `port`, e.g. a relay's); `adjust` changes the rest.
func configuration(
    for broker: MosquittoBroker, port: UInt16? = nil, clientID: String = uniqueClientID(),
    version: MQTTProtocolVersion = .v5, _ adjust: (inout MQTTConfiguration) -> Void = { _ in }
) -> MQTTConfiguration {
    var configuration = MQTTConfiguration(
        host: broker.host, port: port ?? broker.port, clientID: clientID, protocolVersion: version,
        reconnect: quickReconnect)
    adjust(&configuration)
    return configuration
}

/// Starts a client and waits until the broker accepted it.
func connectedClient(_ configuration: MQTTConfiguration) async throws -> (MQTTClient, EventLog) {
    let client = try MQTTClient(configuration)
    let events = EventLog(client)
    try client.start()
    try await events.connected()
    return (client, events)
}
