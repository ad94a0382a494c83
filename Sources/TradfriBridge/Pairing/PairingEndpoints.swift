import Hummingbird
import NIOCore

/// One request to a pairing endpoint as `PairingService` judges it: no sockets and no HTTP
/// library, so the rules are tested (and fuzzed) on their own.
struct PairingRequest: Sendable {
    var method: String
    /// Without the query.
    var path: String
    var body: [UInt8]
    /// The peer's IP address (IPv4 dotted, or IPv6), as the TCP connection shows it.
    var peer: String
    /// The address the peer reached us on (the bridge's address on the peer's network).
    var localAddress: String = ""
}

/// What a pairing endpoint answers.
struct PairingResponse: Sendable, Equatable {
    var status: Int
    var contentType: String
    var body: [UInt8]

    init(status: Int, contentType: String = "text/plain", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    /// A plain-text answer with no trailing newline (EmonESP compares bodies byte for byte).
    static func text(_ status: Int, _ text: String) -> PairingResponse {
        PairingResponse(status: status, body: Array(text.utf8))
    }
}

/// The device-facing pairing endpoints on the bridge's HTTP server: the secure API over HTTPS
/// (`pairing.listen`) and EmonESP's legacy request over plain HTTP (`pairing.legacy_listen`).
///
/// Wire behaviour (what devices depend on): bodies of at most 8 KiB (a larger one is a 413
/// "body too large"), every answer with `Content-Type`, `Content-Length`,
/// `Cache-Control: no-store` and `Connection: close`; the status and body are the service's.
enum PairingEndpoints {
    static let maxBody = 8192

    /// Reads the request and hands it to `handle`.
    static func respond(
        _ request: Request, _ context: EndpointContext, _ handle: (PairingRequest) async -> PairingResponse
    ) async throws -> Response {
        var request = request
        let answer: PairingResponse
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBody {
            answer = .text(413, "body too large")
        } else {
            do {
                let body = try await request.collectBody(upTo: maxBody)
                answer = await handle(
                    PairingRequest(
                        method: request.method.rawValue, path: request.uri.path, body: Array(buffer: body),
                        peer: context.peer, localAddress: context.localAddress))
            } catch is NIOTooManyBytesError {
                answer = .text(413, "body too large")
            }
        }
        return response(answer)
    }

    static func response(_ answer: PairingResponse) -> Response {
        var headers: HTTPFields = [.cacheControl: "no-store", .connection: "close"]
        headers[.contentType] = answer.contentType
        return Response(
            status: status(answer.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
    }

    /// The status with its usual reason phrase ("200 OK", not "200").
    static func status(_ code: Int) -> HTTPResponse.Status {
        let known: [HTTPResponse.Status] = [
            .ok, .accepted, .badRequest, .forbidden, .notFound, .methodNotAllowed, .contentTooLarge,
            .tooManyRequests, .serviceUnavailable,
        ]
        return known.first { $0.code == code } ?? HTTPResponse.Status(code: code)
    }
}
