import Foundation
import HubModel
import TradfriModel

/// Every request the simulator receives, one JSON line each, for tests and benchmarks:
/// `{"time": <unix seconds>, "method": "PUT", "path": "15001/65537", "identity": "…", "payload": "…"}`.
final class RequestLog: @unchecked Sendable {
    // @unchecked: the handle is only written from the libcoap queue (the simulator's actor).
    private let handle: FileHandle

    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    func record(method: String, path: String, identity: String, payload: [UInt8]) {
        let time = Date().timeIntervalSince1970
        let line: JSON = [
            "time": .double(time), "method": .string(method), "path": .string(path),
            "identity": .string(identity), "payload": .string(String(decoding: payload, as: UTF8.self)),
        ]
        handle.write(Data((line.description + "\n").utf8))
    }
}
