import HubModel
import NIOCore
import NIOEmbedded
import TradfriModel

@testable import TradfriBridge

/// What a client writes to the control socket, split into lines by the daemon's own decoder
/// (`ControlLineDecoder` in a NIO pipeline, on an embedded channel), each line read as
/// `ControlServer` reads it and answered by a pairing service.
struct ControlSocketTarget: FuzzTarget {
    static let name = "control-socket"

    func run(_ input: [UInt8]) {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(ControlLineDecoder()))
        // A line longer than 1 MiB closes the connection: the lines before it still count.
        _ = try? channel.writeInbound(ByteBuffer(bytes: input))
        _ = try? channel.finish()
        var requests: [JSON] = []
        while let line = try? channel.readInbound(as: ByteBuffer.self) {
            // As ControlServer.serve: a line that is not a JSON object gets an error; `watch`
            // streams events instead of answering (not parsing: left out).
            guard let request = ControlServer.request(from: line), request["command"] != "watch" else { continue }
            requests.append(request)
        }
        guard !requests.isEmpty else { return }
        let service = PairingServices.make()
        for request in requests {
            let answer = Fuzz.wait { await service.control(request) }
            _ = answer.description
        }
        // Its timers (a window's end, a grant's expiry) would otherwise sleep on for minutes.
        Fuzz.wait { await service.stop() }
    }
}
