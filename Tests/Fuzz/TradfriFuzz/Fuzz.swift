import Foundation
import Synchronization

/// libFuzzer's entry points for every parser that reads input from outside. One binary holds
/// every target; `TRADFRI_FUZZ_TARGET` picks one (scripts/fuzz.sh runs each in turn):
///
/// | target | what it parses |
/// |---|---|
/// | gateway-model | a gateway payload as a device, group, scene, gateway details, notification list, id list; then the MQTT state made from it |
/// | mqtt-command | an MQTT command: first line the attribute of `…/set/<attribute>` (empty: `…/set`), the rest the payload; then the command for every device and room of the demo home and its gateway writes |
/// | bridge-request | a `bridge/request/<verb>`: first line the verb, the rest the payload |
/// | configuration | the configuration file (YAML) |
/// | pairing-http | a request to the pairing endpoints (HTTP head and body), handled by the secure and the EmonESP endpoint of a pairing service with an open window |
/// | control-socket | the control socket's newline-delimited JSON, read as the daemon reads it, answered by a pairing service |
/// | simulator-coap | a CoAP request as the gateway simulator receives it: byte 0 the method, byte 1 the identity, then the path, a newline and the payload |
///
/// A crash (trap, sanitizer report) is a bug: parsers answer bad input with an error.
@main
enum FuzzMain {
    /// libFuzzer's driver (flags, corpus, iterations) with our callback: SwiftPM gives every
    /// executable a Swift entry point, so libFuzzer's own `main` is not the one that runs.
    static func main() {
        _ = Fuzz.target
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOne))
    }
}

/// One input: runs the chosen target on it. A crash is the finding; the result is always 0.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    Fuzz.target.run(bytes)
    return 0
}

/// `int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *, size_t))`,
/// from libFuzzer (linked by -sanitize=fuzzer). Declared by its symbol name: its arguments are
/// pointers and integers, passed in the same registers by the Swift and the C convention.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

protocol FuzzTarget: Sendable {
    static var name: String { get }
    func run(_ input: [UInt8])
}

enum Fuzz {
    static let all: [(name: String, target: any FuzzTarget)] = [
        (GatewayModelTarget.name, GatewayModelTarget()), (MQTTCommandTarget.name, MQTTCommandTarget()),
        (BridgeRequestTarget.name, BridgeRequestTarget()), (ConfigurationTarget.name, ConfigurationTarget()),
        (PairingHTTPTarget.name, PairingHTTPTarget()), (ControlSocketTarget.name, ControlSocketTarget()),
        (SimulatorCoAPTarget.name, SimulatorCoAPTarget()),
    ]

    /// The target `TRADFRI_FUZZ_TARGET` names; exits with the list when it names none.
    static let target: any FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["TRADFRI_FUZZ_TARGET"] ?? ""
        guard let entry = all.first(where: { $0.name == name }) else {
            let names = all.map(\.name).joined(separator: ", ")
            FileHandle.standardError.write(Data("set TRADFRI_FUZZ_TARGET to one of: \(names)\n".utf8))
            exit(2)
        }
        return entry.target
    }()

    /// Runs `operation` to completion from libFuzzer's synchronous callback.
    static func wait<T: Sendable>(_ operation: @escaping @Sendable () async -> T) -> T {
        let result = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let value = await operation()
            result.withLock { $0 = value }
            done.signal()
        }
        done.wait()
        return result.withLock { $0! }
    }

    /// The text before the first newline, and the bytes after it (no newline: nil and all).
    static func firstLine(_ input: [UInt8]) -> (line: String?, rest: [UInt8]) {
        guard let newline = input.firstIndex(of: 10) else { return (nil, input) }
        return (String(decoding: input[..<newline], as: UTF8.self), Array(input[(newline + 1)...]))
    }
}
