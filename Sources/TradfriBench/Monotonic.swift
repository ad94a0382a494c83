import Glibc

/// Timestamps for cross-process latencies: CLOCK_MONOTONIC in nanoseconds.
///
/// On Linux CLOCK_MONOTONIC is one clock for the whole host, so a stamp taken in the bridge's
/// subscriber, in the simulator (this process) and in the raw CoAP observer (a child process)
/// can be subtracted directly. It never jumps with NTP or the wall clock.
enum Monotonic {
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
