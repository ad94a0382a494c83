@testable import TradfriBridge

/// A request to the pairing endpoints, as received on the connection: parsed, then handled by
/// the secure (HTTPS) endpoint and by the EmonESP (plain HTTP) one.
struct PairingHTTPTarget: FuzzTarget {
    static let name = "pairing-http"

    func run(_ input: [UInt8]) {
        guard case .request(let request) = HTTPRequestParser.parse(input, peer: "192.0.2.10") else { return }
        let service = PairingServices.make()
        _ = Fuzz.wait { await service.secure(request) }
        _ = Fuzz.wait { await service.legacy(request) }
        Fuzz.wait { await service.stop() }
    }
}
