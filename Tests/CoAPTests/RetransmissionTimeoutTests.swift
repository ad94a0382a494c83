import CoAP
import Testing

/// The learnt retransmission timeout: quick answers bring it down to its floor, slow ones raise
/// it, and it never leaves its bounds.
@Suite struct RetransmissionTimeoutTests {
    @Test func quickAnswersBringItDownToTheFloor() {
        var timeout = RetransmissionTimeout()
        #expect(timeout.seconds == 2)
        for _ in 0..<20 { timeout.record(0.002, timeoutAtSend: timeout.seconds) }
        #expect(timeout.seconds == RetransmissionTimeout.defaultBounds.lowerBound)
        #expect(abs((timeout.smoothedRoundTrip ?? 0) - 0.002) < 0.0005)
    }

    @Test func aGatewayThatGetsSlowRaisesIt() {
        var timeout = RetransmissionTimeout()
        for _ in 0..<20 { timeout.record(0.002, timeoutAtSend: timeout.seconds) }
        // Answers now take 0.6 s: first only after the timeout (weak samples), then within it.
        for _ in 0..<40 { timeout.record(0.6, timeoutAtSend: timeout.seconds) }
        #expect(timeout.seconds > 0.6)
        #expect(timeout.seconds < 3)
    }

    @Test func theHandshakeSeedsItAndItStaysWithinItsBounds() {
        var timeout = RetransmissionTimeout()
        timeout.seed(roundTrip: 0.05)
        #expect(abs(timeout.seconds - 0.15) < 0.001)
        var slow = RetransmissionTimeout()
        for _ in 0..<50 { slow.record(30, timeoutAtSend: 40) }
        #expect(slow.seconds == RetransmissionTimeout.defaultBounds.upperBound)
        var odd = RetransmissionTimeout()
        odd.record(-1, timeoutAtSend: 2)
        odd.record(.nan, timeoutAtSend: 2)
        #expect(odd.seconds == 2)
    }

    /// A gateway that suddenly answers ten times slower than the timeout (every answer after
    /// several retransmissions) still raises it; once it is quick again, the timeout comes down.
    @Test func muchSlowerAnswersRaiseItAndQuickOnesBringItBack() {
        var timeout = RetransmissionTimeout()
        for _ in 0..<20 { timeout.record(0.002, timeoutAtSend: timeout.seconds) }
        for _ in 0..<40 { timeout.record(2, timeoutAtSend: timeout.seconds) }
        #expect(timeout.seconds > 2)
        for _ in 0..<60 { timeout.record(0.002, timeoutAtSend: timeout.seconds) }
        #expect(timeout.seconds < 0.2)
    }
}
