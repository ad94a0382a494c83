import Foundation
import MQTT
import TestSupport
import Testing

/// TLS to the broker: certificates from a throwaway CA made with the openssl command.
@Suite struct MQTTTLSTests {
    /// A CA, a broker certificate for 127.0.0.1 (and localhost), one for another name, and one for
    /// the name localhost alone, in a temporary directory.
    struct Certificates {
        let directory: URL
        var caFile: String { directory.appendingPathComponent("ca.crt").path }
        var otherCAFile: String { directory.appendingPathComponent("other-ca.crt").path }

        static func make() async throws -> Certificates {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "mqtt-tls-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
            let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            for ca in ["ca", "other-ca"] {
                try await runCommand(
                    "openssl",
                    ["req", "-x509"] + ec + [
                        "-keyout", path("\(ca).key"), "-out", path("\(ca).crt"), "-days", "1", "-subj",
                        "/CN=Test \(ca)",
                    ])
            }
            for (name, names) in [
                ("broker", "IP:127.0.0.1,DNS:localhost"), ("elsewhere", "DNS:elsewhere.example"),
                ("named", "DNS:localhost"),
            ] {
                try "subjectAltName=\(names)\n".write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
                try await runCommand(
                    "openssl",
                    ["req"] + ec + [
                        "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=\(name)",
                    ])
                try await runCommand(
                    "openssl",
                    [
                        "x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"),
                        "-CAcreateserial", "-out", path("\(name).crt"), "-days", "1", "-extfile", path("\(name).ext"),
                    ])
            }
            return Certificates(directory: directory)
        }

        /// Broker options adding a TLS listener on `port` that presents certificate `name`.
        func brokerOptions(tlsPort port: UInt16, certificate name: String) -> MosquittoBroker.Options {
            MosquittoBroker.Options(
                extraConfiguration: """
                    listener \(port) 127.0.0.1
                    cafile \(caFile)
                    certfile \(directory.appendingPathComponent("\(name).crt").path)
                    keyfile \(directory.appendingPathComponent("\(name).key").path)
                    """)
        }

        func remove() { try? FileManager.default.removeItem(at: directory) }
    }

    @Test func connectsOverTLSWithTheBrokersCA() async throws {
        let certificates = try await Certificates.make()
        defer { certificates.remove() }
        let tlsPort = freePort()
        let broker = try await MosquittoBroker(certificates.brokerOptions(tlsPort: tlsPort, certificate: "broker"))
        let watcher = try await broker.subscriber(["-t", "secure", "-v"])
        let (client, _) = try await connectedClient(
            configuration(for: broker, port: tlsPort) {
                $0.tls = MQTTTLSConfiguration(caFile: certificates.caFile)
            })
        #expect(client.configuration.description.hasPrefix("mqtts://"))
        try await client.publish(
            MQTTMessage(topic: "secure", text: "over TLS", qos: .atLeastOnce), acknowledgedWithin: .seconds(5))
        try await watcher.waitForLine(containing: "secure over TLS")
        await client.disconnect()
    }

    @Test func brokerSignedByAnotherCAIsRejectedAndRetried() async throws {
        let certificates = try await Certificates.make()
        defer { certificates.remove() }
        let tlsPort = freePort()
        let broker = try await MosquittoBroker(certificates.brokerOptions(tlsPort: tlsPort, certificate: "broker"))
        let client = try MQTTClient(
            configuration(for: broker, port: tlsPort) {
                $0.tls = MQTTTLSConfiguration(caFile: certificates.otherCAFile)
            })
        let events = EventLog(client)
        try client.start()
        for attempt in ["first", "second"] {
            let error = try await events.next("the \(attempt) TLS failure") { event -> MQTTError? in
                if case .connectionFailed(let error) = event { return error }
                return nil
            }
            #expect(error.description.contains("127.0.0.1:\(tlsPort)"), "\(error)")
            #expect(error.description.contains("A TLS error occurred (certificate verify failed)"), "\(error)")
        }
        #expect(!client.isConnected)
        await client.disconnect()
    }

    /// A broker configured by name: the client looks the name up itself, and the certificate is
    /// still checked against the name (this one names no address), not the address found.
    @Test func aBrokerConfiguredByNameIsVerifiedAgainstThatName() async throws {
        let certificates = try await Certificates.make()
        defer { certificates.remove() }
        let tlsPort = freePort()
        let broker = try await MosquittoBroker(certificates.brokerOptions(tlsPort: tlsPort, certificate: "named"))
        let watcher = try await broker.subscriber(["-t", "named", "-v"])
        let (client, _) = try await connectedClient(
            configuration(for: broker, port: tlsPort) {
                $0.host = "localhost"
                $0.tls = MQTTTLSConfiguration(caFile: certificates.caFile)
            })
        #expect(client.configuration.description.hasPrefix("mqtts://localhost:"))
        try await client.publish(
            MQTTMessage(topic: "named", text: "by name", qos: .atLeastOnce), acknowledgedWithin: .seconds(5))
        try await watcher.waitForLine(containing: "named by name")
        await client.disconnect()
    }

    @Test func hostNameMismatchIsRejectedUnlessInsecure() async throws {
        let certificates = try await Certificates.make()
        defer { certificates.remove() }
        let tlsPort = freePort()
        let broker = try await MosquittoBroker(certificates.brokerOptions(tlsPort: tlsPort, certificate: "elsewhere"))

        let strict = try MQTTClient(
            configuration(for: broker, port: tlsPort) {
                $0.tls = MQTTTLSConfiguration(caFile: certificates.caFile)
            })
        let strictEvents = EventLog(strict)
        try strict.start()
        let error = try await strictEvents.next("a TLS failure") { event -> MQTTError? in
            if case .connectionFailed(let error) = event { return error }
            return nil
        }
        #expect(error.description.contains("host name verification failed"), "\(error)")
        await strict.disconnect()

        let (lenient, _) = try await connectedClient(
            configuration(for: broker, port: tlsPort) {
                $0.tls = MQTTTLSConfiguration(caFile: certificates.caFile, insecure: true)
            })
        await lenient.disconnect()
    }
}
