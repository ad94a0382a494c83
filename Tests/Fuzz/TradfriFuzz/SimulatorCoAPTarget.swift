import Foundation

@testable import CoAP
@testable import GatewaySimulator

/// A request as the gateway simulator receives it from a client over DTLS: byte 0 picks the
/// method, byte 1 the identity (the bootstrap identity or a paired one), then the path up to a
/// newline, then the payload. A simulator of the demo home is made for every input.
struct SimulatorCoAPTarget: FuzzTarget {
    static let name = "simulator-coap"
    static let methods: [CoAPMethod] = [.get, .post, .put, .delete]

    func run(_ input: [UInt8]) {
        guard input.count >= 2 else { return }
        let method = Self.methods[Int(input[0]) % Self.methods.count]
        let identity = input[1] % 2 == 0 ? "Client_identity" : "fuzzer"
        let (path, payload) = Fuzz.firstLine(Array(input[2...]))
        let request = CoAPRequest(
            method: method, path: path ?? "15001/65537", payload: payload, identity: identity,
            peer: "127.0.0.1:40000", observe: false, messageID: 1)
        Fuzz.wait { @CoAPActor in
            var configuration = GatewaySimulator.Configuration(securityCode: "FUZZFUZZFUZZFUZZ")
            configuration.blindSpeed = 1000
            guard let simulator = try? GatewaySimulator(configuration) else { fatalError("cannot make a simulator") }
            _ = simulator.handle(request)
            _ = simulator.handle(
                CoAPRequest(
                    method: .get, path: request.path, payload: [], identity: identity,
                    peer: "127.0.0.1:40000", observe: false, messageID: 2))
            simulator.stop()
        }
    }
}
