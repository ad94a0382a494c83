import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// A CoAP client that is not libcoap's against the simulator binary: aiocoap with its tinydtls
/// transport (DTLSSocket), both from PyPI, as pytradfri and Home Assistant talk to a gateway. It
/// goes through the whole surface: pairing, every device, group and scene, observations
/// registered with Observe 0 and with 30 (a gateway takes any value but 1), changes made by
/// other clients, PUTs, a scene, a reboot.
@Suite struct AiocoapInteropTests {
    static let code = "AIOCOAPTESTCODE1"

    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// `Tests/Scripts/aiocoap_client.py`, run by the Python that `scripts/aiocoap-env.sh` makes
    /// (from an empty cache it builds DTLSSocket, about 15 s).
    final class Aiocoap: Sendable {
        let process: ChildProcess

        init(port: UInt16) async throws {
            let environment = try await runCommand(
                repository.appendingPathComponent("scripts/aiocoap-env.sh").path, [], within: .seconds(900))
            let python = try #require(environment.output.split(separator: "\n").last.map(String.init))
            process = try ChildProcess(
                python,
                [repository.appendingPathComponent("Tests/Scripts/aiocoap_client.py").path, "127.0.0.1", "\(port)"],
                name: "aiocoap", interactive: true)
            try await event("ready")
        }

        /// Sends `command` and returns its answer (an error answer fails the test).
        @discardableResult
        func run(_ command: String, within limit: Duration = .seconds(20)) async throws -> JSON {
            let mark = process.lineCount
            process.send(command)
            let answer = try await event(nil, after: mark, within: limit) { $0["command"] == .string(command) }
            #expect(answer["event"] != "error", "\(command): \(answer)")
            return answer
        }

        /// The first JSON line from `after` on whose event is `name` (any event when nil) and that
        /// satisfies `predicate`.
        @discardableResult
        func event(
            _ name: String?, after: Int = 0, within limit: Duration = .seconds(10),
            where predicate: @escaping @Sendable (JSON) -> Bool = { _ in true }
        ) async throws -> JSON {
            let line = try await process.waitForLine(within: limit, "aiocoap event \(name ?? "")", after: after) {
                guard let json = try? JSON(parsing: $0) else { return false }
                return (name == nil || json["event"] == .string(name!)) && predicate(json)
            }
            return try JSON(parsing: line)
        }

        func events(after: Int) -> [JSON] {
            process.output.dropFirst(after).compactMap { try? JSON(parsing: $0) }
        }

        func quit() async {
            process.send("quit")
            _ = try? await process.waitForExit()
            await process.stop()
        }
    }

