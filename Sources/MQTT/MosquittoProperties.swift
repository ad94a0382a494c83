internal import CMosquitto
import Foundation

/// An owned libmosquitto property list (MQTT 5), freed on deinit unless handed over.
final class MosquittoProperties {
    /// nil for an empty list.
    private(set) var list: OpaquePointer?

    init() {}

    deinit {
        mosquitto_property_free_all(&list)
    }

    /// The PUBLISH (or will) properties of `message`.
    convenience init(publishing message: MQTTMessage) throws(MQTTError) {
        self.init()
        if message.payloadIsUTF8 {
            try check(
                mosquitto_property_add_byte(&list, Self.id(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR), 1),
                "MQTT 5 property payload-format-indicator")
        }
        if let interval = message.messageExpiryInterval {
            try check(
                mosquitto_property_add_int32(&list, Self.id(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL), interval),
                "MQTT 5 property message-expiry-interval")
        }
        if let contentType = message.contentType {
            try check(
                mosquitto_property_add_string(&list, Self.id(MQTT_PROP_CONTENT_TYPE), contentType),
                "MQTT 5 property content-type")
        }
        if let topic = message.responseTopic {
            try check(
                mosquitto_property_add_string(&list, Self.id(MQTT_PROP_RESPONSE_TOPIC), topic),
                "MQTT 5 property response-topic")
        }
        if let data = message.correlationData {
            guard data.count <= Int(UInt16.max) else {
                throw .invalidArgument("correlation data longer than 65535 bytes")
            }
            let code = data.withUnsafeBytes { bytes in
                mosquitto_property_add_binary(
                    &list, Self.id(MQTT_PROP_CORRELATION_DATA), bytes.baseAddress, UInt16(bytes.count))
            }
            try check(code, "MQTT 5 property correlation-data")
        }
        for property in message.userProperties {
            try check(
                mosquitto_property_add_string_pair(
                    &list, Self.id(MQTT_PROP_USER_PROPERTY), property.name, property.value),
                "MQTT 5 user property '\(property.name)'")
        }
    }

    /// Gives the list to a libmosquitto call that takes ownership on success.
    func release() -> OpaquePointer? {
        defer { list = nil }
        return list
    }

    /// Copies the properties of a received PUBLISH into `message`. `list` is only valid during the
    /// callback that passed it; nothing here keeps a pointer.
    static func read(_ list: OpaquePointer?, into message: inout MQTTMessage) {
        var cursor = list
        while let property = cursor {
            defer { cursor = mosquitto_property_next(property) }
            let identifier = mosquitto_property_identifier(property)
            switch identifier {
            case id(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR):
                var value: UInt8 = 0
                if mosquitto_property_read_byte(property, identifier, &value, false) != nil {
                    message.payloadIsUTF8 = value == 1
                }
            case id(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL):
                var value: UInt32 = 0
                if mosquitto_property_read_int32(property, identifier, &value, false) != nil {
                    message.messageExpiryInterval = value
                }
            case id(MQTT_PROP_CONTENT_TYPE):
                message.contentType = readString(property, identifier)
            case id(MQTT_PROP_RESPONSE_TOPIC):
                message.responseTopic = readString(property, identifier)
            case id(MQTT_PROP_CORRELATION_DATA):
                var value: UnsafeMutableRawPointer?
                var length: UInt16 = 0
                if mosquitto_property_read_binary(property, identifier, &value, &length, false) != nil {
                    message.correlationData =
                        value.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(length))) } ?? []
                    free(value)
                }
            case id(MQTT_PROP_USER_PROPERTY):
                var name: UnsafeMutablePointer<CChar>?
                var value: UnsafeMutablePointer<CChar>?
                if mosquitto_property_read_string_pair(property, identifier, &name, &value, false) != nil {
                    message.userProperties.append(
                        MQTTUserProperty(
                            name.map { String(cString: $0) } ?? "", value.map { String(cString: $0) } ?? ""))
                    free(name)
                    free(value)
                }
            default:
                break
            }
        }
    }

    private static func readString(_ property: OpaquePointer, _ identifier: Int32) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        guard mosquitto_property_read_string(property, identifier, &value, false) != nil, let value else { return nil }
        defer { free(value) }
        return String(cString: value)
    }

    private static func id(_ property: mqtt5_property) -> Int32 { Int32(property.rawValue) }
}
