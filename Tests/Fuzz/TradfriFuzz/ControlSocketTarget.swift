import Foundation
import TradfriModel

@testable import TradfriBridge

/// What a client writes to the control socket, read line by line by the daemon's `LineConnection`
/// (through a real socket pair), each line a JSON request answered by a pairing service.
struct ControlSocketTarget: FuzzTarget {
    static let name = "control-socket"

    func run(_ input: [UInt8]) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { fatalError("socketpair") }
        let written = input.withUnsafeBytes { send(fds[1], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        precondition(written == input.count, "the socket took \(written) of \(input.count) bytes")
        close(fds[1])
        let connection = LineConnection(fd: fds[0])
        defer { connection.close() }
        let service = PairingServices.make()
        // As ControlServer.serve: a line that is not a JSON object gets an error; `watch` streams
        // events instead of answering (not parsing: left out).
        while let line = connection.readLine() {
            guard let request = try? JSON(parsing: line), request.objectValue != nil else { continue }
            if request["command"] == "watch" { continue }
            let answer = Fuzz.wait { await service.control(request) }
            _ = answer.description
        }
        // Its timers (a window's end, a grant's expiry) would otherwise sleep on for minutes.
        Fuzz.wait { await service.stop() }
    }
}
