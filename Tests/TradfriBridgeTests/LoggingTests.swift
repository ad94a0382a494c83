import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

@testable import TradfriBridge

/// The log handler as a program writes through it: escaping of text from outside, and the
/// summary of repeated warnings, with an injected clock so an hour takes no time.
@Suite struct LoggingTests {
    /// Collects the lines a `LogOutput` writes; time is whatever the test sets.
    final class Capture: Sendable {
        private let state = Mutex<(lines: [String], now: Duration, timers: [Duration])>(([], .zero, []))
        var lines: [String] { state.withLock { $0.lines } }
        var timers: [Duration] { state.withLock { $0.timers } }
        func advance(to time: Duration) { state.withLock { $0.now = time } }

        func output(repeatInterval: Duration = .seconds(600)) -> LogOutput {
            LogOutput(
                repeatInterval: repeatInterval,
                sink: { line in self.state.withLock { $0.lines.append(line) } },
                now: { self.state.withLock { $0.now } },
                schedule: { delay, _ in self.state.withLock { $0.timers.append(delay) } })
        }

        func logger(_ label: String, format: BridgeLogHandler.Format = .text, output: LogOutput) -> Logger {
            Logger(label: label) { label in
                BridgeLogHandler(label: label, level: .trace, format: format, output: output)
            }
        }
    }

    // MARK: Escaping

    static let forged = "ON\n2026-01-01T10:00:00Z error bridge: a forged line"

    @Test func aValueWithANewlineCannotStartALineOfItsOwn() {
        let capture = Capture()
        let logger = capture.logger("commands", output: capture.output())
        logger.warning("command not carried out", metadata: ["reason": "\(Self.forged)", "mqtt.topic": "a/set"])
        #expect(capture.lines.count == 1)
        let line = capture.lines[0]
        #expect(line.filter { $0 == "\n" }.count == 1 && line.hasSuffix("\n"))
        #expect(line.contains(#"reason="ON\n2026-01-01T10:00:00Z error bridge: a forged line""#))
    }

    @Test func terminalEscapeCodesAreShownNotSent() {
        let capture = Capture()
        let logger = capture.logger("gateway", output: capture.output())
        // Clear screen, a C1 CSI, a right-to-left override, a NUL, DEL, a line separator.
        let hostile = "\u{1B}[2J\u{9B}31m\u{202E}txt.exe\u{0}\u{7F}\u{2028}end\r\t\\n"
        logger.info("device renamed", metadata: ["name": "\(hostile)"])
        let line = capture.lines[0]
        #expect(!line.dropLast().unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
        #expect(line.contains(#"name=\x1b[2J\x9b31m\u{202e}txt.exe\x00\x7f\u{2028}end\r\t\\n"#))
    }

