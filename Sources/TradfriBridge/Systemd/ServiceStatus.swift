import CoAP
import Foundation
import HubModel
import SystemdNotify

/// What systemd (`Type=notify`) is told about the bridge, and when.
///
/// Contract:
/// - `READY=1` once start-up is over: every gateway's first full sync has been published (its
///   states, lists and discovery configs handed to the broker connection; this feature sees the
///   `synced` event after every other feature), or that gateway failed a connection attempt, and
///   the broker connected or failed an attempt. So a gateway or broker that is away at boot
///   never makes systemd's start time out; `STATUS=` says what is missing.
/// - `STATUS=` is one line for `systemctl status`, e.g. `1 of 1 gateway connected; 12 devices;
///   broker connected; last change 14:03:22`, naming a gateway that is offline or needs pairing.
///   With takeover it counts the gateways this instance drives and names the others (`garden
///   not driven by this instance`); while it drives none, `TakeoverBridge` says it stands by.
///   It is sent when a connection changes; the watchdog (`SystemdWatchdog`) refreshes it at each
///   of its rounds (so "last change" follows without a datagram per state change).
/// - `STOPPING=1` when the bridge begins to stop.
@CoAPActor
final class ServiceStatus: BridgeFeature {
    private let context: BridgeContext
    private let channel: SystemdChannel
    private let now: @Sendable () -> Date
    private(set) var isReady = false
    /// Hubs whose first sync was published, or whose connection failed once.
    private var settled: Set<String> = []
    private var brokerSettled = false
    private var lastChange: Date?
    private var stopping = false

    init(context: BridgeContext, channel: SystemdChannel, now: @escaping @Sendable () -> Date = { Date() }) {
        self.context = context
        self.channel = channel
        self.now = now
    }

    func handle(_ event: BridgeEvent) {
        switch event {
        case .hub(_, .deviceChanged), .hub(_, .groupChanged), .hub(_, .deviceAdded), .hub(_, .deviceRemoved),
            .hub(_, .groupAdded), .hub(_, .groupRemoved):
            // Per state change: only noted (the watchdog's rounds carry it to systemd).
            lastChange = now()
        case .hub(let hub, .synced):
            settled.insert(hub)
            update()
        case .hubConnectFailed(let hub, _):
            settled.insert(hub)
            update()
        case .brokerConnected, .brokerConnectFailed:
            brokerSettled = true
            update()
        case .hubConnected, .hubDisconnected, .brokerDisconnected, .hub(_, .info):
            update()
        case .stopping:
            stopping = true
            channel.send([.stopping], status: "Stopping")
        default:
            break
        }
    }

    /// Sends READY when start-up has just ended, and the status line if it changed.
    func update() {
        guard !stopping else { return }
        var messages: [NotifySocket.Message] = []
        // With takeover, the gateways this instance drives (another may hold the rest for good).
        if !isReady, brokerSettled, context.hubs.allSatisfy({ !context.drives($0.name) || settled.contains($0.name) }) {
            isReady = true
            messages.append(.ready)
        }
        channel.send(messages, status: statusLine())
    }

    /// The line `systemctl status` shows.
    func statusLine() -> String {
        if stopping { return "Stopping" }
        // With takeover, only the gateways this instance drives count; the others are named.
        let hubs = context.hubs.filter { context.drives($0.name) }
        let elsewhere = context.hubs.filter { !context.drives($0.name) }.map {
            "\($0.name) not driven by this instance"
        }
        let connected = hubs.count { $0.connected }
        var gateways = "\(connected) of \(hubs.count) gateway\(hubs.count == 1 ? "" : "s") connected"
        let problems =
            hubs.compactMap { hub -> String? in
                guard !hub.connected else { return nil }
                let name = context.hubs.count == 1 ? "gateway" : hub.name
                return hub.needsPairing ? "\(name) needs pairing: tradfri-bridge auth" : "\(name) offline"
            } + elsewhere
        if !problems.isEmpty { gateways += " (\(problems.joined(separator: ", ")))" }
        let devices = hubs.reduce(0) { $0 + $1.devices.count }
        let broker = context.outbox.isConnected ? "broker connected" : "broker not connected"
        let change = lastChange.map { "last change \(Self.format($0, now: now()))" } ?? "no change yet"
        let line = [gateways, "\(devices) device\(devices == 1 ? "" : "s")", broker, change].joined(separator: "; ")
        return isReady ? line : "Starting: " + line
    }

    /// `14:03:22` today, `2026-12-04 14:03:22` before (local time, as the journal shows).
    nonisolated static func format(_ date: Date, now: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .current
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String { String(format: "%02d", value ?? 0) }
        let time = "\(two(parts.hour)):\(two(parts.minute)):\(two(parts.second))"
        guard !calendar.isDate(date, inSameDayAs: now) else { return time }
        return "\(parts.year ?? 0)-\(two(parts.month))-\(two(parts.day)) \(time)"
    }
}
