/// A CoAP request method.
public enum CoAPMethod: String, Sendable, CaseIterable {
    case get = "GET"
    case post = "POST"
    case put = "PUT"
    case delete = "DELETE"
}

/// A CoAP response code such as 2.05 Content, kept as its raw byte (class << 5 | detail).
public struct CoAPCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    public init(_ codeClass: UInt8, _ detail: UInt8) {
        self.rawValue = codeClass << 5 | detail
    }

    public var codeClass: UInt8 { rawValue >> 5 }
    public var detail: UInt8 { rawValue & 0x1f }
    public var isSuccess: Bool { codeClass == 2 }

    /// "2.05" style.
    public var description: String {
        "\(codeClass).\(detail < 10 ? "0" : "")\(detail)"
    }

    public static let created = CoAPCode(2, 1)
    public static let deleted = CoAPCode(2, 2)
    public static let valid = CoAPCode(2, 3)
    public static let changed = CoAPCode(2, 4)
    public static let content = CoAPCode(2, 5)
    public static let badRequest = CoAPCode(4, 0)
    public static let unauthorized = CoAPCode(4, 1)
    public static let badOption = CoAPCode(4, 2)
    public static let forbidden = CoAPCode(4, 3)
    public static let notFound = CoAPCode(4, 4)
    public static let methodNotAllowed = CoAPCode(4, 5)
    public static let requestEntityTooLarge = CoAPCode(4, 13)
    public static let internalServerError = CoAPCode(5, 0)
    public static let serviceUnavailable = CoAPCode(5, 3)
}

/// A response or an Observe notification, copied out of libcoap's PDU.
public struct CoAPResponse: Sendable, Equatable {
    public var code: CoAPCode
    public var payload: [UInt8]
    /// The Observe option's sequence number, present on observe registrations that the server
    /// accepted and on every notification.
    public var observe: UInt32?

    public init(code: CoAPCode, payload: [UInt8] = [], observe: UInt32? = nil) {
        self.code = code
        self.payload = payload
        self.observe = observe
    }

    /// The payload as UTF-8 text (invalid sequences replaced).
    public var text: String { String(decoding: payload, as: UTF8.self) }
}
