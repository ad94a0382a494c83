import Foundation

/// Reads one HTTP/1.1 request from the bytes received so far, for the pairing endpoints: the
/// request line, headers (names in lower case), a body of `Content-Length` bytes, and the query
/// of the target. No sockets: `HTTPServer` feeds it what it reads, the fuzzer feeds it anything.
///
/// Limits: a head of at most `maxHead` bytes, a body of at most `maxBody`; anything else that is
/// not a well-formed request is a failure with the status to answer (nil: close silently).
enum HTTPRequestParser {
    static let maxHead = 8192
    static let maxBody = 8192

    struct Failure: Error, Equatable {
        var status: Int?
        var message: String
    }

    enum Outcome {
        case request(HTTPRequest)
        /// Incomplete: read at most this many more bytes and parse again.
        case needMore(Int)
        case failure(Failure)
    }

    /// `data`: every byte of the connection so far.
    static func parse(_ data: [UInt8], peer: String) -> Outcome {
        guard let headEnd = data.firstRange(of: [13, 10, 13, 10])?.lowerBound else {
            return data.count > maxHead ? .failure(Failure(status: 413, message: "request too large")) : .needMore(2048)
        }
        guard let head = String(validating: data[..<headEnd], as: UTF8.self) else {
            return .failure(Failure(status: 400, message: "bad request"))
        }
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let parts = lines[0].split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            return .failure(Failure(status: 400, message: "bad request line"))
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else {
                return .failure(Failure(status: 400, message: "bad header"))
            }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        let body = data[(headEnd + 4)...]
        let length = Int(headers["content-length"] ?? "0") ?? -1
        guard length >= 0 else { return .failure(Failure(status: 400, message: "bad content length")) }
        guard length <= maxBody else { return .failure(Failure(status: 413, message: "body too large")) }
        guard body.count >= length else { return .needMore(length - body.count) }
        let target = String(parts[1])
        // Empty pieces are kept ("?=", "?a&&b", "/x?"), so every split has the parts indexed below.
        let pathPart = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [String: String] = [:]
        if pathPart.count == 2 {
            for pair in pathPart[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query[String(kv[0])] = kv.count == 2 ? String(kv[1]).removingPercentEncoding ?? String(kv[1]) : ""
            }
        }
        return .request(
            HTTPRequest(
                method: String(parts[0]), path: String(pathPart.first ?? ""), query: query,
                headers: headers, body: Array(body.prefix(length)), peer: peer))
    }
}
