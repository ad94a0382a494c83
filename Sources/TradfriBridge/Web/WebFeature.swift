import CoAP
import Foundation
import HubModel

/// The bridge's side of the web page, on the libcoap actor like every feature: what the page
/// shows (`snapshot()`, `context.health()`), the commands it sends (through `CommandHandler`,
/// exactly as `<name>/set`), and the live changes it is sent (`WebEvents`).
///
/// Contract:
/// - While no page is open, every event costs one atomic load and nothing else: the gateway →
///   MQTT path does not pay for the page.
/// - With pages open, changes are gathered and sent `flushDelay` (50 ms) after the first (a
///   scene changes a whole room: one message), from a timer, after the state publisher has
///   published them. What a page shows is what MQTT shows: the same state payloads, names and
///   availability.
/// - Every 20 s while a page is open, the health figures (uptime, last contact) go out, which
///   also tells a page that its stream is alive.
@CoAPActor
final class WebFeature: BridgeFeature {
    let context: BridgeContext
    private let commands: CommandHandler
    let events: WebEvents
    private let flushDelay: Duration
    private var dirty: Set<FriendlyNames.Entity> = []
    private var homeDue = false
    private var healthDue = false
    private var flushTimer: CoAPTimer?
    private var heartbeat: CoAPTimer?

    init(context: BridgeContext, commands: CommandHandler, events: WebEvents, flushDelay: Duration = .milliseconds(50))
    {
        self.context = context
        self.commands = commands
        self.events = events
        self.flushDelay = flushDelay
    }

    func handle(_ event: BridgeEvent) {
        guard events.isActive else { return }
        switch event {
        case .hub(_, .deviceChanged(let device, _)):
            dirty.insert(.device(device.id))
            for group in context.groups(containing: device.id) { dirty.insert(.group(group.id)) }
        case .hub(_, .groupChanged(let group, let previous)):
            if group.scenes != previous.scenes || group.members != previous.members { homeDue = true }
            dirty.insert(.group(group.id))
        case .hub(_, .deviceAdded), .hub(_, .deviceRemoved), .hub(_, .groupAdded), .hub(_, .groupRemoved),
            .hub(_, .synced), .hub(_, .info), .namesChanged, .hubConnected, .hubDisconnected:
            homeDue = true
            healthDue = true
        case .brokerConnected, .brokerDisconnected:
            healthDue = true
        case .commandFinished(_, let topic, let error?, _):
            events.send("command_error", ["topic": .string(topic), "error": .string(error)])
            healthDue = true
        default:
            return
        }
        if flushTimer == nil {
            flushTimer = CoAPTimer(after: flushDelay) { [weak self] in self?.flush() }
        }
    }

    // MARK: What the page asks

    /// A new live stream for a page of `session`: the whole home and the health figures first,
    /// then every change. Nil while the server shuts down.
    func open(session: String) -> AsyncStream<String>? {
        guard let (id, stream) = events.subscribe(session: session) else { return nil }
        events.send("home", snapshot(), to: id)
        events.send("health", context.health(), to: id)
        if heartbeat == nil { beat() }
        return stream
    }

    /// A command from the page for the device or group whose topic name is `target`.
    func submit(target: String, payload: [UInt8]) throws(CommandError) {
        try commands.submit(name: target, payload: payload)
    }

    /// Every gateway with its state, devices and groups, as the page shows them.
    func snapshot() -> JSON {
        [
            "gateways": .array(
                context.hubs.map { hub in
                    var gateway = context.health(of: hub).objectValue ?? [:]
                    gateway["name"] = .string(hub.name)
                    gateway["groups"] = .array(hub.groups.values.sorted { $0.id < $1.id }.map { item(.group($0.id)) })
                    gateway["devices"] = .array(
                        hub.devices.values.sorted { $0.id < $1.id }.map { item(.device($0.id)) })
                    return .object(gateway)
                }),
            "several_gateways": .bool(context.topicsUseHubNames),
        ]
    }

    /// One device or group: what it is, its state (the MQTT payload), whether it is reachable,
    /// and the controls it takes.
    func item(_ entity: FriendlyNames.Entity) -> JSON {
        var item: [String: JSON] = [
            "key": .string(entity.id.description), "target": context.names[entity].map(JSON.string) ?? .null,
        ]
        switch entity {
        case .device(let id):
            guard let device = context.device(id) else { return .object(item.merging(["gone": true]) { a, _ in a }) }
            item["kind"] = "device"
            item["name"] = .string(device.name)
            item["type"] = .string(device.type.description)
            item["model"] = .string(device.model)
            item["online"] = .bool(context.isOnline(device))
            item["state"] = MQTTState.payload(for: device)
            var controls: [String: JSON] = [:]
            if let light = device.light {
                controls["switch"] = true
                controls["brightness"] = true
                if light.spectrum != .white {
                    let range = light.colorTemperatureRange
                    controls["color_temp"] = [.int(range.lowerBound), .int(range.upperBound)]
                }
            } else if device.onOff != nil {
                controls["switch"] = true
            } else if device.cover != nil {
                controls["position"] = true
            }
            item["controls"] = .object(controls)
        case .group(let id):
            guard let group = context.group(id) else { return .object(item.merging(["gone": true]) { a, _ in a }) }
            let members = context.members(of: group)
            item["kind"] = "group"
            item["name"] = .string(group.name)
            item["members"] = .array(members.map { .string(context.names[.device($0.id)] ?? $0.name) })
            item["online"] = .bool(members.contains { context.isOnline($0) })
            item["state"] = MQTTState.payload(for: group, members: members)
            var controls: [String: JSON] = [:]
            if members.contains(where: { $0.light != nil || $0.onOff != nil }) { controls["switch"] = true }
            if members.contains(where: { $0.light != nil }) { controls["brightness"] = true }
            if members.contains(where: { ($0.light?.spectrum ?? .white) != .white }) {
                controls["color_temp"] = [250, 454]
            }
            if members.contains(where: { $0.cover != nil }) { controls["position"] = true }
            if !group.scenes.isEmpty {
                controls["scenes"] = .array(
                    group.scenes.map { ["id": .string($0.id.local), "name": .string($0.name)] })
            }
            item["controls"] = .object(controls)
        }
        return .object(item)
    }

    // MARK: Sending

    private func flush() {
        flushTimer = nil
        guard events.isActive else {
            dirty.removeAll()
            homeDue = false
            healthDue = false
            return
        }
        if homeDue {
            events.send("home", snapshot())
        } else if !dirty.isEmpty {
            events.send("items", ["items": .array(dirty.sorted { $0.id < $1.id }.map { item($0) })])
        }
        if healthDue { events.send("health", context.health()) }
        dirty.removeAll()
        homeDue = false
        healthDue = false
    }

    private func beat() {
        guard events.isActive else {
            heartbeat = nil
            return
        }
        heartbeat = CoAPTimer(after: .seconds(20)) { [weak self] in
            guard let self else { return }
            if self.events.isActive { self.events.send("health", self.context.health()) }
            self.beat()
        }
    }
}
