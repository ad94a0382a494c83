import Hummingbird
import HummingbirdCore
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

@testable import TradfriBridge

/// Bytes as they arrive on a connection, decoded into requests the way the bridge's server
/// decodes them: NIO's HTTP/1 server pipeline (llhttp, the same header limits as
/// `HTTPEndpoint`) and its HTTP types, on an embedded channel (no sockets), from a peer at
/// 192.0.2.10.
enum HTTPRequests {
    struct Decoded {
        var request: Request
        var context: EndpointContext
    }

    static func decode(_ input: [UInt8], secure: Bool = false) -> [Decoded] {
        let channel = EmbeddedChannel()
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 8192
        limits.maxHeaderListSize = 8192
        limits.maxHeaderFieldCount = 100
        do {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: secure))
            channel.remoteAddress = try SocketAddress(ipAddress: "192.0.2.10", port: 40000)
            channel.localAddress = try SocketAddress(ipAddress: "192.0.2.1", port: 8443)
        } catch {
            fatalError("cannot set up the HTTP pipeline: \(error)")
        }
        defer { _ = try? channel.finish() }
        // A malformed request is refused by the decoder (a 400 from the server): nothing to hand on.
        guard (try? channel.writeInbound(ByteBuffer(bytes: input))) != nil else { return [] }
        var decoded: [Decoded] = []
        var head: HTTPRequest?
        var body = ByteBuffer()
        while let part = try? channel.readInbound(as: HTTPRequestPart.self) {
            switch part {
            case .head(let next):
                head = next
                body.clear()
            case .body(var chunk):
                body.writeBuffer(&chunk)
            case .end:
                guard let request = head else { continue }
                var context = EndpointContext(source: .init(channel: channel, logger: Fuzz.logger))
                context.secure = secure
                decoded.append(Decoded(request: Request(head: request, body: .init(buffer: body)), context: context))
                head = nil
            }
        }
        return decoded
    }
}
