import Testing

@testable import TradfriBridge

/// The pairing endpoints' request parser on the bytes as they arrive (the fuzzer's entry point).
@Suite struct HTTPRequestParserTests {
    static func parse(_ text: String) -> HTTPRequestParser.Outcome {
        HTTPRequestParser.parse(Array(text.utf8), peer: "192.0.2.10")
    }

    @Test func aRequestWithABodyAndAQuery() throws {
        let body = #"{"name":"Heat pump"}"#
        guard
            case .request(let request) = Self.parse(
                "POST /pairing/v1/request?a=%20b&c&=&d= HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            )
        else {
            Issue.record("not parsed")
            return
        }
        #expect(request.method == "POST")
        #expect(request.path == "/pairing/v1/request")
        #expect(request.query == ["a": " b", "c": "", "": "", "d": ""])
        #expect(request.headers["host"] == "x")
        #expect(request.body == Array(body.utf8))
        #expect(request.peer == "192.0.2.10")
    }

    @Test func incompleteInputAsksForMore() {
        guard case .needMore = Self.parse("GET / HTTP/1.1\r\nHost: x\r\n") else {
            Issue.record("a head without its blank line is incomplete")
            return
        }
        guard case .needMore(let count) = Self.parse("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabcd") else {
            Issue.record("a short body is incomplete")
            return
        }
        #expect(count == 6)
    }

    @Test(arguments: [
        ("GET /\r\n\r\n", 400), ("GET / HTTP/2\r\n\r\n", 400), ("GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400), ("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nContent-Length: 8193\r\n\r\n", 413),
        ("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000), 413),
    ])
    func badRequestsAreRefusedWithTheirStatus(text: String, status: Int) {
        guard case .failure(let failure) = Self.parse(text) else {
            Issue.record("accepted: \(text.prefix(60))")
            return
        }
        #expect(failure.status == status)
    }

    @Test func aHeadThatIsNotUTF8IsRefused() {
        guard case .failure(let failure) = HTTPRequestParser.parse([0xFF, 0xFE, 13, 10, 13, 10], peer: "") else {
            Issue.record("accepted")
            return
        }
        #expect(failure.status == 400)
    }
}
