internal import COpenSSL

/// A failure in OpenSSL, with its own error text.
public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public let operation: String
    public let reason: String

    public var description: String { "\(operation): \(reason)" }

    /// Takes OpenSSL's error queue (for this thread) into a Swift error at once.
    static func lastError(_ operation: String) -> TLSError {
        var messages: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return TLSError(
            operation: operation, reason: messages.isEmpty ? "unknown error" : messages.joined(separator: "; "))
    }
}
