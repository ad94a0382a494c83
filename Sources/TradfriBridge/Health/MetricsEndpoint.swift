import CoAP
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// `GET /metrics` on `metrics.listen` (off unless `metrics.enabled`): the health report in
/// Prometheus' text format (`PrometheusMetrics`). Everything HTTP about it is in this file, on
/// the bridge's `HTTPEndpoint` (Hummingbird); nothing else is served (404), and only GET is
/// answered (405).
///
/// A port that cannot be bound is logged as an error and the bridge runs on without metrics:
/// an optional endpoint never takes the bridge down.
public struct MetricsEndpoint: Service {
    private let health: BridgeHealth
    private let host: String
    private let port: UInt16
    private let logger = Logger(label: "metrics")

    /// - Parameter listen: `HOST:PORT` (IPv4).
    public init(health: BridgeHealth, listen: String) {
        self.health = health
        let (host, port) = splitHostPort(listen, defaultPort: 9464) ?? ("127.0.0.1", 9464)
        self.host = host
        self.port = port
    }

    public func run() async throws {
        let health = self.health
        let endpoint = HTTPEndpoint(
            name: "metrics", host: host, port: Int(port), tls: nil,
            respond: { request, _ in
                guard request.uri.path == "/metrics" else {
                    return Self.text(.notFound, "not found: only /metrics is served")
                }
                guard request.method == .get || request.method == .head else {
                    return Self.text(.methodNotAllowed, "only GET")
                }
                let report = await health.report()
                let body: [UInt8] = request.method == .head ? [] : PrometheusMetrics.render(report)
                return Response(
                    status: .ok, headers: [.contentType: PrometheusMetrics.contentType],
                    body: .init(byteBuffer: ByteBuffer(bytes: body)))
            },
            onListening: { [logger, host] bound in
                logger.info("serving Prometheus metrics", metadata: ["url": "http://\(host):\(bound)/metrics"])
            })
        do {
            try await endpoint.run()
        } catch is CancellationError {
            // A stop while starting: nothing to say.
        } catch {
            logger.error("the metrics endpoint is off: cannot listen", metadata: ["error": "\(error)"])
            try? await gracefulShutdown()
        }
    }

    private static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text + "\n")))
    }
}
