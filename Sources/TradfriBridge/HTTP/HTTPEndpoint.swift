import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// One listening HTTP or HTTPS address of the bridge (the pairing endpoints, the web page),
/// served by Hummingbird on SwiftNIO's shared event loops.
///
/// Contract:
/// - Every connection is served on the event loops; none has a thread of its own, and a slow or
///   silent client holds only its own connection, for at most `requestTimeout` per request
///   (`RequestDeadlineHandler`). Heads are limited to 8 KiB (a larger one is a 400).
/// - `respond` answers each request; an `HTTPResponseError` it throws becomes its response, a
///   request that breaks HTTP itself a 400 (and the connection is closed), anything else a 500.
///   Every response gets `Date`, and `headers` (the caller's policy).
/// - `run()` binds (a failure throws `HTTPEndpoint.BindError`, naming the address), reports the
///   bound port to `onListening`, and serves until graceful shutdown. Then it stops accepting,
///   closes idle and half-received connections at once, lets answers in flight end, and returns
///   within `shutdownGrace` whatever is left (streams that never end are the caller's to end).
struct HTTPEndpoint: Service {
    typealias Respond = @Sendable (Request, EndpointContext) async throws -> Response

    /// For logs: "pairing (HTTPS)", "web page".
    let name: String
    let host: String
    let port: Int
    let tls: TLSConfiguration?
    var requestTimeout: TimeAmount = .seconds(5)
    var shutdownGrace: Duration = .seconds(1)
    /// Added to every response.
    var headers: HTTPFields = [:]
    let respond: Respond
    var onListening: @Sendable (Int) async -> Void = { _ in }

    struct BindError: Error, CustomStringConvertible {
        let description: String
    }

    func run() async throws {
        let logger = Logger(label: "http")
        // Hummingbird's own "server started" line says less than the caller's "ready".
        var serverLogger = logger
        serverLogger.logLevel = max(logger.logLevel, .warning)
        let timeout = requestTimeout
        var http1 = HTTP1Channel.Configuration(additionalChannelHandlers: [RequestDeadlineHandler(timeout: timeout)])
        http1.httpDecoder = .init(maxHeaderFieldSize: 8192, maxHeaderListSize: 8192, maxHeaderFieldCount: 100)
        let builder: HTTPServerBuilder =
            if let tls { try .tls(.http1(configuration: http1), tlsConfiguration: tls) } else {
                .http1(configuration: http1)
            }
        let secure = tls != nil
        let respond = self.respond
        let extraHeaders = headers
        let onListening = self.onListening
        let server = try builder.buildServer(
            configuration: ServerConfiguration(address: .hostname(host, port: port), reuseAddress: true),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: serverLogger,
            responder: { request, writer, channel in
                var context = EndpointContext(source: .init(channel: channel, logger: logger))
                context.secure = secure
                var response: Response
                do {
                    response = try await respond(request, context)
                } catch let error as any HTTPResponseError {
                    response = try error.response(from: request, context: context)
                } catch let error as HTTPParserError {
                    // A body that breaks HTTP itself (bad chunks): the server answers 400 and closes.
                    throw error
                } catch {
                    logger.debug("request failed", metadata: ["error": "\(error)"])
                    response = Response(status: .internalServerError)
                }
                for field in extraHeaders where response.headers[field.name] == nil {
                    response.headers.append(field)
                }
                response.headers[.date] = HTTPDate.now()
                try await writer.write(response: response.head, body: response.body)
            },
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) })
        let (host, port, name) = (self.host, self.port, self.name)
        let grace = shutdownGrace
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await server.run()
                } catch let error as IOError {
                    throw BindError(
                        description:
                            "\(name): cannot listen on \(host):\(port): \(String(cString: strerror(error.errnoCode)))")
                }
            }
            // Whatever has not ended `grace` after graceful shutdown began is cancelled.
            group.addTask {
                try? await gracefulShutdown()
                try await Task.sleep(for: grace)
            }
            try await group.next()
            group.cancelAll()
        }
    }
}

/// The `Date` header's format (RFC 9110 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT").
enum HTTPDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func now() -> String {
        format(time(nil))
    }

    static func format(_ seconds: time_t) -> String {
        var clock = seconds
        var parts = tm()
        gmtime_r(&clock, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
