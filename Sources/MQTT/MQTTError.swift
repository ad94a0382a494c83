internal import CMosquitto
import Foundation

/// Why an MQTT operation failed. Each description is written for the person running the program.
public enum MQTTError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The configuration cannot be used (keepalive out of range, unreadable TLS file, …).
    case invalidConfiguration(String)
    /// An argument of the call cannot be used (empty topic list, MQTT 5 option over 3.1.1, …).
    case invalidArgument(String)
    /// There is no connection to the broker right now: not started, still connecting, or waiting
    /// to reconnect. Watch `events` for `.connected`.
    case notConnected
    /// The connection was lost before the broker answered the request.
    case connectionLost
    /// The client was disconnected for good (`disconnect()` or released); make a new one.
    case closed
    /// The broker did not answer in time.
    case timeout(String)
    /// The broker answered a QoS 1/2 publish with an MQTT 5 failure reason code (e.g. not
    /// authorized by its ACL).
    case publishRefused(topic: String, reason: MQTTReasonCode)
    /// The broker refused these topic filters of a SUBSCRIBE (`reason` is the first one's code).
    /// Other filters of the same call were subscribed.
    case subscriptionRefused(filters: [String], reason: MQTTReasonCode)
    /// libmosquitto returned an error (`MOSQ_ERR_*` `code`) for `operation`, with its text.
    case library(operation: String, code: Int32, message: String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let what):
            return "invalid MQTT configuration: \(what)"
        case .invalidArgument(let what):
            return "invalid argument: \(what)"
        case .notConnected:
            return "not connected to the MQTT broker"
        case .connectionLost:
            return "the connection to the MQTT broker was lost before it answered"
        case .closed:
            return "the MQTT client was disconnected and cannot be used any more"
        case .timeout(let what):
            return "timed out waiting for \(what)"
        case .publishRefused(let topic, let reason):
            return "the broker refused the publish to '\(topic)': \(reason)"
        case .subscriptionRefused(let filters, let reason):
            let list = filters.map { "'\($0)'" }.joined(separator: ", ")
            return "the broker refused the subscription to \(list): \(reason)"
        case .library(let operation, _, let message):
            return "\(operation) failed: \(message)"
        }
    }
}

extension MQTTError {
    /// The error for libmosquitto return code `code`. Call right after the failing call, on the
    /// same thread: `MOSQ_ERR_ERRNO` is explained by the current `errno`.
    init(code: Int32, operation: @autoclosure () -> String) {
        // mosquitto_strerror(MOSQ_ERR_ERRNO) is strerror(errno): read it before anything else can
        // change errno.
        let message = String(cString: mosquitto_strerror(code))
        switch code {
        case MOSQ_ERR_NO_CONN.rawValue:
            self = .notConnected
        case MOSQ_ERR_CONN_LOST.rawValue:
            self = .library(operation: operation(), code: code, message: "closed by the broker or the network")
        case MOSQ_ERR_EAI.rawValue:
            self = .library(operation: operation(), code: code, message: "the host name could not be resolved")
        // libmosquitto 2.0.11's mosquitto_strerror says "Unknown error." for these.
        case MOSQ_ERR_KEEPALIVE.rawValue:
            self = .library(
                operation: operation(), code: code, message: "the broker did not answer within the keepalive interval")
        case MOSQ_ERR_LOOKUP.rawValue:
            self = .library(operation: operation(), code: code, message: "the address could not be looked up")
        case MOSQ_ERR_MALFORMED_PACKET.rawValue:
            self = .library(operation: operation(), code: code, message: "the broker sent a malformed packet")
        case MOSQ_ERR_TIMEOUT.rawValue:
            self = .library(operation: operation(), code: code, message: "timed out")
        case MOSQ_ERR_RETAIN_NOT_SUPPORTED.rawValue:
            self = .library(
                operation: operation(), code: code, message: "the broker does not support retained messages")
        case MOSQ_ERR_TOPIC_ALIAS_INVALID.rawValue:
            self = .library(operation: operation(), code: code, message: "invalid topic alias")
        case MOSQ_ERR_ADMINISTRATIVE_ACTION.rawValue:
            self = .library(operation: operation(), code: code, message: "disconnected by an administrator")
        default:
            let trimmed = message.hasSuffix(".") ? String(message.dropLast()) : message
            self = .library(operation: operation(), code: code, message: trimmed)
        }
    }
}

extension MQTTError {
    /// This error with the reasons libmosquitto logged for it appended, e.g. "A TLS error
    /// occurred (certificate verify failed)". Only library errors are changed.
    func explained(by loggedErrors: [String]) -> MQTTError {
        guard case .library(let operation, let code, let message) = self, !loggedErrors.isEmpty else { return self }
        let reasons = loggedErrors.map { line -> String in
            // "OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed"
            // "Error: host name verification failed."
            var reason = line.split(separator: ":").last.map(String.init) ?? line
            reason = reason.trimmingCharacters(in: .whitespaces)
            if reason.hasSuffix(".") { reason.removeLast() }
            return reason
        }
        var unique: [String] = []
        for reason in reasons where !unique.contains(reason) { unique.append(reason) }
        return .library(operation: operation, code: code, message: "\(message) (\(unique.joined(separator: "; ")))")
    }
}

/// Throws the `MQTTError` for a libmosquitto return code other than `MOSQ_ERR_SUCCESS`.
/// One call per C call, right after it (see `MQTTError.init(code:operation:)`).
@inline(__always)
func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(MQTTError) {
    guard code != MOSQ_ERR_SUCCESS.rawValue else { return }
    throw MQTTError(code: code, operation: operation())
}

/// An MQTT 5 reason code (CONNACK, PUBACK, SUBACK, DISCONNECT). Codes of 0x80 and above are
/// failures. MQTT 3.1.1 SUBACK failures are reported as 0x80.
public struct MQTTReasonCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let success = MQTTReasonCode(rawValue: 0x00)
    public static let noMatchingSubscribers = MQTTReasonCode(rawValue: 0x10)
    public static let unspecifiedError = MQTTReasonCode(rawValue: 0x80)
    public static let implementationSpecificError = MQTTReasonCode(rawValue: 0x83)
    public static let badUserNameOrPassword = MQTTReasonCode(rawValue: 0x86)
    public static let notAuthorized = MQTTReasonCode(rawValue: 0x87)
    public static let serverShuttingDown = MQTTReasonCode(rawValue: 0x8B)
    public static let keepAliveTimeout = MQTTReasonCode(rawValue: 0x8D)
    public static let sessionTakenOver = MQTTReasonCode(rawValue: 0x8E)
    public static let topicFilterInvalid = MQTTReasonCode(rawValue: 0x8F)
    public static let topicNameInvalid = MQTTReasonCode(rawValue: 0x90)
    public static let quotaExceeded = MQTTReasonCode(rawValue: 0x97)
    public static let administrativeAction = MQTTReasonCode(rawValue: 0x98)

    public var isFailure: Bool { rawValue >= 0x80 }

    /// libmosquitto's text for the code and the code itself: "Not authorized (0x87)".
    public var description: String {
        let text = String(cString: mosquitto_reason_string(Int32(rawValue)))
        let hex = String(rawValue, radix: 16, uppercase: true)
        return "\(text) (0x\(hex.count < 2 ? "0" + hex : hex))"
    }
}
