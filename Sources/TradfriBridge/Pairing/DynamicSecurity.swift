import HubModel
import Logging
import MQTT
import TLS
import TradfriModel

/// Per-device broker accounts, managed live through mosquitto's dynamic-security plugin: the
/// bridge's admin client publishes commands on `$CONTROL/dynamic-security/v1` and matches each
/// reply on `…/v1/response` by its correlation data.
///
/// Each device gets a client (its username and password) and a role of the same name that allows
/// publish, receive and subscribe under its own topic prefix and denies everything else (lower
/// priority `#` entries), whatever the broker's default access is. Deleting the client cuts
/// a connected device off at once (the plugin disconnects it).
public actor DynamicSecurity {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    static let commandTopic = "$CONTROL/dynamic-security/v1"
    static let responseTopic = "$CONTROL/dynamic-security/v1/response"

    private let client: MQTTClient
    private var waiting: [String: CheckedContinuation<JSON, any Error>] = [:]
    private var listener: Task<Void, Never>?
    private var connected = false
    private var connectionWaiters: [CheckedContinuation<Void, Never>] = []
    private let logger = Logger(label: "pairing.dynsec")

    public init(configuration: MQTTConfiguration) throws {
        client = try MQTTClient(configuration)
    }

    /// Connects the admin client and subscribes to the replies.
    /// - Throws: `Failure` if the account cannot connect within `limit`; `CancellationError` at
    ///   once when the task is cancelled (a bridge stopping while the broker is away).
    public func start(within limit: Duration = .seconds(10)) async throws {
        let events = client.events
        listener = Task { [weak self] in
            for await event in events {
                await self?.handle(event)
            }
        }
        try client.start()
        let deadline = Task { [weak self] in
            try? await Task.sleep(for: limit)
            await self?.releaseConnectionWaiters()
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if connected || Task.isCancelled {
                    continuation.resume()
                } else {
                    connectionWaiters.append(continuation)
                }
            }
        } onCancel: {
            Task { [weak self] in await self?.releaseConnectionWaiters() }
        }
        deadline.cancel()
        try Task.checkCancellation()
        guard connected else {
            throw Failure(
                description:
                    "the broker admin account could not connect (check pairing.broker_admin_user and its password file)"
            )
        }
        try await client.subscribe([Self.responseTopic], qos: .atLeastOnce)
    }

    public func stop() async {
        await client.disconnect()
        listener?.cancel()
    }

    private func handle(_ event: MQTTEvent) {
        switch event {
        case .connected:
            connected = true
            releaseConnectionWaiters()
        case .disconnected:
            connected = false
        case .connectionRefused(let refusal):
            logger.error("the broker refused the pairing admin account", metadata: ["reason": "\(refusal)"])
        case .message(let message) where message.topic == Self.responseTopic:
            guard let replies = (try? JSON(parsing: message.payload))?["responses"]?.arrayValue else { return }
            for reply in replies {
                guard let id = reply["correlationData"]?.stringValue, let waiter = waiting.removeValue(forKey: id)
                else { continue }
                if let error = reply["error"]?.stringValue {
                    waiter.resume(throwing: Failure(description: error))
                } else {
                    waiter.resume(returning: reply)
                }
            }
        default:
            break
        }
    }

    private func releaseConnectionWaiters() {
        for waiter in connectionWaiters { waiter.resume() }
        connectionWaiters.removeAll()
    }

    /// Sends one command and returns its reply; throws the plugin's error text, or
    /// `CancellationError` at once when the task is cancelled.
    @discardableResult
    func execute(_ command: [String: JSON], within limit: Duration = .seconds(10)) async throws -> JSON {
        let id = Crypto.randomToken(length: 12)
        var command = command
        command["correlationData"] = .string(id)
        let message = MQTTMessage(
            topic: Self.commandTopic, payload: JSON.object(["commands": [.object(command)]]).bytes,
            qos: .atLeastOnce)
        let timeout = Task { [weak self] in
            try? await Task.sleep(for: limit)
            await self?.fail(id, Failure(description: "no answer from the dynamic-security plugin (is it loaded?)"))
        }
        defer { timeout.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard !Task.isCancelled else { return continuation.resume(throwing: CancellationError()) }
                waiting[id] = continuation
                do {
                    try client.publish(message)
                } catch {
                    waiting[id] = nil
                    continuation.resume(throwing: Failure(description: "cannot reach the broker: \(error)"))
                }
            }
        } onCancel: {
            Task { [weak self] in await self?.fail(id, CancellationError()) }
        }
    }

    private func fail(_ id: String, _ error: any Error) {
        waiting.removeValue(forKey: id)?.resume(throwing: error)
    }

    // MARK: Devices

    static func acls(prefix: String) -> JSON {
        let mine = "\(prefix)/#"
        return [
            ["acltype": "publishClientSend", "topic": .string(mine), "priority": 10, "allow": true],
            ["acltype": "publishClientReceive", "topic": .string(mine), "priority": 10, "allow": true],
            ["acltype": "subscribePattern", "topic": .string(mine), "priority": 10, "allow": true],
            ["acltype": "unsubscribePattern", "topic": "#", "priority": 0, "allow": true],
            ["acltype": "publishClientSend", "topic": "#", "priority": 0, "allow": false],
            ["acltype": "publishClientReceive", "topic": "#", "priority": 0, "allow": false],
            ["acltype": "subscribePattern", "topic": "#", "priority": 0, "allow": false],
        ]
    }

    /// Creates (or repairs) the device's role and client so they match `device`.
    public func ensure(_ device: PairedDevice) async throws {
        do {
            try await execute([
                "command": "createRole", "rolename": .string(device.username),
                "textname": .string("tradfri-bridge device \(device.id)"),
                "acls": Self.acls(prefix: device.topicPrefix),
            ])
        } catch let error as Failure where error.description.contains("already exists") {
            // Keep the role but make its ACLs right: remove and add again.
            try await execute(["command": "deleteRole", "rolename": .string(device.username)])
            try await execute([
                "command": "createRole", "rolename": .string(device.username),
                "textname": .string("tradfri-bridge device \(device.id)"),
                "acls": Self.acls(prefix: device.topicPrefix),
            ])
        }
        do {
            try await execute([
                "command": "createClient", "username": .string(device.username), "password": .string(device.password),
                "textname": .string(device.name), "roles": [["rolename": .string(device.username), "priority": 0]],
            ])
        } catch let error as Failure where error.description.contains("already exists") {
            try await execute([
                "command": "setClientPassword", "username": .string(device.username),
                "password": .string(device.password),
            ])
            _ = try? await execute([
                "command": "addClientRole", "username": .string(device.username),
                "rolename": .string(device.username), "priority": 0,
            ])
            try await execute(["command": "enableClient", "username": .string(device.username)])
        }
    }

    /// Deletes the device's client (disconnecting it at once) and role.
    public func remove(username: String) async throws {
        do {
            try await execute(["command": "deleteClient", "username": .string(username)])
        } catch let error as Failure where error.description.contains("not found") {}
        do {
            try await execute(["command": "deleteRole", "rolename": .string(username)])
        } catch let error as Failure where error.description.contains("not found") {}
    }

    public func exists(username: String) async throws -> Bool {
        do {
            try await execute(["command": "getClient", "username": .string(username)])
            return true
        } catch let error as Failure where error.description.contains("not found") {
            return false
        }
    }
}
