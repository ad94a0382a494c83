import CoAP
import Logging
import ServiceLifecycle

/// `GET /metrics` on `metrics.listen` (off unless `metrics.enabled`): the health report in
/// Prometheus' text format (`PrometheusMetrics`). Everything HTTP about it is in this file, on
/// the small server the pairing endpoints use; nothing else is served (404), and only GET is
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
        let server: HTTPServer
        do {
            server = try HTTPServer(host: host, port: port, tls: nil, maxConnections: 4) { request in
                guard request.path == "/metrics" else { return .text(404, "not found: only /metrics is served") }
                guard request.method == "GET" else { return .text(405, "only GET") }
                let report = await health.report()
                return HTTPResponse(
                    status: 200, contentType: PrometheusMetrics.contentType, body: PrometheusMetrics.render(report))
            }
        } catch {
            logger.error("the metrics endpoint is off: cannot listen", metadata: ["error": "\(error)"])
            try? await gracefulShutdown()
            return
        }
        server.start()
        logger.info("serving Prometheus metrics", metadata: ["url": "http://\(host):\(server.port)/metrics"])
        try? await gracefulShutdown()
        server.stop()
    }
}
