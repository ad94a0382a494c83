import CoAP
import HubModel
import Logging
import TradfriModel

/// `options`: read, and change while running, the settings that are safe to change without a
/// restart. Keys are the configuration file's:
///
///     {}                                                         → the current values
///     {"options": {"logging": {"level": "debug"},
///                  "gateway": {"command_spacing": 1},
///                  "homeassistant": {"republish_delay": 5}}}        → change, then the new values
///
/// The answer is `{"options": {…}, "changed": ["logging.level", …], "restart_required": false}`.
/// Changes last until the bridge stops (the file is never rewritten: put them in the file to
/// keep them). Anything else (the broker, credentials, topics, …) is refused, naming the key: it
/// needs the file and a restart. A request with one bad value changes nothing.
extension BridgeRequests {
    /// The options that can change at runtime, as `section.key`.
    static let runtimeOptions = ["logging.level", "gateway.command_spacing", "homeassistant.republish_delay"]
    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error"]

    func registerOptionsVerb() {
        register(verb: "options") { [unowned self] request in try self.options(request) }
    }

    private func options(_ request: BridgeRequest) throws -> JSON {
        try request.allowOnly(["options"])
        var changed: [String] = []
        if let options = request.members["options"] {
            guard let sections = options.objectValue else {
                throw BridgeRequestError("'options' must be an object such as {\"logging\": {\"level\": \"debug\"}}")
            }
            var configuration = context.configuration
            for (section, keys) in sections.sorted(by: { $0.key < $1.key }) {
                guard let keys = keys.objectValue else {
                    throw BridgeRequestError("options.\(section) must be an object of keys and values")
                }
                for (key, value) in keys.sorted(by: { $0.key < $1.key }) {
                    try Self.apply("\(section).\(key)", value, to: &configuration)
                    changed.append("\(section).\(key)")
                }
            }
            // Everything was valid: put it into effect.
            context.configuration = configuration
            if let level = Logger.Level(rawValue: configuration.logging.level) { BridgeLogHandler.level = level }
            for hub in context.hubs { hub.setCommandSpacing(.seconds(configuration.gateway.commandSpacing)) }
            if !changed.isEmpty {
                logger.notice("options changed", metadata: ["options": "\(changed.joined(separator: ","))"])
                context.post(.optionsChanged)
            }
        }
        return ["options": current, "changed": .array(changed.map(JSON.string)), "restart_required": false]
    }

    private var current: JSON {
        let configuration = context.configuration
        return [
            "logging": ["level": .string(configuration.logging.level)],
            "gateway": ["command_spacing": .double(configuration.gateway.commandSpacing)],
            "homeassistant": ["republish_delay": .double(configuration.homeAssistant.republishDelay)],
        ]
    }

    /// Validates one option like the configuration file does, and sets it.
    private static func apply(
        _ key: String, _ value: JSON, to configuration: inout BridgeConfiguration
    ) throws(BridgeRequestError) {
        func seconds(_ range: ClosedRange<Double>) throws(BridgeRequestError) -> Double {
            guard let number = value.doubleValue, range.contains(number) else {
                throw BridgeRequestError(
                    "\(key) must be a number of seconds from \(range.lowerBound) to \(range.upperBound) (got \(value))")
            }
            return number
        }
        switch key {
        case "logging.level":
            guard let level = value.stringValue, logLevels.contains(level) else {
                throw BridgeRequestError(
                    "logging.level must be one of \(logLevels.joined(separator: ", ")) (got \(value))")
            }
            configuration.logging.level = level
        case "gateway.command_spacing":
            configuration.gateway.commandSpacing = try seconds(0...10)
        case "homeassistant.republish_delay":
            configuration.homeAssistant.republishDelay = try seconds(0...300)
        default:
            throw BridgeRequestError(
                "'\(key)' cannot be changed while the bridge runs (change it in the configuration file and restart); "
                    + "these can: \(runtimeOptions.joined(separator: ", "))")
        }
    }
}
