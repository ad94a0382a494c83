import Foundation
import HubModel
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import TradfriModel

/// The daemon's end of the local control channel of `tradfri-bridge pair`: a Unix socket that
/// only its owner (the daemon's user) and root can open (mode 0600, and the peer's uid is checked
/// with SO_PEERCRED). Never a port on the LAN. Served on SwiftNIO's event loops.
///
/// Protocol: one JSON object per line (at most 1 MiB). A request `{"command": "...", ...}` gets
/// one answer `{"ok": true, "data": …}` or `{"ok": false, "error": "…"}`; a line that is not a
/// JSON object gets `{"ok": false, "error": "not a JSON object"}` and the connection goes on.
/// After `{"command":"watch"}` the connection carries events `{"event": "...", "data": …}` until
/// the client closes it.
///
/// `run()` creates the socket, serves until graceful shutdown (then every connection is closed)
/// and removes the socket file.
struct ControlServer: Service {
    typealias Handler = @Sendable (JSON) async -> JSON
    /// Registers a watcher; the watcher's `send` returns false once the client is gone.
    typealias Watch = @Sendable (_ send: @escaping @Sendable (JSON) -> Bool) async -> Void

    let path: String
    let handler: Handler
    let watch: Watch
    var onListening: @Sendable () async -> Void = {}

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func run() async throws {
        let logger = Logger(label: "pairing.control")
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        guard path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
            throw Failure(description: "control socket path too long: \(path)")
        }
        // Created with no access for others, then bound.
        let previous = umask(0o177)
        let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 16)
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ControlLineDecoder()))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            umask(previous)
        } catch {
            umask(previous)
            throw Failure(description: "cannot create the control socket \(path): \(error)")
        }
        chmod(path, 0o600)
        await onListening()
        let (handler, watch) = (self.handler, self.watch)
        try? await cancelWhenGracefulShutdown {
            try await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        group.addTask {
                            await Self.serve(connection, handler: handler, watch: watch, logger: logger)
                        }
                    }
                }
            }
        }
        unlink(path)
    }

    /// One client: its uid is checked, then each line is answered (or events streamed).
    private static func serve(
        _ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, handler: Handler, watch: Watch, logger: Logger
    ) async {
        let credentials: EventLoopFuture<PeerCredentials>? = (connection.channel as? any SocketOptionProvider)?
            .unsafeGetSocketOption(level: .socket, name: .init(rawValue: SO_PEERCRED))
        guard let peer = try? await credentials?.get(), peer.uid == 0 || peer.uid == getuid() else {
            logger.warning("refused a control connection from another user")
            try? await connection.channel.close()
            return
        }
        try? await connection.executeThenClose { inbound, outbound in
            var lines = inbound.makeAsyncIterator()
            while let line = try await lines.next() {
                guard let request = request(from: line) else {
                    try await outbound.write(encode(["ok": false, "error": "not a JSON object"]))
                    continue
                }
                guard request["command"] == "watch" else {
                    try await outbound.write(encode(await handler(request)))
                    continue
                }
                try await outbound.write(encode(["ok": true, "data": [:]]))
                let (events, sink) = AsyncStream.makeStream(of: JSON.self, bufferingPolicy: .bufferingNewest(256))
                await watch { event in
                    if case .terminated = sink.yield(event) { return false }
                    return true
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await event in events { try await outbound.write(encode(event)) }
                    }
                    // Until the client hangs up (it sends nothing more).
                    while try await lines.next() != nil {}
                    group.cancelAll()
                }
                sink.finish()
                return
            }
        }
    }

    /// A line as a request: a JSON object, or nil.
    static func request(from line: ByteBuffer) -> JSON? {
        guard let request = try? JSON(parsing: Array(buffer: line)), request.objectValue != nil else { return nil }
        return request
    }

    private static func encode(_ json: JSON) -> ByteBuffer {
        ByteBuffer(bytes: json.bytes + [10])
    }
}

/// Splits the control channel's byte stream into lines (without their "\n"). A line longer than
/// 1 MiB closes the connection; an unterminated last line is dropped.
struct ControlLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    static let maxLine = 1 << 20

    struct LineTooLong: Error {}

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let line = try Self.nextLine(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while let line = try Self.nextLine(&buffer) { context.fireChannelRead(wrapInboundOut(line)) }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }

    static func nextLine(_ buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > maxLine { throw LineTooLong() }
            return nil
        }
        let length = newline - buffer.readerIndex
        guard length <= maxLine, let line = buffer.readSlice(length: length) else { throw LineTooLong() }
        buffer.moveReaderIndex(forwardBy: 1)
        return line
    }
}

/// `struct ucred` (pid, uid, gid) as SO_PEERCRED fills it; glibc only declares it with _GNU_SOURCE.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}
