import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Slow-client protection for one HTTP connection: each request (head and body) must arrive
/// whole within `timeout`, or the connection is closed.
///
/// Contract (in the channel pipeline after the HTTP decoder; on the connection's event loop):
/// - The deadline starts when the connection is set up (over HTTPS: before the TLS handshake,
///   which it therefore covers) and again whenever a response ends, for the next request on a
///   kept-alive connection. A client that sends one byte at a time, or nothing, is closed when it
///   runs out; it never holds more than its own connection, which costs no thread.
/// - Once a request has arrived whole there is no deadline until its response ends: a long
///   answer (the web page's live event stream) is not cut off.
/// - On graceful shutdown (`ChannelShouldQuiesceEvent`) a connection that is waiting for a
///   request or still receiving one is closed at once; one being answered finishes its answer.
/// - A response that says `Connection: close` is followed by closing the connection as soon as
///   it is written (the pairing endpoints answer one request per connection, as before).
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    /// A request's head has arrived, its end not yet.
    private var receiving = false
    /// Requests received whole whose responses have not ended.
    private var answering = 0
    /// The response being written said `Connection: close`.
    private var closeAfterResponse = false

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            receiving = true
        case .body:
            break
        case .end:
            receiving = false
            answering += 1
            disarm()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            closeAfterResponse = head.headerFields[.connection]?.lowercased() == "close"
        case .body:
            break
        case .end:
            // An early answer (a refused body) may end before its request did.
            answering = max(answering - 1, 0)
            if closeAfterResponse {
                let written = context.eventLoop.makePromise(of: Void.self)
                written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                if let promise { written.futureResult.cascade(to: promise) }
                context.write(data, promise: written)
                return
            }
            if answering == 0 { arm(context) }
        }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, answering == 0 || receiving {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func arm(_ context: ChannelHandlerContext) {
        disarm()
        let loop = context.eventLoop.assumeIsolated()
        deadline = loop.scheduleTask(in: timeout) { [weak self] in
            self?.deadline = nil
            context.close(promise: nil)
        }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }
}
