import CoAP
import Foundation
import HubModel
import TradfriModel

/// How a device PUT changes a device, like the real gateway: the body is merged into the device
/// (`{"3311":[{…}]}` wrapper, rename via 9001), values are clamped, keys a device lacks are ignored.
extension GatewaySimulator {
    func putDevice(_ id: Int, _ payload: [UInt8], source: String) -> CoAPServerResponse {
        guard let body = try? JSON(parsing: payload), let patch = body.objectValue else {
            return CoAPServerResponse(code: .badRequest)
        }
        guard let result = apply(patch, toDevice: id) else { return CoAPServerResponse(code: .badRequest) }
        if result { notify(GatewayPath.device(id)) }
        return CoAPServerResponse(code: .changed)
    }

    /// Applies a device PUT body. Returns whether anything changed, or nil for a malformed body.
    func apply(_ patch: [String: JSON], toDevice id: Int) -> Bool? {
        guard var device = devices[id] else { return nil }
        let before = device
        if let name = patch[GatewayKey.name] {
            guard let text = name.stringValue else { return nil }
            device[GatewayKey.name] = .string(text)
        }
        let capabilities = [
            GatewayKey.lightCapability, GatewayKey.plugCapability, GatewayKey.blindCapability,
            GatewayKey.airPurifierCapability,
        ]
        for key in capabilities {
            guard let value = patch[key] else { continue }
            guard let changes = value.arrayValue?.first?.objectValue else { return nil }
            guard var object = device[key]?.arrayValue?.first?.objectValue else { continue }  // device lacks it
            switch key {
            case GatewayKey.lightCapability: applyLight(changes, to: &object)
            case GatewayKey.plugCapability: applyPlug(changes, to: &object)
            case GatewayKey.blindCapability: applyBlind(changes, deviceID: id, current: object)
            default: applyAirPurifier(changes, to: &object)
            }
            device[key] = .array([.object(object)])
        }
        guard device != before else { return false }
        device[GatewayKey.lastSeen] = .int(Int(Date().timeIntervalSince1970))
        devices[id] = device
        return true
    }

    // MARK: Lights

    func applyLight(_ changes: [String: JSON], to light: inout [String: JSON]) {
        let spectrum = LightState.spectrum(of: light)
        let wasOn = light[GatewayKey.on]?.boolValue ?? false
        if let on = changes[GatewayKey.on]?.boolValue {
            light[GatewayKey.on] = .int(on ? 1 : 0)
        }
        let turnsOn = changes[GatewayKey.on]?.boolValue == true
        let transition = changes[GatewayKey.transitionTime]?.intValue ?? 0
        let changesColour = [
            GatewayKey.colorTemperature, GatewayKey.colorHex, GatewayKey.hue, GatewayKey.saturation,
            GatewayKey.colorX,
        ].contains { changes[$0] != nil }
        // IKEA bulbs transition one attribute at a time: with a transition, brightness in the same
        // PUT as a colour change is ignored (pytradfri#270).
        let brightnessIgnored = transition > 0 && changesColour
        if let level = changes[GatewayKey.dimmer]?.intValue, !brightnessIgnored {
            let clamped = min(max(level, 0), 254)
            if clamped == 0 {
                light[GatewayKey.on] = 0
                light[GatewayKey.dimmer] = 1
            } else {
                light[GatewayKey.dimmer] = .int(clamped)
                if changes[GatewayKey.on] == nil { light[GatewayKey.on] = 1 }
            }
        }
        if let behaviour = changes[GatewayKey.powerOnBehavior]?.intValue {
            light[GatewayKey.powerOnBehavior] = .int(behaviour)
        }
        // Colour sent to a light that stays off is ignored, even after it is switched on (pytradfri#270).
        guard wasOn || turnsOn else { return }
        switch spectrum {
        case .white:
            break
        case .whiteSpectrum:
            applyWhiteSpectrum(changes, to: &light)
        case .color:
            applyColour(changes, to: &light)
        }
    }

