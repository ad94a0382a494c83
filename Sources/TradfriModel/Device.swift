import HubModel

/// What kind of accessory a device is (key 5750).
public enum DeviceKind: Sendable, Hashable, CustomStringConvertible {
    case remote, slaveRemote, light, plug, motionSensor, repeater, blind, soundRemote, airPurifier
    case unknown(Int)

    public init(code: Int) {
        switch code {
        case 0: self = .remote
        case 1: self = .slaveRemote
        case 2: self = .light
        case 3: self = .plug
        case 4: self = .motionSensor
        case 6: self = .repeater
        case 7: self = .blind
        case 8: self = .soundRemote
        case 10: self = .airPurifier
        default: self = .unknown(code)
        }
    }

    /// A lower-case name for listings and MQTT (`light`, `air_purifier`, …).
    public var description: String {
        switch self {
        case .remote: "remote"
        case .slaveRemote: "remote"
        case .light: "light"
        case .plug: "plug"
        case .motionSensor: "motion_sensor"
        case .repeater: "repeater"
        case .blind: "blind"
        case .soundRemote: "sound_remote"
        case .airPurifier: "air_purifier"
        case .unknown(let code): "unknown_\(code)"
        }
    }

    /// Battery devices report only static data and a battery level through the gateway.
    public var isBatteryPowered: Bool {
        switch self {
        case .remote, .slaveRemote, .motionSensor, .blind, .soundRemote: true
        default: false
        }
    }
}

/// The device info object (key 3).
public struct DeviceInfo: Sendable, Hashable {
    public var manufacturer: String
    public var model: String
    public var serial: String
    public var firmware: String?
    public var powerSource: Int?
    /// Battery level 0–100, battery devices only.
    public var battery: Int?

    public init(
        manufacturer: String = "", model: String = "", serial: String = "", firmware: String? = nil,
        powerSource: Int? = nil, battery: Int? = nil
    ) {
        self.manufacturer = manufacturer
        self.model = model
        self.serial = serial
        self.firmware = firmware
        self.powerSource = powerSource
        self.battery = battery
    }
}

public struct LightState: Sendable, Hashable {
    public var on: Bool
    /// 0–254 as the gateway reports it (it often reports 1 while off); clamped to that range
    /// when read, so nothing downstream meets a value outside it.
    public var brightness: Int
    public var colorHex: String?
    public var hue: Int?
    public var saturation: Int?
    public var x: Int?
    public var y: Int?
    /// Mireds, white-spectrum bulbs only.
    public var colorTemperature: Int?
    public var powerOnBehavior: Int?
    public var spectrum: LightSpectrum

    init(_ json: JSON, _ what: String) throws(ModelError) {
        let reader = try ObjectReader(json, what)
        on = reader.bool(GatewayKey.on) ?? false
        brightness = min(max(reader.int(GatewayKey.dimmer) ?? 0, 0), 254)
        colorHex = reader.string(GatewayKey.colorHex)
        hue = reader.int(GatewayKey.hue)
        saturation = reader.int(GatewayKey.saturation)
        x = reader.int(GatewayKey.colorX)
        y = reader.int(GatewayKey.colorY)
        colorTemperature = reader.int(GatewayKey.colorTemperature)
        powerOnBehavior = reader.int(GatewayKey.powerOnBehavior)
        spectrum = LightState.spectrum(of: reader)
    }

    static func spectrum(of reader: ObjectReader) -> LightSpectrum {
        let hasHueSat = reader.has(GatewayKey.hue) && reader.has(GatewayKey.saturation)
        let hasTemperature = reader.has(GatewayKey.colorTemperature)
        if hasHueSat, !hasTemperature { return .color }
        if hasHueSat, reader.int(GatewayKey.hue) != 0 || reader.int(GatewayKey.saturation) != 0 { return .color }
        if hasTemperature { return .whiteSpectrum }
        if reader.has(GatewayKey.colorX) { return .color }
        return .white
    }
}

public struct PlugState: Sendable, Hashable {
    public var on: Bool
}

public struct BlindState: Sendable, Hashable {
    /// The gateway's scale: 0 = fully open, 100 = fully closed (clamped to 0…100 when read).
    public var position: Double

    public init(position: Double) {
        self.position = min(max(position, 0), 100)
    }

