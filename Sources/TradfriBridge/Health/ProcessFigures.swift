import Foundation

/// What the bridge process costs right now, from `/proc/self` (Linux): resident memory, its peak,
/// and CPU time. Zero where `/proc` cannot be read.
struct ProcessFigures: Sendable, Equatable {
    /// Resident set size (VmRSS), bytes.
    var residentBytes: Int
    /// Peak resident set size (VmHWM), bytes.
    var peakResidentBytes: Int
    /// User plus system CPU time since the process started, seconds.
    var cpuSeconds: Double

    static func current() -> ProcessFigures {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let stat = (try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8)) ?? ""
        return ProcessFigures(
            residentBytes: kilobytes("VmRSS", in: status) * 1024,
            peakResidentBytes: kilobytes("VmHWM", in: status) * 1024,
            cpuSeconds: cpuSeconds(stat: stat, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK)))))
    }

    /// A `Name:   1234 kB` line of /proc/<pid>/status, in kB (0 if absent).
    static func kilobytes(_ name: String, in status: String) -> Int {
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            let number = line.dropFirst(name.count + 1).split(whereSeparator: \.isWhitespace).first
            return number.flatMap { Int($0) } ?? 0
        }
        return 0
    }

    /// utime + stime of a /proc/<pid>/stat line (fields 14 and 15; the command name, in
    /// parentheses, may hold spaces), in seconds.
    static func cpuSeconds(stat: String, ticksPerSecond: Double) -> Double {
        guard let close = stat.lastIndex(of: ")"), ticksPerSecond > 0 else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the name: state (3), ppid (4), … utime is field 14, stime 15.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / ticksPerSecond
    }
}