    private func applyWhiteSpectrum(_ changes: [String: JSON], to light: inout [String: JSON]) {
        var mireds: Int?
        if let value = changes[GatewayKey.colorTemperature]?.intValue {
            mireds = min(max(value, Color.whiteSpectrumMireds.lowerBound), Color.whiteSpectrumMireds.upperBound)
        } else if let hex = changes[GatewayKey.colorHex]?.stringValue {
            // Only the app's presets are honoured; anything else falls back to warm.
            mireds = Color.whiteSpectrumPresets.first { $0.hex == hex.lowercased() }?.mireds ?? 454
        } else if let x = changes[GatewayKey.colorX]?.intValue, let y = changes[GatewayKey.colorY]?.intValue {
            let kelvin = Color.kelvin(fromXY: Color.xy(gatewayX: x, gatewayY: y))
            mireds = min(max(Color.mireds(fromKelvin: kelvin), 250), 454)
        }
        guard let mireds else { return }
        let xy = Color.gatewayXY(Color.xy(fromKelvin: Double(Color.kelvin(fromMireds: mireds))))
        light[GatewayKey.colorTemperature] = .int(mireds)
        light[GatewayKey.colorX] = .int(xy.x)
        light[GatewayKey.colorY] = .int(xy.y)
        light[GatewayKey.colorHex] = .string(Color.nearestWhitePreset(mireds: mireds))
    }

    private func applyColour(_ changes: [String: JSON], to light: inout [String: JSON]) {
        let hue = changes[GatewayKey.hue]?.intValue
        let saturation = changes[GatewayKey.saturation]?.intValue
        var rgb: Color.RGB?
        if hue != nil || saturation != nil {
            // Hue and saturation belong together: the one not sent is taken as 0.
            let h = min(max(hue ?? 0, 0), 65535)
            let s = min(max(saturation ?? 0, 0), 65535)
            light[GatewayKey.hue] = .int(h)
            light[GatewayKey.saturation] = .int(s)
            rgb = Color.rgb(hue: Color.degrees(gatewayHue: h), saturation: Color.percent(gatewaySaturation: s) / 100)
            let xy = Color.gatewayXY(Color.xy(fromRGB: rgb!))
            light[GatewayKey.colorX] = .int(xy.x)
            light[GatewayKey.colorY] = .int(xy.y)
        } else if let x = changes[GatewayKey.colorX]?.intValue, let y = changes[GatewayKey.colorY]?.intValue {
            light[GatewayKey.colorX] = .int(min(max(x, 0), 65535))
            light[GatewayKey.colorY] = .int(min(max(y, 0), 65535))
            rgb = Color.rgb(fromXY: Color.xy(gatewayX: x, gatewayY: y))
            storeHueSaturation(of: rgb!, in: &light)
        } else if let hex = changes[GatewayKey.colorHex]?.stringValue {
            let preset = Color.colorPresets.contains(hex.lowercased()) ? hex.lowercased() : "f1e0b5"
            rgb = Color.RGB(hex: preset)
            let xy = Color.gatewayXY(Color.xy(fromRGB: rgb!))
            light[GatewayKey.colorX] = .int(xy.x)
            light[GatewayKey.colorY] = .int(xy.y)
            storeHueSaturation(of: rgb!, in: &light)
        }
        if let rgb {
            // The gateway reports a preset's hex, "0" for anything else.
            light[GatewayKey.colorHex] = .string(Color.colorPresets.contains(rgb.hex) ? rgb.hex : "0")
        }
    }

    private func storeHueSaturation(of rgb: Color.RGB, in light: inout [String: JSON]) {
        let hs = Color.hueSaturation(fromRGB: rgb)
        light[GatewayKey.hue] = .int(Color.gatewayHue(degrees: hs.hue))
        light[GatewayKey.saturation] = .int(Color.gatewaySaturation(percent: hs.saturation * 100))
    }

