import Dispatch
import Foundation
import Logging
import Synchronization

/// Where the bridge's log lines go: renders each event as text or JSON with every value escaped
/// (`LogEscape`), holds back a warning or error that repeats (`RepeatedLogFilter`), and writes
/// one line per `write` call to its sink (standard error for the process).
///
/// Thread-safe: any thread may log. Lines are rendered and written under one lock, so they never
/// interleave and a summary comes before the line that follows it. A timer (armed only while some
/// repeats wait to be summarised) writes a summary when its interval ends even if nothing else is
/// logged. Tests inject the sink, the clock and the timer.
final class LogOutput: Sendable {
    struct Record: Sendable {
        var time: Date
        var level: Logger.Level
        var label: String
        var message: String
        /// Sorted by key; values as the handler turned them into text (not yet escaped).
        var metadata: [(key: String, value: String)]
        var format: BridgeLogHandler.Format
    }

    private struct State: ~Copyable {
        var filter: RepeatedLogFilter<Record>
        var timerArmed = false
    }

    private let state: Mutex<State>
    private let sink: @Sendable (String) -> Void
    private let now: @Sendable () -> Duration
    private let schedule: @Sendable (Duration, @escaping @Sendable () -> Void) -> Void

    /// - Parameters:
    ///   - repeatInterval: see `RepeatedLogFilter`; zero logs every repeat.
    ///   - sink: receives each line, newline included.
    ///   - now: a monotonic clock.
    ///   - schedule: runs the closure once after the delay (the summary timer).
    init(
        repeatInterval: Duration,
        sink: @escaping @Sendable (String) -> Void,
        now: @escaping @Sendable () -> Duration,
        schedule: @escaping @Sendable (Duration, @escaping @Sendable () -> Void) -> Void
    ) {
        state = Mutex(State(filter: RepeatedLogFilter(interval: repeatInterval)))
        self.sink = sink
        self.now = now
        self.schedule = schedule
    }

    /// The process's output: standard error, the continuous clock, a dispatch timer.
    static let standardError: LogOutput = {
        let origin = ContinuousClock.now
        return LogOutput(
            repeatInterval: .seconds(600),
            sink: { line in FileHandle.standardError.write(Data(line.utf8)) },
            now: { ContinuousClock.now - origin },
            schedule: dispatchTimer)
    }()

    /// Runs `work` once on a global queue after `delay`.
    @Sendable static func dispatchTimer(_ delay: Duration, _ work: @escaping @Sendable () -> Void) {
        let nanoseconds = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds)), execute: work)
    }

    /// Changes the interval; what was being counted is forgotten.
    func setRepeatInterval(_ interval: Duration) {
        state.withLock { $0.filter = RepeatedLogFilter(interval: interval) }
    }

    func write(_ record: Record) {
        let now = self.now()
        let arm: Duration? = state.withLock { state in
            for summary in state.filter.due(at: now) { sink(Self.render(Self.summaryRecord(summary))) }
            let logged = record.level < .warning || state.filter.admit(Self.key(record), record, at: now)
            if logged { sink(Self.render(record)) }
            return Self.armIfNeeded(&state, now: now)
        }
        if let arm { schedule(arm) { [weak self] in self?.flush() } }
    }

    /// Writes the summaries whose interval has ended (the timer calls it).
    func flush() {
        let now = self.now()
        let arm: Duration? = state.withLock { state in
            state.timerArmed = false
            for summary in state.filter.due(at: now) { sink(Self.render(Self.summaryRecord(summary))) }
            return Self.armIfNeeded(&state, now: now)
        }
        if let arm { schedule(arm) { [weak self] in self?.flush() } }
    }

    private static func armIfNeeded(_ state: inout State, now: Duration) -> Duration? {
        guard !state.timerArmed, let next = state.filter.nextSummary else { return nil }
        state.timerArmed = true
        return max(next - now, .zero)
    }

    private static func key(_ record: Record) -> RepeatedLogFilter<Record>.Key {
        .init(
            label: record.label, level: "\(record.level)", message: record.message,
            relayed: record.metadata.first { $0.key == "message" }?.value)
    }

    private static func summaryRecord(_ summary: RepeatedLogFilter<Record>.Summary) -> Record {
        var record = summary.last
        record.time = Date()
        record.message += " (\(RepeatedLogFilter<Record>.describe(count: summary.count, span: summary.span)))"
        return record
    }

    /// One line, newline included: `2026-01-01T10:00:00Z warning gateway: message key=value …`
    /// or a JSON object with `time`, `level`, `logger`, `message` and the metadata.
    static func render(_ record: Record) -> String {
        let time = record.time.formatted(.iso8601)
        switch record.format {
        case .text:
            var text = "\(time) \(record.level) \(LogEscape.text(record.label)): \(LogEscape.text(record.message))"
            for (key, value) in record.metadata {
                text += " \(LogEscape.text(key))=\(LogEscape.value(value))"
            }
            return text + "\n"
        case .json:
            var object: [String: String] = [
                "time": time, "level": "\(record.level)", "logger": record.label, "message": record.message,
            ]
            for (key, value) in record.metadata { object[key] = value }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return LogEscape.json(String(decoding: data, as: UTF8.self)) + "\n"
        }
    }
}