    /// Zigbee2MQTT's scale: 100 = fully open.
    public var openPercent: Int { Int((100 - position).rounded()) }
}

public struct AirPurifierState: Sendable, Hashable {
    /// 0 off, 1 auto, 10…50 manual levels (2–50 seen).
    public var fanMode: Int
    /// Current motor speed, 0 when off.
    public var fanSpeed: Int?
    /// PM2.5; nil when the gateway reports 65535 (unknown).
    public var airQuality: Int?
    public var controlsLocked: Bool?
    /// Status LEDs off (the gateway's inverted sense: true = LEDs disabled).
    public var ledsOff: Bool?
    public var filterRuntime: Int?
    public var filterLifetime: Int?
    /// Minutes left; may go negative.
    public var filterRemaining: Int?
    /// True when the filter needs replacing.
    public var filterNeedsReplacement: Bool?
    public var motorRuntime: Int?

    init(_ json: JSON, _ what: String) throws(ModelError) {
        let reader = try ObjectReader(json, what)
        fanMode = reader.int(GatewayKey.fanMode) ?? 0
        fanSpeed = reader.int(GatewayKey.fanSpeed)
        let quality = reader.int(GatewayKey.airQuality)
        airQuality = quality == 65535 ? nil : quality
        controlsLocked = reader.bool(GatewayKey.controlsLocked)
        ledsOff = reader.bool(GatewayKey.ledsOff)
        filterRuntime = reader.int(GatewayKey.filterRuntime)
        filterLifetime = reader.int(GatewayKey.filterLifetime)
        filterRemaining = reader.int(GatewayKey.filterRemaining)
        filterNeedsReplacement = reader.int(GatewayKey.filterStatus).map { $0 != 0 }
        motorRuntime = reader.int(GatewayKey.motorRuntime)
    }
}

/// One accessory as the gateway reports it at `15001/<id>`.
public struct Device: GatewayResource, Sendable, Hashable, Identifiable {
    public var id: Int
    public var name: String
    public var kind: DeviceKind
    public var createdAt: Int?
    /// 9019, published as-is: the gateway keeps a powered-off bulb "reachable" until a command fails.
    public var reachable: Bool?
    /// 9020, unix seconds.
    public var lastSeen: Int?
    public var otaState: Int?
    public var info: DeviceInfo
    public var light: LightState?
    public var plug: PlugState?
    public var blind: BlindState?
    public var airPurifier: AirPurifierState?

    public init(json: JSON) throws(ModelError) {
        let reader = try ObjectReader(json, "device")
        id = try reader.requiredInt(GatewayKey.instanceID)
        let what = "device \(id)"
        name = reader.string(GatewayKey.name) ?? ""
        kind = DeviceKind(code: reader.int(GatewayKey.deviceType) ?? -1)
        createdAt = reader.int(GatewayKey.createdAt)
        reachable = reader.bool(GatewayKey.reachable)
        lastSeen = reader.int(GatewayKey.lastSeen)
        otaState = reader.int(GatewayKey.otaState)
        if let infoJSON = reader.members[GatewayKey.deviceInfo] {
            let infoReader = try ObjectReader(infoJSON, "\(what) info (key 3)")
            info = DeviceInfo(
                manufacturer: infoReader.string(GatewayKey.manufacturer) ?? "",
                model: infoReader.string(GatewayKey.model) ?? "",
                serial: infoReader.string(GatewayKey.serial) ?? "",
                firmware: infoReader.string(GatewayKey.firmware),
                powerSource: infoReader.int(GatewayKey.powerSource),
                battery: infoReader.int(GatewayKey.battery))
        } else {
            info = DeviceInfo()
        }
        if let object = reader.capability(GatewayKey.lightCapability) {
            light = try LightState(object, "\(what) light (3311)")
        }
        if let object = reader.capability(GatewayKey.plugCapability) {
            plug = PlugState(on: try ObjectReader(object, "\(what) plug (3312)").bool(GatewayKey.on) ?? false)
        }
        if let object = reader.capability(GatewayKey.blindCapability) {
            blind = BlindState(
                position: try ObjectReader(object, "\(what) blind (15015)").double(GatewayKey.blindPosition) ?? 0)
        }
        if let object = reader.capability(GatewayKey.airPurifierCapability) {
            airPurifier = try AirPurifierState(object, "\(what) air purifier (15025)")
        }
    }
}
