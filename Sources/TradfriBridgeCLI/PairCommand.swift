import ArgumentParser
import Foundation
import HubModel
import TradfriBridge
import TradfriModel

struct PairCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pair",
        abstract: "Approve or deny Wi-Fi devices asking for MQTT credentials.",
        discussion: """
            Without a subcommand: an interactive prompt that shows each request as it arrives \
            (name, IP, MAC, mode, age, verification code) and asks Allow / Deny, then shows \
            whether the device collected its credentials and connected to the broker.
            Talks to the running bridge over its local control socket (pairing.control_socket), so \
            run it as root or as the bridge's user.
            """,
        subcommands: [
            PromptCommand.self, ListCommand.self, AllowCommand.self, DenyCommand.self, OpenCommand.self,
            CloseCommand.self, DevicesCommand.self, RevokeCommand.self, StatusCommand.self,
        ],
        defaultSubcommand: PromptCommand.self)

    struct Options: ParsableArguments {
        @OptionGroup var common: CommonOptions

        @Option(help: "The bridge's control socket (default: pairing.control_socket from the configuration).")
        var socket: String?

        func connect() throws -> (ControlClient, BridgeConfiguration) {
            let configuration = try common.load()
            do {
                return (try ControlClient(path: socket ?? configuration.pairing.controlSocket), configuration)
            } catch {
                throw Failure("\(error)")
            }
        }

        func send(_ request: JSON) throws -> JSON {
            let (client, _) = try connect()
            defer { client.close() }
            do {
                return try client.send(request)
            } catch {
                throw Failure("\(error)")
            }
        }

        /// Sends `command` and prints the list it answers as a table (or as JSON with `--json`).
        func printList(
            _ command: String, json: Bool, empty: String, header: [String], row: (JSON) -> [String]
        ) throws {
            let reply = try send(["command": .string(command)])
            if json { return print(reply.description) }
            let list = reply.arrayValue ?? []
            guard !list.isEmpty else { return print(empty) }
            print(GatewayInventory.format([header] + list.map(row)), terminator: "")
        }
    }

    struct ListCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "Requests waiting for a decision.")
        @OptionGroup var options: Options
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try options.printList(
                "list", json: json, empty: "No pairing requests.",
                header: ["ID", "NAME", "IP", "MAC", "MODE", "AGE", "CODE"], row: PromptCommand.row)
        }
    }

    struct AllowCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "allow", abstract: "Allow a request: the device gets its own credentials.")
        @OptionGroup var options: Options
        @Argument(help: "The request's ID (see 'pair list').") var id: String

        func run() throws {
            let result = try options.send(["command": "allow", "id": .string(id.uppercased())])
            print(
                "Allowed \(id.uppercased()): device \(result["device"]?.stringValue ?? "?") may use \(result["topic_prefix"]?.stringValue ?? "?")/#; it has a minute to collect its credentials."
            )
        }
    }

    struct DenyCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "deny", abstract: "Deny a request: the device gets nothing.")
        @OptionGroup var options: Options
        @Argument(help: "The request's ID (see 'pair list').") var id: String

        func run() throws {
            _ = try options.send(["command": "deny", "id": .string(id.uppercased())])
            print("Denied \(id.uppercased()).")
        }
    }

    struct OpenCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "open", abstract: "Open a pairing window.")
        @OptionGroup var options: Options
        @Option(help: "How long, in minutes (1–15; default pairing.window_minutes).") var minutes: Int?
        @Flag(help: "Also accept EmonESP's legacy (unencrypted) requests.") var legacy = false

        func run() throws {
            var request: JSON = ["command": "open", "legacy": .bool(legacy)]
            if let minutes { request["minutes"] = .int(minutes) }
            let status = try options.send(request)
            print(PromptCommand.describeWindow(status))
        }
    }

    struct CloseCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "close", abstract: "Close the pairing window now.")
        @OptionGroup var options: Options

        func run() throws {
            print(PromptCommand.describeWindow(try options.send(["command": "close"])))
        }
    }

    struct DevicesCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "devices", abstract: "Paired devices.")
        @OptionGroup var options: Options
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try options.printList(
                "devices", json: json, empty: "No paired devices.",
                header: ["DEVICE", "NAME", "IP", "MODE", "TOPICS", "STATE", "PAIRED"]
            ) { device in
                [
                    device["id"]?.stringValue ?? "", device["name"]?.stringValue ?? "", device["ip"]?.stringValue ?? "",
                    device["mode"]?.stringValue ?? "", (device["topic_prefix"]?.stringValue ?? "") + "/#",
                    device["state"]?.stringValue ?? "", device["paired_at"]?.stringValue ?? "",
                ]
            }
        }
    }

    struct RevokeCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke", abstract: "Revoke a device: its credentials stop working at once.")
        @OptionGroup var options: Options
        @Argument(help: "The device (its id, broker username or name; see 'pair devices').") var device: String

        func run() throws {
            _ = try options.send(["command": "revoke", "device": .string(device)])
            print("Revoked \(device): its broker account is gone and it was disconnected.")
        }
    }

    struct StatusCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status", abstract: "The pairing window and counts.")
        @OptionGroup var options: Options

        func run() throws {
            let status = try options.send(["command": "status"])
            print(PromptCommand.describeWindow(status))
            print(
                "Pending requests: \(status["pending"]?.intValue ?? 0); paired devices: \(status["devices"]?.intValue ?? 0)"
            )
            print("HTTPS certificate: \(status["fingerprint"]?.stringValue ?? "?")")
        }
    }
}

