import HubModel
import TradfriModel

/// Control commands, one per line on the simulator's standard input, for tests and demos that
/// need something only the IKEA app or a remote could do on a real gateway.
///
///     change <device id> <device PUT body>      e.g. change 65537 {"3311":[{"5850":1}]}
///     change-silently <device id> <PUT body>     the same without notifying observers (a lost
///                                                notification, or an observation that expired)
///     add-device <device JSON>                   remove-device <id>
///     add-group <group JSON>                     remove-group <id>
///     add-scene <group id> <scene JSON>          remove-scene <group id> <scene id>
///     battery <device id> <percent>              reachable <device id> <0|1>
///     odd-answer <device id> <raw text>          the device's next notification carries the raw
///                                                text instead of its JSON (garbage from the gateway)
///     end-observations <device id>               ends every observation of the device with 4.04
///                                                though it stays listed (as a gateway shutting
///                                                down does)
///     mute <device id>                           the device's changes notify nobody any more (a
///                                                gateway that silently stops notifying one device)
///     unmute <device id>
///     half-dead                                  every session so far gets no answer to any request
///                                                (only an empty acknowledgement) and no notification;
///                                                pings are still answered. A new session works.
///     drop <to-gateway|from-gateway> <count>     loses exactly the next datagrams of that
///                                                direction (needs --relay or --drop-rate)
///     reboot
///
/// Each command answers one line: `ok <command>` or `error: <reason>`.
extension GatewaySimulator {
    public func execute(_ line: String) -> String {
        let trimmed = line.trimmingPrefix(while: \.isWhitespace)
        guard !trimmed.isEmpty else { return "error: empty command" }
        let parts = trimmed.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        let command = String(parts[0])
        let rest = parts.count > 1 ? String(parts[1]) : ""
        do {
            try run(command, rest)
            return "ok \(command)"
        } catch {
            return "error: \(error)"
        }
    }

    private struct CommandError: Error, CustomStringConvertible {
        let description: String
    }

    private func run(_ command: String, _ rest: String) throws {
        func splitID() throws -> (Int, String) {
            let pieces = rest.split(separator: " ", maxSplits: 1)
            guard let first = pieces.first, let id = Int(first) else {
                throw CommandError(description: "expected an id")
            }
            return (id, pieces.count > 1 ? String(pieces[1]) : "")
        }
        func parse(_ text: String) throws -> JSON {
            do { return try JSON(parsing: text) } catch { throw CommandError(description: "\(error)") }
        }
        switch command {
        case "change", "change-silently":
            let (id, body) = try splitID()
            guard devices[id] != nil else { throw CommandError(description: "no device \(id)") }
            guard let patch = try parse(body).objectValue, apply(patch, toDevice: id) != nil else {
                throw CommandError(description: "the change is not a device PUT body")
            }
            if command == "change" { notify(GatewayPath.device(id)) }
        case "add-device":
            try addDevice(try parse(rest))
        case "remove-device":
            let (id, _) = try splitID()
            guard devices[id] != nil else { throw CommandError(description: "no device \(id)") }
            removeDevice(id)
        case "add-group":
            try addGroup(try parse(rest))
        case "remove-group":
            let (id, _) = try splitID()
            guard groups[id] != nil else { throw CommandError(description: "no group \(id)") }
            removeGroup(id)
        case "add-scene":
            let (group, body) = try splitID()
            try addScene(try parse(body), toGroup: group)
        case "remove-scene":
            let (group, body) = try splitID()
            guard let scene = Int(body.trimmingPrefix(while: \.isWhitespace)) else {
                throw CommandError(description: "expected a scene id")
            }
            removeScene(scene, fromGroup: group)
        case "battery", "reachable":
            let (id, body) = try splitID()
            guard var device = devices[id], let value = Int(body.trimmingPrefix(while: \.isWhitespace)) else {
                throw CommandError(description: "expected a device id and a number")
            }
            if command == "battery" {
                device[GatewayKey.deviceInfo]?[GatewayKey.battery] = .int(value)
            } else {
                device[GatewayKey.reachable] = .int(value == 0 ? 0 : 1)
            }
            devices[id] = device
            notify(GatewayPath.device(id))
        case "odd-answer":
            let (id, body) = try splitID()
            guard devices[id] != nil else { throw CommandError(description: "no device \(id)") }
            oddAnswers[id] = body
            notify(GatewayPath.device(id))
        case "end-observations":
            let (id, _) = try splitID()
            guard devices[id] != nil else { throw CommandError(description: "no device \(id)") }
            server?.removeResource(GatewayPath.device(id))
            server?.addResource(GatewayPath.device(id), handler: resourceHandler)
        case "mute", "unmute":
            let (id, _) = try splitID()
            guard devices[id] != nil else { throw CommandError(description: "no device \(id)") }
            if command == "mute" { mutedDevices.insert(id) } else { mutedDevices.remove(id) }
        case "half-dead":
            halfDeadPeers = (halfDeadPeers ?? []).union(peersSeen)
            notificationsPaused = true
        case "drop":
            let pieces = rest.split(separator: " ")
            guard pieces.count == 2, let count = Int(pieces[1]), count >= 0,
                pieces[0] == "to-gateway" || pieces[0] == "from-gateway"
            else { throw CommandError(description: "expected 'drop to-gateway|from-gateway <count>'") }
            try dropNext(
                toGateway: pieces[0] == "to-gateway" ? count : 0, fromGateway: pieces[0] == "from-gateway" ? count : 0)
        case "reboot":
            reboot(reason: -1)
        default:
            throw CommandError(description: "unknown command '\(command)'")
        }
    }
}