    @Test func aValueCannotForgeAnotherField() {
        let capture = Capture()
        let logger = capture.logger("commands", output: capture.output())
        logger.warning("x", metadata: ["reason": #"ok" mqtt.topic="forged"#, "empty": "", "eq": "a=b"])
        #expect(capture.lines[0].contains(#"reason="ok\" mqtt.topic=\"forged""#))
        #expect(capture.lines[0].contains(#"empty="""#))
        #expect(capture.lines[0].contains(#"eq="a=b""#))
    }

    @Test func theMessageAndLabelAreEscapedToo() {
        let capture = Capture()
        let logger = capture.logger("a\nb", output: capture.output())
        logger.info("line\none")
        #expect(capture.lines.count == 1)
        #expect(capture.lines[0].hasSuffix(#" info a\nb: line\none"# + "\n"))
    }

    @Test func jsonLinesStayOneObjectPerLineWithTheValueIntact() throws {
        let capture = Capture()
        let logger = capture.logger("commands", format: .json, output: capture.output())
        let hostile = Self.forged + "\u{1B}[2J\u{9B}\u{2028}\u{202E}"
        logger.warning("command not carried out", metadata: ["reason": "\(hostile)"])
        #expect(capture.lines.count == 1)
        let line = capture.lines[0]
        #expect(!line.dropLast().unicodeScalars.contains { LogEscape.needsEscape($0) })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["reason"] == hostile)
        #expect(object["message"] == "command not carried out")
    }

    // MARK: Repeated warnings

    @Test func aRepeatedWarningIsLoggedOnceThenSummarisedPerInterval() {
        let capture = Capture()
        let output = capture.output()
        let logger = capture.logger("gateway", output: output)
        // 25 minutes of one attempt every 5 s.
        for second in stride(from: 0, to: 1500, by: 5) {
            capture.advance(to: .seconds(second))
            logger.warning("cannot connect to the gateway", metadata: ["error": "unreachable \(second)"])
        }
        let lines = capture.lines
        #expect(lines.count == 3, "\(lines)")
        #expect(lines[0].contains("cannot connect to the gateway error=\"unreachable 0\""))
        // The attempt at 600 s is the first of the second window; the summary carries the latest.
        #expect(lines[1].contains("cannot connect to the gateway (… 119 more times in the last 10 min)"))
        #expect(lines[1].contains("error=\"unreachable 595\""))
        #expect(lines[2].contains("(… 120 more times in the last 10 min)"))
        // The repeats still waiting are summarised by the timer, armed at the end of the window.
        capture.advance(to: .seconds(1800))
        output.flush()
        #expect(capture.lines.count == 4)
        #expect(capture.lines[3].contains("(… 60 more times in the last 10 min)"))
        // The cause has stopped: nothing more, and its next occurrence is logged in full.
        capture.advance(to: .seconds(2400))
        output.flush()
        #expect(capture.lines.count == 4)
        capture.advance(to: .seconds(2401))
        logger.warning("cannot connect to the gateway", metadata: ["error": "again"])
        #expect(capture.lines.count == 5 && capture.lines[4].contains("error=again"))
    }

    @Test func causesAreCountedApartAndInfoIsNeverHeldBack() {
        let capture = Capture()
        let output = capture.output()
        let gateway = capture.logger("gateway", output: output)
        let mqtt = capture.logger("mqtt", output: output)
        let libcoap = capture.logger("libcoap", output: output)
        for _ in 0..<3 {
            gateway.warning("cannot connect to the gateway")
            gateway.error("cannot connect to the gateway")
            mqtt.warning("cannot connect to the gateway")
            gateway.info("connected to the gateway")
            libcoap.warning("libcoap", metadata: ["message": "one thing"])
            libcoap.warning("libcoap", metadata: ["message": "another"])
        }
        let lines = capture.lines
        #expect(lines.count == 5 + 3, "\(lines)")
        #expect(lines.filter { $0.contains("info gateway: connected") }.count == 3)
        #expect(lines.filter { $0.contains("libcoap: libcoap message=") }.count == 2)
    }

    @Test func anHourOfOutageAtTheRealPaceIsAHandfulOfLines() {
        // The gateway gone for an hour: attempts back off 1, 2, 4 … to the 60 s cap, each one
        // a warning; the broker refuses every 60 s too; the libcoap line per attempt.
        let capture = Capture()
        let output = capture.output()
        let gateway = capture.logger("gateway", output: output)
        let bridge = capture.logger("bridge", output: output)
        var time = 0.0
        var delay = 1.0
        var attempts = 0
        var nextBroker = 0.0
        while time < 3600 {
            capture.advance(to: .seconds(time))
            output.flush()
            gateway.warning("cannot connect to the gateway", metadata: ["error": "no answer"])
            attempts += 1
            if time >= nextBroker {
                bridge.error("the broker refused the connection", metadata: ["reason": "not authorised"])
                nextBroker += 60
            }
            time += delay
            delay = min(delay * 2, 60)
        }
        // The timer summarises what the last window counted.
        capture.advance(to: .seconds(4200))
        output.flush()
        print("an hour of outage: \(attempts) attempts, \(capture.lines.count) lines")
        #expect(attempts > 60)
        // Per cause: the first line and one summary per 10 minutes.
        #expect(capture.lines.count <= 2 * 8, "\(capture.lines)")
        let counted = capture.lines.compactMap { line -> Int? in
            guard line.contains("cannot connect"), let range = line.range(of: "(… ") else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
        #expect(counted.reduce(1, +) == attempts)
    }

    @Test func theTimerIsArmedOnlyWhileRepeatsWait() {
        let capture = Capture()
        let output = capture.output(repeatInterval: .seconds(10))
        let logger = capture.logger("gateway", output: output)
        logger.warning("lost the gateway session")
        #expect(capture.timers.isEmpty)
        capture.advance(to: .seconds(4))
        logger.warning("lost the gateway session")
        logger.warning("lost the gateway session")
        #expect(capture.timers == [.seconds(6)])
    }

    @Test func aZeroIntervalLogsEveryRepeat() {
        let capture = Capture()
        let logger = capture.logger("gateway", output: capture.output(repeatInterval: .zero))
        for _ in 0..<5 { logger.warning("lost the gateway session") }
        #expect(capture.lines.count == 5)
    }

    @Test func theSummaryComesByItselfWhenNothingElseIsLogged() async throws {
        let (lines, sink) = AsyncStream.makeStream(of: String.self)
        let origin = ContinuousClock.now
        // The real timer (a dispatch timer, as in the daemon) and the real clock.
        let output = LogOutput(
            repeatInterval: .milliseconds(300), sink: { sink.yield($0) }, now: { ContinuousClock.now - origin },
            schedule: LogOutput.dispatchTimer)
        let logger = Logger(label: "mqtt") { BridgeLogHandler(label: $0, format: .text, output: output) }
        for _ in 0..<4 { logger.warning("cannot reach the broker") }
        let received = try await withDeadline(.seconds(5), "the summary line") {
            var received: [String] = []
            for await line in lines {
                received.append(line)
                if line.contains("more times") { break }
            }
            return received
        }
        #expect(received.count == 2)
        #expect(received.last?.contains("cannot reach the broker (… 3 more times in the last 0.3 s)") == true)
    }

    @Test func describingTheSpan() {
        typealias Filter = RepeatedLogFilter<Int>
        #expect(Filter.describe(count: 1, span: .seconds(10)) == "… 1 more time in the last 10 s")
        #expect(Filter.describe(count: 120, span: .seconds(600)) == "… 120 more times in the last 10 min")
        #expect(Filter.describe(count: 2, span: .milliseconds(119_600)) == "… 2 more times in the last 2 min")
        #expect(Filter.describe(count: 3, span: .milliseconds(1_320)) == "… 3 more times in the last 1.3 s")
    }
}
