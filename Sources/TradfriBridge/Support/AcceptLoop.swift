import Dispatch
import Foundation

/// A non-blocking listening socket served on a queue of its own: `onReadable` runs whenever
/// connections are waiting (it accepts them until `accept` says there are no more). `stop()`
/// closes the socket, then runs `onClose`. Used by the pairing HTTP(S) endpoints and the control
/// socket.
final class AcceptLoop: @unchecked Sendable {
    // @unchecked: `source` is guarded by `lock`; the rest is immutable.
    let descriptor: Int32
    private let queue: DispatchQueue
    private let lock = NSLock()
    private var source: (any DispatchSourceRead)?

    /// Takes ownership of `descriptor`, a bound, listening socket.
    init(descriptor: Int32, label: String) {
        self.descriptor = descriptor
        queue = DispatchQueue(label: label)
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    func start(onReadable: @escaping @Sendable () -> Void, onClose: @escaping @Sendable () -> Void = {}) {
        let source = DispatchSource.makeReadSource(fileDescriptor: descriptor, queue: queue)
        source.setEventHandler(handler: onReadable)
        let descriptor = self.descriptor
        source.setCancelHandler {
            close(descriptor)
            onClose()
        }
        lock.withLock { self.source = source }
        source.resume()
    }

    func stop() {
        lock.withLock {
            source?.cancel()
            source = nil
        }
    }
}