    /// The payload of an answer or notification, parsed.
    static func body(_ answer: JSON) throws -> JSON {
        try JSON(parsing: try #require(answer["payload"]?.stringValue))
    }

    static func ids(_ answer: JSON) throws -> [Int] {
        try #require(try body(answer).arrayValue).compactMap(\.intValue)
    }

    @Test func aiocoapPairsReadsEverythingObservesWithAnyValueWritesAndSurvivesAReboot() async throws {
        // 250 more lights make the device list larger than one CoAP block (block-wise reads and
        // notifications).
        let simulator = try ChildProcess(
            "tradfri-gateway-sim",
            ["--listen", "127.0.0.1:0", "--security-code", Self.code, "--reboot-delay", "1", "--lights", "250"],
            interactive: true)
        let ready = try await simulator.waitForLine(containing: "listening on")
        let port = try #require(
            ready.split(separator: " ").first { $0.hasPrefix("127.0.0.1:") }?.split(separator: ":").last
                .flatMap { UInt16($0) })
        func control(_ command: String) async throws {
            let mark = simulator.lineCount
            simulator.send(command)
            let answer = try await simulator.waitForLine(after: mark) { $0.hasPrefix("ok ") || $0.hasPrefix("error:") }
            #expect(answer.hasPrefix("ok "), "\(command): \(answer)")
        }
        let client = try await Aiocoap(port: port)

        // Pairing: Client_identity with the security code may only create an identity.
        try await client.run("connect Client_identity \(Self.code)")
        #expect(try await client.run("get 15001")["code"] == "4.01")
        let paired = try await client.run(#"post 15011/9063 {"9090":"aiocoap-client"}"#)
        #expect(paired["code"] == "2.01")
        let psk = try #require(try Self.body(paired)["9091"]?.stringValue)
        #expect(try Self.body(paired)["9029"] == "1.19.32")
        #expect(try await client.run(#"post 15011/9063 {"9090":"aiocoap-client"}"#)["code"] == "4.00")
        try await client.run("connect aiocoap-client \(psk)")

        // Every device, group and scene, and the gateway.
        let devices = try Self.ids(try await client.run("get 15001"))
        #expect(devices.count == 260 && devices.contains(65543))
        for id in devices {
            let device = try await client.run("get 15001/\(id)")
            let read = try Self.body(device)["9003"]
            #expect(device["code"] == "2.05" && read == .int(id), "\(device)")
        }
        let groups = try Self.ids(try await client.run("get 15004"))
        #expect(groups.contains(131073))
        var scenes: [Int: [Int]] = [:]
        for id in groups {
            #expect(try Self.body(try await client.run("get 15004/\(id)"))["9003"] == .int(id))
        }
        for group in try Self.ids(try await client.run("get 15005")) {
            scenes[group] = try Self.ids(try await client.run("get 15005/\(group)"))
            for scene in scenes[group] ?? [] {
                #expect(try Self.body(try await client.run("get 15005/\(group)/\(scene)"))["9003"] == .int(scene))
            }
        }
        #expect(scenes[131073]?.count == 3)
        #expect(try Self.body(try await client.run("get 15011/15012"))["9081"] == "7e11515204400072")

        // Observations registered with Observe 0 and with 30 both answer with a sequence number.
        for (name, path, value) in [
            ("plug", "15001/65543", 0), ("bulb", "15001/65537", 30), ("list", "15001", 30),
            ("blind", "15001/65546", 30), ("gateway-events", "15006", 30),
        ] {
            let registered = try await client.run("observe \(name) \(path) \(value)")
            #expect(registered["code"] == "2.05" && registered["observe"]?.intValue != nil, "\(registered)")
        }

        // Another client (the IKEA app) switches the plug; the simulator's remote dims the bulb.
        let app = try await IKEAApp(port: port)
        var mark = client.process.lineCount
        try await app.put("15001/65543", #"{"3312":[{"5850":1}]}"#)
        try await client.event("notification", after: mark) {
            $0["name"] == "plug" && (try? Self.body($0))?["3312"]?[0]?["5850"] == 1
        }
        try await control(#"change 65537 {"3311":[{"5850":1,"5851":77}]}"#)
        let dimmed = try await client.event("notification", after: mark) {
            $0["name"] == "bulb" && (try? Self.body($0))?["3311"]?[0]?["5851"] == 77
        }
        #expect((dimmed["observe"]?.intValue ?? 0) > 2)

        // A device joins: the list's notification is larger than a block and arrives whole.
        try await control(#"add-device {"9003":70000,"9001":"New bulb","5750":2,"3311":[{"5850":0,"5851":1}]}"#)
        let list = try await client.event("notification", after: mark) { $0["name"] == "list" }
        #expect(try Self.ids(list).count == 261 && (try Self.ids(list)).contains(70000))

        // Deregistration (Observe 1, same token) ends the observation; later changes are not sent.
        try await client.run("deregister bulb")
        try await client.event("ended", after: mark) { $0["name"] == "bulb" }
        mark = client.process.lineCount
        try await control(#"change 65537 {"3311":[{"5851":99}]}"#)
        // aiocoap PUTs the plug; its Observe-0 notification comes after any for the bulb would.
        #expect(try await client.run(#"put 15001/65543 {"3312":[{"5850":0}]}"#)["code"] == "2.04")
        try await client.event("notification", after: mark) {
            $0["name"] == "plug" && (try? Self.body($0))?["3312"]?[0]?["5850"] == 0
        }
        #expect(!client.events(after: mark).contains { $0["name"] == "bulb" }, "\(client.events(after: mark))")

        // A group PUT switches its members; a scene sets each light as the scene says.
        #expect(try await client.run(#"put 15004/131073 {"5850":0}"#)["code"] == "2.04")
        let members = try #require(
            try Self.body(try await client.run("get 15004/131073"))["9018"]?["15002"]?["9003"]?.arrayValue)
        for member in members.compactMap(\.intValue) {
            let device = try Self.body(try await client.run("get 15001/\(member)"))
            if let light = device["3311"]?[0] { #expect(light["5850"] == 0, "\(member)") }
        }
        let scene = try #require(scenes[131073]?.first)
        let settings = try #require(
            try Self.body(try await client.run("get 15005/131073/\(scene)"))["15013"]?.arrayValue)
        #expect(try await client.run(#"put 15004/131073 {"5850":1,"9039":\#(scene)}"#)["code"] == "2.04")
        for setting in settings {
            let id = try #require(setting["9003"]?.intValue)
            let light = try Self.body(try await client.run("get 15001/\(id)"))["3311"]?[0]
            #expect(light?["5850"] == setting["5850"] && light?["5851"] == setting["5851"], "\(id): \(setting)")
        }

        // A removed device ends its observation with 4.04 (also one registered with 30).
        mark = client.process.lineCount
        try await control("remove-device 65546")
        let gone = try await client.event("notification", after: mark) { $0["name"] == "blind" }
        #expect(gone["code"] == "4.04")
        try await client.event("ended", after: mark) { $0["name"] == "blind" }

        // Reboot: the 1003 notification; then, as with a real gateway, the client starts afresh
        // (a new DTLS session: observations do not survive a reboot), reads and observes again.
        mark = client.process.lineCount
        #expect(try await client.run("post 15011/9030")["code"] == "2.01")
        let rebooting = try await client.event("notification", after: mark) { $0["name"] == "gateway-events" }
        #expect(try Self.body(rebooting)[0]?["9015"] == 1003)
        #expect(try await client.run("retry-get 15001 20", within: .seconds(30))["code"] == "2.05")
        try await client.run("observe list-again 15001 30")
        mark = client.process.lineCount
        try await control("remove-device 70000")
        let after = try await client.event("notification", after: mark) { $0["name"] == "list-again" }
        #expect(try Self.ids(after).count == 259)

        #expect(!client.events(after: 0).contains { $0["event"] == "error" }, "\(client.events(after: 0))")
        await client.quit()
        await simulator.stop()
    }

    /// libcoap's coap-client-openssl with an identity of its own: another client of the gateway.
    struct IKEAApp {
        let port: UInt16
        let identity: String
        let key: String

        init(port: UInt16) async throws {
            self.port = port
            identity = "ikea-app-\(UUID().uuidString.prefix(6))"
            let answer = try await runCommand(
                "coap-client-openssl",
                [
                    "-B", "10", "-u", "Client_identity", "-k", AiocoapInteropTests.code, "-m", "post", "-e",
                    #"{"9090":"\#(identity)"}"#, "coaps://127.0.0.1:\(port)/15011/9063",
                ]
            ).output
            key = try #require(
                try JSON(parsing: answer.trimmingCharacters(in: .whitespacesAndNewlines))["9091"]?.stringValue)
        }

        func put(_ path: String, _ body: String) async throws {
            try await runCommand(
                "coap-client-openssl",
                ["-B", "10", "-u", identity, "-k", key, "-m", "put", "-e", body, "coaps://127.0.0.1:\(port)/\(path)"])
        }
    }
}
