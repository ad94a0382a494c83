import CTestSupport
@preconcurrency import Dispatch
import Foundation

/// Threads of this process, by name, and waiting for one to end.
public enum ProcessThreads {
    /// The thread ids of this process's threads named `name` (`/proc/self/task/*/comm`).
    public static func ids(named name: String) -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap { task in
            let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)
            return comm?.trimmingCharacters(in: .newlines) == name ? pid_t(task) : nil
        }
    }

    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
    }

    /// Waits until thread `tid` has exited: a thread pidfd becomes readable when it does (an
    /// event from the kernel, no polling). Throws `Unsupported` on kernels before 6.9.
    public static func waitForExit(of tid: pid_t, within limit: Duration) async throws {
        let descriptor = ctestsupport_thread_pidfd(tid)
        if descriptor < 0 {
            if errno == ESRCH { return }  // already gone
            throw Unsupported(description: "thread pidfds (Linux 6.9+): \(String(cString: strerror(errno)))")
        }
        let watch = Watch(descriptor)
        try await withDeadline(limit, "thread \(tid) to exit") {
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in watch.start(continuation) }
            } onCancel: {
                watch.stop()
            }
        }
    }

    /// A read source on the pidfd. Its cancel handler is the one place that closes the descriptor
    /// and resumes the waiter; the thread's exit and the waiter's cancellation both cancel it.
    private final class Watch: @unchecked Sendable {
        // @unchecked: a dispatch source is thread-safe; `source` is set once, before use.
        private let source: any DispatchSourceRead

        init(_ descriptor: Int32) {
            source = DispatchSource.makeReadSource(fileDescriptor: descriptor, queue: .global())
        }

        func start(_ continuation: CheckedContinuation<Void, Never>) {
            let descriptor = Int32(source.handle)
            source.setCancelHandler {
                close(descriptor)
                continuation.resume()
            }
            source.setEventHandler { [source] in source.cancel() }
            source.resume()
        }

        func stop() { source.cancel() }
    }
}
