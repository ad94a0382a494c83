import Logging
import Synchronization
import SystemdNotify

/// The bridge's line to systemd (`$NOTIFY_SOCKET`), shared by the status feature (READY, STATUS
/// on connection changes, STOPPING) and the watchdog (WATCHDOG, STATUS refreshes). A `STATUS=`
/// text is sent only when it differs from the last one sent; a failure to send is logged once.
/// Thread-safe.
public final class SystemdChannel: Sendable {
    private struct State {
        var status: String?
        var failureLogged = false
    }

    private let socket: NotifySocket
    private let state = Mutex(State())
    private let logger = Logger(label: "systemd")

    public init(socket: NotifySocket) {
        self.socket = socket
    }

    /// Sends `messages`, with `status` if it changed since the last one sent (nothing at all when
    /// `messages` is empty and the status is unchanged).
    public func send(_ messages: [NotifySocket.Message], status: String? = nil) {
        var all = messages
        if let status {
            let changed = state.withLock { state in
                guard state.status != status else { return false }
                state.status = status
                return true
            }
            if changed { all.append(.status(status)) }
        }
        guard !all.isEmpty else { return }
        do {
            try socket.send(all)
        } catch {
            let first = state.withLock { state in
                defer { state.failureLogged = true }
                return !state.failureLogged
            }
            if first {
                logger.warning(
                    "cannot notify systemd", metadata: ["socket": "\(socket)", "error": "\(error)"])
            }
        }
    }
}
