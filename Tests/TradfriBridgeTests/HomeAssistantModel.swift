import Foundation
import HubModel
import TestSupport
import TradfriBridge
import TradfriModel

/// What Home Assistant's MQTT JSON light (`schema: json`) does with a discovery config, written
/// down from Home Assistant core's `mqtt/light/schema_json.py` (2025.x): the exact command
/// payloads it publishes for `light.turn_on` / `light.turn_off`, and how it reads the state
/// topic. Anything Home Assistant would log as a warning, or fail on, is recorded in `problems`.
struct HomeAssistantJSONLight {
    let commandTopic: String
    let stateTopic: String
    let brightnessScale: Int
    let supportedColorModes: [String]
    let colorTempInKelvin: Bool

    private(set) var isOn: Bool?
    /// 0…255, Home Assistant's scale.
    private(set) var brightness: Int?
    private(set) var colorMode: String?
    private(set) var colorTempKelvin: Int?
    private(set) var xy: (x: Double, y: Double)?
    private(set) var hs: (hue: Double, saturation: Double)?
    private(set) var problems: [String] = []

    init(config: JSON) throws {
        guard config["schema"] == "json", let command = config["command_topic"]?.stringValue,
            let state = config["state_topic"]?.stringValue
        else { throw ModelFailure("not a JSON-schema light with state and command topics: \(config)") }
        commandTopic = command
        stateTopic = state
        brightnessScale = config["brightness_scale"]?.intValue ?? 255
        supportedColorModes = (config["supported_color_modes"]?.arrayValue ?? []).compactMap(\.stringValue)
        colorTempInKelvin = config["color_temp_kelvin"]?.boolValue ?? false
        if supportedColorModes.count == 1 { colorMode = supportedColorModes[0] }
    }

    var supportsBrightness: Bool { supportedColorModes.contains { $0 != "onoff" } }

    // MARK: Commands (async_turn_on / async_turn_off)

    /// The payload `light.turn_on` publishes. `brightness` is Home Assistant's 0…255.
    func turnOn(
        brightness: Int? = nil, colorTempKelvin: Int? = nil, xy: (Double, Double)? = nil,
        hs: (Double, Double)? = nil, transition: Double? = nil
    ) -> String {
        var members: [(String, String)] = [("state", "\"ON\"")]
        if let hs, supportedColorModes.contains("hs") {
            members.append(("color", "{\"h\":\(hs.0),\"s\":\(hs.1)}"))
        }
        if let xy, supportedColorModes.contains("xy") {
            members.append(("color", "{\"x\":\(xy.0),\"y\":\(xy.1)}"))
        }
        if let transition { members.append(("transition", "\(transition)")) }
        if let brightness, supportsBrightness {
            let device = max(Int((Double(brightness) * Double(brightnessScale) / 255).rounded(.toNearestOrEven)), 1)
            members.append(("brightness", "\(device)"))
        }
        if let kelvin = colorTempKelvin {
            members.append(
                ("color_temp", "\(colorTempInKelvin ? kelvin : Int((1_000_000 / Double(kelvin)).rounded(.down)))"))
        }
        return "{" + members.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    func turnOff(transition: Double? = nil) -> String {
        transition.map { #"{"state":"OFF","transition":\#($0)}"# } ?? #"{"state":"OFF"}"#
    }

    // MARK: State (_state_received)

    mutating func receive(_ payload: String) {
        guard let values = (try? JSON(parsing: payload))?.objectValue else {
            return problems.append("state is not a JSON object: \(payload)")
        }
        switch values["state"] {
        case "ON"?: isOn = true
        case "OFF"?: isOn = false
        case .null?: isOn = nil
        case nil: problems.append("KeyError 'state' in \(payload)")
        default: break
        }
        if let mode = values["color_mode"] { updateColor(mode, values, payload) }
        if supportsBrightness, let value = values["brightness"] {
            if let level = value.doubleValue {
                if level != 0 { brightness = Int((level * 255 / Double(brightnessScale)).rounded(.toNearestOrEven)) }
            } else {
                problems.append("Invalid brightness value '\(value)'")
            }
        }
    }

    private mutating func updateColor(_ mode: JSON, _ values: [String: JSON], _ payload: String) {
        guard let mode = mode.stringValue, supportedColorModes.contains(mode) else {
            return problems.append("Invalid color mode '\(mode)' received (supported: \(supportedColorModes))")
        }
        switch mode {
        case "color_temp":
            guard let value = values["color_temp"]?.doubleValue else {
                return problems.append("Invalid or incomplete color value '\(payload)'")
            }
            colorTempKelvin = colorTempInKelvin ? Int(value) : Int((1_000_000 / value).rounded(.down))
        case "hs":
            guard let h = values["color"]?["h"]?.doubleValue, let s = values["color"]?["s"]?.doubleValue else {
                return problems.append("Invalid or incomplete color value '\(payload)'")
            }
            hs = (h, s)
        case "xy":
            guard let x = values["color"]?["x"]?.doubleValue, let y = values["color"]?["y"]?.doubleValue else {
                return problems.append("Invalid or incomplete color value '\(payload)'")
            }
            xy = (x, y)
        default:
            break
        }
        colorMode = mode
    }
}

struct ModelFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Renders Home Assistant templates with Jinja2's sandbox (what Home Assistant uses), through
/// `python3` and the `python3-jinja2` package. Each item: a template and its variables; the
/// result is stripped like Home Assistant does.
enum Jinja {
    struct Item {
        var template: String
        var variables: [String: JSON]
    }

    static let program = """
        import json, sys
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        env = ImmutableSandboxedEnvironment()
        items = json.loads(sys.stdin.read())
        print(json.dumps([env.from_string(i["template"]).render(**i["variables"]).strip() for i in items]))
        """

    static func render(_ items: [Item]) async throws -> [String] {
        let input: JSON = .array(items.map { ["template": .string($0.template), "variables": .object($0.variables)] })
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("jinja-\(UUID().uuidString).json")
        try input.description.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try await runCommand("sh", ["-c", "python3 -c \"$0\" < \"$1\"", program, file.path])
        let line = result.output.split(separator: "\n").last.map(String.init) ?? ""
        guard let rendered = try JSON(parsing: line).arrayValue?.compactMap(\.stringValue),
            rendered.count == items.count
        else {
            throw ModelFailure("jinja2 gave: \(result.output)")
        }
        return rendered
    }

    /// A state template (`value_template` and friends) for a received payload.
    static func state(_ template: String, payload: String) async throws -> String {
        let json = (try? JSON(parsing: payload)) ?? .null
        return try await render([Item(template: template, variables: ["value": .string(payload), "value_json": json])])[
            0]
    }

    /// A command template with its variables (`value`, `position`, …).
    static func command(_ template: String, _ variables: [String: JSON]) async throws -> String {
        try await render([Item(template: template, variables: variables)])[0]
    }
}

extension HomeAssistantConfig {
    /// A config as received on `<prefix>/<component>/<node>/<object>/config`.
    init?(topic: String, payload: JSON) {
        let parts = topic.split(separator: "/")
        guard parts.count == 5, parts[4] == "config" else { return nil }
        self.init(
            prefix: String(parts[0]), component: String(parts[1]), nodeID: String(parts[2]),
            objectID: String(parts[3]), payload: payload)
    }
}