/// The interactive prompt.
struct PromptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prompt", abstract: "Interactive pairing prompt (the default).")
    @OptionGroup var options: PairCommand.Options

    enum Input: Sendable {
        case event(JSON)
        case line(String)
        case bridgeGone
        case inputClosed
    }

    func run() async throws {
        let (watcher, configuration) = try options.connect()
        let (commands, _) = try options.connect()
        do {
            try watcher.watch()
        } catch {
            throw Failure("\(error)")
        }
        let (inputs, sink) = AsyncStream.makeStream(of: Input.self)
        Thread {
            while let event = watcher.nextEvent() { sink.yield(.event(event)) }
            sink.yield(.bridgeGone)
        }.start()
        Thread {
            while let line = readLine() { sink.yield(.line(line)) }
            sink.yield(.inputClosed)
        }.start()

        var queue: [JSON] = []
        var asking: JSON?
        var offeredWindow = false
        var awaitingWindowAnswer = false
        var awaitingLegacyAnswer = false

        func say(_ text: String) {
            FileHandle.standardOutput.write(Data((text + "\n").utf8))
        }
        func ask(_ text: String) {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        func askNext() {
            guard asking == nil, !awaitingWindowAnswer, !awaitingLegacyAnswer, !queue.isEmpty else { return }
            let request = queue.removeFirst()
            asking = request
            say("")
            say("Pairing request \(request["id"]?.stringValue ?? "?")")
            say("  name:  \(request["name"]?.stringValue ?? "?")")
            say(
                "  ip:    \(request["ip"]?.stringValue ?? "?")"
                    + (request["mac"]?.stringValue.map { "   mac: \($0)" } ?? ""))
            let mode = request["mode"]?.stringValue == "secure" ? "secure (HTTPS)" : "legacy EmonESP (plain HTTP)"
            say("  mode:  \(mode)   age: \(request["age"]?.intValue ?? 0) s")
            if let code = request["verification_code"]?.stringValue {
                say("  code:  \(code)   (allow only if the device shows the same code)")
            }
            ask("Allow \(request["name"]?.stringValue ?? "this device")? [a]llow / [d]eny / [s]kip: ")
        }
        func send(_ request: JSON) -> JSON? {
            do {
                return try commands.send(request)
            } catch {
                say("error: \(error)")
                return nil
            }
        }

        for await input in inputs {
            switch input {
            case .bridgeGone:
                say("\nThe bridge stopped.")
                return
            case .inputClosed:
                return
            case .event(let event):
                let data = event["data"] ?? .null
                switch event["event"]?.stringValue {
                case "snapshot":
                    say("tradfri-bridge pairing. HTTPS certificate \(data["fingerprint"]?.stringValue ?? "?")")
                    say(Self.describeWindow(data))
                    queue.append(contentsOf: data["pending_requests"]?.arrayValue ?? [])
                    if data["window"]?.isNull ?? true, !offeredWindow {
                        offeredWindow = true
                        awaitingWindowAnswer = true
                        ask("Open a pairing window for \(configuration.pairing.windowMinutes) minutes? [Y/n]: ")
                    }
                case "requested":
                    queue.append(data)
                case "window":
                    say("\n" + Self.describeWindow(data))
                case "allowed":
                    say(
                        "\nAllowed \(data["name"]?.stringValue ?? "?") as device \(data["device"]?.stringValue ?? "?"); it has \(data["seconds_to_fetch"]?.intValue ?? 60) s to collect its credentials."
                    )
                case "denied":
                    say("\nDenied \(data["name"]?.stringValue ?? "?").")
                case "fetched":
                    say("\n\(data["name"]?.stringValue ?? "?") collected its credentials.")
                case "connected":
                    say(
                        "\n\(data["name"]?.stringValue ?? "?") (\(data["device"]?.stringValue ?? "?")) connected to the broker."
                    )
                case "expired":
                    let unfetched = data["unfetched"] == true
                    say(
                        "\n\(unfetched ? "Credentials not collected in time for" : "Request expired:") \(data["name"]?.stringValue ?? "?")."
                    )
                    if asking?["id"] == data["id"] { asking = nil }
                    queue.removeAll { $0["id"] == data["id"] }
                case "revoked":
                    say("\nRevoked \(data["name"]?.stringValue ?? "?").")
                default:
                    break
                }
                askNext()
            case .line(let line):
                let answer = line.trimmingCharacters(in: .whitespaces).lowercased()
                if answer == "q" || answer == "quit" { return }
                if awaitingWindowAnswer {
                    awaitingWindowAnswer = false
                    if answer.isEmpty || answer.hasPrefix("y") {
                        if configuration.pairing.legacy {
                            awaitingLegacyAnswer = true
                            ask("Also accept EmonESP's legacy (unencrypted) requests? [y/N]: ")
                            continue
                        }
                        if let status = send(["command": "open"]) { say(Self.describeWindow(status)) }
                    }
                } else if awaitingLegacyAnswer {
                    awaitingLegacyAnswer = false
                    if let status = send(["command": "open", "legacy": .bool(answer.hasPrefix("y"))]) {
                        say(Self.describeWindow(status))
                    }
                } else if let request = asking, let id = request["id"] {
                    switch answer.first {
                    case "a", "y":
                        asking = nil
                        _ = send(["command": "allow", "id": id])
                    case "d", "n":
                        asking = nil
                        _ = send(["command": "deny", "id": id])
                    case "s":
                        asking = nil
                        queue.append(request)
                    default:
                        ask("Please answer a (allow), d (deny) or s (skip): ")
                        continue
                    }
                }
                askNext()
            }
        }
    }

    static func describeWindow(_ status: JSON) -> String {
        guard let window = status["window"], !window.isNull else {
            return "The pairing window is closed."
        }
        let seconds = window["seconds_left"]?.intValue ?? 0
        let legacy = window["legacy"] == true ? " (EmonESP legacy requests accepted too)" : ""
        return "The pairing window is open for \(seconds / 60) min \(seconds % 60) s\(legacy)."
    }

    static func row(_ request: JSON) -> [String] {
        [
            request["id"]?.stringValue ?? "", request["name"]?.stringValue ?? "", request["ip"]?.stringValue ?? "",
            request["mac"]?.stringValue ?? "-", request["mode"]?.stringValue ?? "",
            "\(request["age"]?.intValue ?? 0) s",
            request["verification_code"]?.stringValue ?? "-",
        ]
    }
}
