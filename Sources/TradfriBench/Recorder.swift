import Foundation
import HubModel
import MQTT
import TradfriModel

/// Everything timestamped during a phase, from every thread that sees an event: the simulator's
/// request hook (libcoap queue), the MQTT subscriber's event loop, the raw observer's output
/// reader. Parsed only after the phase, so recording costs a lock and an append.
final class Recorder: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    private let lock = NSLock()
    private var puts: [(time: UInt64, simulator: Int, path: String, payload: [UInt8])] = []
    private var messages: [(time: UInt64, topic: String, payload: [UInt8])] = []
    private var observed: [(time: UInt64, payload: Substring)] = []
    private var starts: [Stamp] = []

    func recordPut(simulator: Int, path: String, payload: [UInt8], at time: UInt64) {
        lock.withLock { puts.append((time, simulator, path, payload)) }
    }

    func recordMessage(topic: String, payload: [UInt8], at time: UInt64) {
        lock.withLock { messages.append((time, topic, payload)) }
    }

    /// A line of the raw observer: "<monotonic ns> <payload>".
    func recordObserverLine(_ line: String) {
        guard let space = line.firstIndex(of: " "), let time = UInt64(line[..<space]) else { return }
        let payload = line[line.index(after: space)...]
        lock.withLock { observed.append((time, payload)) }
    }

    func recordStart(_ stamp: Stamp) {
        lock.withLock { starts.append(stamp) }
    }

    /// Forgets everything recorded so far (between phases).
    func reset() {
        lock.withLock {
            puts.removeAll(keepingCapacity: true)
            messages.removeAll(keepingCapacity: true)
            observed.removeAll(keepingCapacity: true)
            starts.removeAll(keepingCapacity: true)
        }
    }

    // MARK: Parsed views

    /// Light PUTs the simulator carried out: (device, brightness, time).
    func lightPuts(simulator: Int) -> [Stamp] {
        let copy = lock.withLock { puts }
        return copy.compactMap { put in
            guard put.simulator == simulator, put.path.hasPrefix("15001/"), let id = Int(put.path.dropFirst(6)),
                let body = try? JSON(parsing: put.payload),
                let level = body["3311"]?[0]?["5851"]?.intValue
            else { return nil }
            return Stamp(device: id, value: level, time: put.time)
        }
    }

    /// State messages on `<prefix><name>` whose name `ids` knows: (device, brightness, time).
    func lightStates(prefix: String, ids: [String: Int]) -> [Stamp] {
        let copy = lock.withLock { messages }
        return copy.compactMap { message in
            guard message.topic.hasPrefix(prefix), let id = ids[String(message.topic.dropFirst(prefix.count))],
                let body = try? JSON(parsing: message.payload), let level = body["brightness"]?.intValue
            else { return nil }
            return Stamp(device: id, value: level, time: message.time)
        }
    }

    /// Notifications the raw observer received: (device, brightness, time).
    func observerNotifications() -> [Stamp] {
        let copy = lock.withLock { observed }
        return copy.compactMap { entry in
            guard let body = try? JSON(parsing: String(entry.payload)), let id = body["9003"]?.intValue,
                let level = body["3311"]?[0]?["5851"]?.intValue
            else { return nil }
            return Stamp(device: id, value: level, time: entry.time)
        }
    }

    var recordedStarts: [Stamp] { lock.withLock { starts } }

    /// First arrival time of each topic seen so far.
    func firstArrivals() -> [String: (time: UInt64, payload: [UInt8])] {
        let copy = lock.withLock { messages }
        var first: [String: (UInt64, [UInt8])] = [:]
        for message in copy where first[message.topic] == nil { first[message.topic] = (message.time, message.payload) }
        return first
    }

    var messageCount: Int { lock.withLock { messages.count } }

    /// The messages recorded from position `index` on (for a caller that reads them as they come,
    /// without copying or parsing the earlier ones again), and the position after them.
    func messages(from index: Int) -> (messages: [(time: UInt64, topic: String, payload: [UInt8])], next: Int) {
        lock.withLock {
            let start = min(index, messages.count)
            return (Array(messages[start...]), messages.count)
        }
    }

    /// Every arrival on topics under `prefix`, by topic, oldest first.
    func arrivals(prefix: String) -> [String: [(time: UInt64, payload: [UInt8])]] {
        let copy = lock.withLock { messages }
        var result: [String: [(time: UInt64, payload: [UInt8])]] = [:]
        for message in copy where message.topic.hasPrefix(prefix) {
            result[message.topic, default: []].append((message.time, message.payload))
        }
        return result
    }
}

/// Hands out the next change for a set of lights: round robin over `ids`, each light's brightness
/// stepping through 2…251 so every change differs from the light's current state and from the
/// changes still in flight.
final class ChangeSource: @unchecked Sendable {
    // @unchecked: `counter` is guarded by `lock`.
    let ids: [Int]
    private let lock = NSLock()
    private var counter = 0

    init(ids: [Int]) {
        self.ids = ids
    }

    func next() -> (id: Int, level: Int) {
        let index = lock.withLock {
            defer { counter += 1 }
            return counter
        }
        return (ids[index % ids.count], 2 + (index / ids.count) % 250)
    }
}