    // MARK: Plugs

    func applyPlug(_ changes: [String: JSON], to plug: inout [String: JSON]) {
        if let on = changes[GatewayKey.on]?.boolValue {
            plug[GatewayKey.on] = .int(on ? 1 : 0)
        }
        if let level = changes[GatewayKey.dimmer]?.intValue {
            plug[GatewayKey.on] = .int(level > 0 ? 1 : 0)
        }
    }

    // MARK: Air purifier

    func applyAirPurifier(_ changes: [String: JSON], to purifier: inout [String: JSON]) {
        if let mode = changes[GatewayKey.fanMode]?.intValue, mode == 0 || mode == 1 || (2...50).contains(mode) {
            purifier[GatewayKey.fanMode] = .int(mode)
            let quality = purifier[GatewayKey.airQuality]?.intValue ?? 0
            let speed =
                switch mode {
                case 0: 0
                case 1: min(10 + (quality == 65535 ? 0 : quality) / 5, 50)
                default: mode
                }
            purifier[GatewayKey.fanSpeed] = .int(speed)
            if mode == 0 { purifier[GatewayKey.airQuality] = 65535 }
        }
        if let locked = changes[GatewayKey.controlsLocked]?.boolValue {
            purifier[GatewayKey.controlsLocked] = .int(locked ? 1 : 0)
        }
        if let ledsOff = changes[GatewayKey.ledsOff]?.boolValue {
            purifier[GatewayKey.ledsOff] = .int(ledsOff ? 1 : 0)
        }
    }

    // MARK: Blinds (move toward the target over time, notifying while moving)

    func applyBlind(_ changes: [String: JSON], deviceID: Int, current: [String: JSON]) {
        if changes[GatewayKey.blindTrigger] != nil {
            blindTargets[deviceID] = nil
            return
        }
        guard let target = changes[GatewayKey.blindPosition]?.doubleValue else { return }
        let clamped = min(max(target, 0), 100)
        if clamped == current[GatewayKey.blindPosition]?.doubleValue {
            blindTargets[deviceID] = nil
        } else {
            blindTargets[deviceID] = clamped
            startBlindMotor()
        }
    }

    private func startBlindMotor() {
        guard blindTimer == nil else { return }
        let step = Duration.milliseconds(200)
        blindTimer = Task { @CoAPActor [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: step)
                guard let self, !self.blindTargets.isEmpty else { break }
                self.moveBlinds(by: self.configuration.blindSpeed * 0.2)
            }
            self?.blindTimer = nil
        }
    }

    private func moveBlinds(by distance: Double) {
        for (id, target) in blindTargets {
            guard var device = devices[id], var blind = device[GatewayKey.blindCapability]?[0]?.objectValue else {
                blindTargets[id] = nil
                continue
            }
            let position = blind[GatewayKey.blindPosition]?.doubleValue ?? 0
            let next = target > position ? min(position + distance, target) : max(position - distance, target)
            blind[GatewayKey.blindPosition] = .double((next * 10).rounded() / 10)
            device[GatewayKey.blindCapability] = .array([.object(blind)])
            device[GatewayKey.lastSeen] = .int(Int(Date().timeIntervalSince1970))
            devices[id] = device
            if next == target { blindTargets[id] = nil }
            notify(GatewayPath.device(id))
        }
    }
}

extension LightState {
    /// The spectrum of a raw 3311 object (the simulator works on the gateway's JSON).
    static func spectrum(of object: [String: JSON]) -> LightSpectrum {
        let keys = object
        let hasHueSat = keys[GatewayKey.hue] != nil && keys[GatewayKey.saturation] != nil
        let hasTemperature = keys[GatewayKey.colorTemperature] != nil
        if hasHueSat, !hasTemperature { return .color }
        if hasTemperature { return .whiteSpectrum }
        if keys[GatewayKey.colorX] != nil { return .color }
        return .white
    }
}
