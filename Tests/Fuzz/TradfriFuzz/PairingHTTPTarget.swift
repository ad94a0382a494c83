@testable import TradfriBridge

/// Bytes sent to the pairing endpoints, decoded as the server decodes them (`HTTPRequests`: NIO's
/// HTTP/1 decoder), read by the endpoints' adapter (`PairingEndpoints.respond`: body limit, path)
/// and answered by the secure (HTTPS) and the EmonESP (plain HTTP) endpoint of a pairing service
/// with an open window.
struct PairingHTTPTarget: FuzzTarget {
    static let name = "pairing-http"

    func run(_ input: [UInt8]) {
        let requests = HTTPRequests.decode(input)
        guard !requests.isEmpty else { return }
        let service = PairingServices.make()
        for decoded in requests {
            _ = Fuzz.wait {
                try? await PairingEndpoints.respond(decoded.request, decoded.context) { await service.secure($0) }
            }
            _ = Fuzz.wait {
                try? await PairingEndpoints.respond(decoded.request, decoded.context) { await service.legacy($0) }
            }
        }
        Fuzz.wait { await service.stop() }
    }
}
