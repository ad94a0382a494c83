import HubModel

/// The TRÅDFRI gateway's resources as the bridge's hub-neutral model: the one place where the
/// gateway's keys and scales become capabilities (and `CommandPlanner` the way back).
extension Device {
    /// This device on the hub named `hub`.
    public func hubDevice(hub: String) -> HubDevice {
        var device = HubDevice(
            id: ItemID(hub: hub, id), name: name, type: kind.deviceType, manufacturer: info.manufacturer,
            model: info.model, serial: info.serial, firmware: info.firmware,
            batteryPowered: kind.isBatteryPowered || info.battery != nil)
        device.reachable = reachable
        device.lastSeen = lastSeen
        device.light = light?.hubLight
        if let plug { device.onOff = OnOff(on: plug.on) }
        if let blind { device.cover = Cover(openPercent: blind.openPercent) }
        device.airPurifier = airPurifier?.hubAirPurifier
        if device.batteryPowered { device.battery = Battery(level: info.battery) }
        return device
    }
}

extension DeviceKind {
    var deviceType: DeviceType {
        switch self {
        case .remote, .slaveRemote: .remote
        case .light: .light
        case .plug: .plug
        case .motionSensor: .motionSensor
        case .repeater: .repeater
        case .blind: .blind
        case .soundRemote: .soundRemote
        case .airPurifier: .airPurifier
        case .unknown(let code): .unknown("unknown_\(code)")
        }
    }
}

extension LightState {
    /// The light: xy as reported (× 65535) or else from hue and saturation; a white-spectrum
    /// bulb's temperature as reported or else the nearest one of its colour.
    var hubLight: Light {
        var hueSaturation: Light.HueSaturation?
        if let hue, let saturation {
            hueSaturation = Light.HueSaturation(
                hue: Color.degrees(gatewayHue: hue), saturation: Color.percent(gatewaySaturation: saturation))
        }
        var xy: Color.XY?
        if let x, let y {
            xy = Color.xy(gatewayX: x, gatewayY: y)
        } else if let hueSaturation {
            xy = Color.xy(fromRGB: Color.rgb(hue: hueSaturation.hue, saturation: hueSaturation.saturation / 100))
        }
        var mireds: Int?
        if spectrum == .whiteSpectrum {
            mireds = colorTemperature
            if mireds == nil, let xy {
                let derived = Color.mireds(fromKelvin: Color.kelvin(fromXY: xy))
                mireds = min(max(derived, Color.whiteSpectrumMireds.lowerBound), Color.whiteSpectrumMireds.upperBound)
            }
        }
        return Light(
            on: on, brightness: brightness, spectrum: spectrum, colorTemperature: mireds,
            colorTemperatureRange: Color.whiteSpectrumMireds, xy: xy,
            hueSaturation: spectrum == .color ? hueSaturation : nil,
            powerOnBehavior: powerOnBehavior.map { $0 == 4 ? .previous : .on })
    }
}

extension AirPurifierState {
    var hubAirPurifier: AirPurifier {
        let mode: FanMode =
            switch fanMode {
            case 0: .off
            case 1: .auto
            default: .level(min(max((fanMode + 5) / 10, 1), 5))
            }
        return AirPurifier(
            fanMode: mode, fanSpeed: fanSpeed, pm25: airQuality, ledsOn: ledsOff.map { !$0 },
            childLock: controlsLocked, replaceFilter: filterNeedsReplacement, filterAge: filterRuntime,
            filterRemaining: filterRemaining)
    }
}

extension Group {
    /// This group on the hub named `hub`, with its scenes.
    public func hubGroup(hub: String, scenes: [Scene]) -> HubGroup {
        HubGroup(
            id: ItemID(hub: hub, id), name: name, members: memberIDs.map { ItemID(hub: hub, $0) },
            scenes: scenes.sorted { $0.id < $1.id }.map { HubScene(id: ItemID(hub: hub, $0.id), name: $0.name) })
    }
}
