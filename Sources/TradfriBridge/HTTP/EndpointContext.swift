import Hummingbird
import NIOCore

/// What a handler of the bridge's HTTP endpoints knows about a request besides the request
/// itself: who sent it and where it arrived (as the TCP connection shows them), and, on the web
/// page, the administrator's session once the session middleware has found it.
struct EndpointContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The peer's IP address ("192.168.1.41", "::1"); empty if the socket no longer knows it.
    let peer: String
    /// The address the peer reached us on: the bridge's address on the peer's network.
    let localAddress: String
    /// Whether the connection is HTTPS.
    var secure = false
    /// The logged-in administrator's session (web page only).
    var session: WebSession?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = Self.ip(source.channel.remoteAddress)
        localAddress = Self.ip(source.channel.localAddress)
    }

    /// Request bodies the endpoints read are small JSON objects.
    var maxUploadSize: Int { 8192 }

    private static func ip(_ address: SocketAddress?) -> String {
        guard let text = address?.ipAddress else { return "" }
        // An IPv4 peer on a dual-stack socket.
        return text.hasPrefix("::ffff:") && text.contains(".") ? String(text.dropFirst(7)) : text
    }
}
