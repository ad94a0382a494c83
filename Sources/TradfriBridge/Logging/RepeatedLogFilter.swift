/// Keeps a warning that repeats from filling the log: the first one is logged, the repeats within
/// `interval` are only counted, and when the interval ends one summary line says how many there
/// were ("… 120 more times in the last 10 min"). While the cause lasts that is one line per
/// interval and cause; once it stops, nothing more (an interval without a repeat ends silently),
/// and the next occurrence is logged in full again.
///
/// A cause is a `Key`: the logger's label, the level and the constant message; for a line that
/// relays a C library's text (`libcoap`, `libmosquitto`: the text is their `message` metadata),
/// that text too. Pure: time is passed in (`now`, on any monotonic scale), so tests run an hour in a loop.
/// Not thread-safe; `LogOutput` keeps it behind a lock.
struct RepeatedLogFilter<Record> {
    struct Key: Hashable, Sendable {
        var label: String
        var level: String
        var message: String
        var relayed: String?
    }

    /// One summary line: `count` more occurrences of `key` during `span`; `last` is the latest of
    /// them (its metadata goes on the summary line).
    struct Summary {
        var key: Key
        var count: Int
        var span: Duration
        var last: Record
    }

    private struct Entry {
        var windowStart: Duration
        var suppressed: Int
        var last: Record?
    }

    /// How long a window lasts: at most one line per cause and window.
    let interval: Duration
    /// Causes tracked at once; beyond that a new cause is logged without being tracked.
    let capacity: Int
    private var entries: [Key: Entry] = [:]

    init(interval: Duration, capacity: Int = 512) {
        self.interval = interval
        self.capacity = capacity
    }

    /// Whether `record` (an occurrence of `key` at `now`) is to be logged. Call `due(at:)` first,
    /// so a window that has ended is summarised before this occurrence counts towards the next.
    mutating func admit(_ key: Key, _ record: Record, at now: Duration) -> Bool {
        guard interval > .zero else { return true }
        if var entry = entries[key] {
            if now - entry.windowStart < interval {
                entry.suppressed += 1
                entry.last = record
                entries[key] = entry
                return false
            }
            // An ended window nobody summarised (`due` was not called): start anew.
            entries[key] = nil
        }
        if entries.count < capacity {
            entries[key] = Entry(windowStart: now, suppressed: 0, last: nil)
        }
        return true
    }

    /// The summaries of the windows that have ended by `now`. A cause that repeated gets a line
    /// and a new window (its repeats go on being counted); a cause that did not is forgotten.
    mutating func due(at now: Duration) -> [Summary] {
        guard let next = nextDue, now >= next else { return [] }
        var summaries: [Summary] = []
        for (key, entry) in entries where now - entry.windowStart >= interval {
            if entry.suppressed > 0, let last = entry.last {
                summaries.append(Summary(key: key, count: entry.suppressed, span: now - entry.windowStart, last: last))
                entries[key] = Entry(windowStart: now, suppressed: 0, last: nil)
            } else {
                entries[key] = nil
            }
        }
        return summaries.sorted { ($0.key.label, $0.key.message) < ($1.key.label, $1.key.message) }
    }

    /// When the earliest window ends, or nil when no cause is tracked.
    var nextDue: Duration? {
        entries.values.map(\.windowStart).min().map { $0 + interval }
    }

    /// When the earliest window with repeats to summarise ends: the moment a timer must call
    /// `due(at:)` so the summary appears even if nothing else is logged. Nil when none waits.
    var nextSummary: Duration? {
        entries.values.filter { $0.suppressed > 0 }.map(\.windowStart).min().map { $0 + interval }
    }

    /// "… 120 more times in the last 10 min" (seconds below two minutes, tenths below ten).
    static func describe(count: Int, span: Duration) -> String {
        let seconds = Double(span.components.seconds) + Double(span.components.attoseconds) / 1e18
        let time: String
        if seconds >= 119.5 {
            time = "\(Int((seconds / 60).rounded())) min"
        } else if seconds >= 9.95 || (seconds * 10).rounded() == (seconds.rounded() * 10) {
            time = "\(Int(seconds.rounded())) s"
        } else {
            time = "\((seconds * 10).rounded() / 10) s"
        }
        return "… \(count) more \(count == 1 ? "time" : "times") in the last \(time)"
    }
}
