import CoAP
import HubModel
import TradfriModel

/// Group and scene behaviour: a group PUT (flat keys) applies to its member devices, which notify;
/// the group resource itself does not notify on on/off/dim, only on rename.
extension GatewaySimulator {
    func putGroup(_ id: Int, _ payload: [UInt8]) -> CoAPServerResponse {
        guard let body = try? JSON(parsing: payload), let patch = body.objectValue, var group = groups[id] else {
            return CoAPServerResponse(code: .badRequest)
        }
        var renamed = false
        if let name = patch[GatewayKey.name] {
            guard let text = name.stringValue else { return CoAPServerResponse(code: .badRequest) }
            renamed = group[GatewayKey.name] != .string(text)
            group[GatewayKey.name] = .string(text)
        }
        let members = memberIDs(of: group)

        // Scene activation needs 5850:1 in the same PUT, also when the scene is already selected.
        if let sceneID = patch[GatewayKey.sceneID]?.intValue, patch[GatewayKey.on]?.intValue == 1,
            let scene = scenes[id]?[sceneID]
        {
            group[GatewayKey.sceneID] = .int(sceneID)
            group[GatewayKey.on] = 1
            groups[id] = group
            activate(scene)
            if renamed { notify(GatewayPath.group(id)) }
            return CoAPServerResponse(code: .changed)
        }

        var lightChanges: [String: JSON] = [:]
        for key in [GatewayKey.on, GatewayKey.dimmer, GatewayKey.transitionTime] {
            if let value = patch[key] { lightChanges[key] = value }
        }
        if let on = patch[GatewayKey.on] { group[GatewayKey.on] = on }
        if let level = patch[GatewayKey.dimmer] { group[GatewayKey.dimmer] = level }
        groups[id] = group
        if !lightChanges.isEmpty {
            for member in members {
                if devices[member]?[GatewayKey.lightCapability] != nil {
                    changeDevice(member, [GatewayKey.lightCapability: .array([.object(lightChanges)])])
                } else if devices[member]?[GatewayKey.plugCapability] != nil {
                    changeDevice(member, [GatewayKey.plugCapability: .array([.object(lightChanges)])])
                }
            }
        }
        var blindChanges: [String: JSON] = [:]
        for key in [GatewayKey.blindPosition, GatewayKey.blindTrigger] {
            if let value = patch[key] { blindChanges[key] = value }
        }
        if !blindChanges.isEmpty {
            for member in members where devices[member]?[GatewayKey.blindCapability] != nil {
                changeDevice(member, [GatewayKey.blindCapability: .array([.object(blindChanges)])])
            }
        }
        if renamed { notify(GatewayPath.group(id)) }
        return CoAPServerResponse(code: .changed)
    }

    func putScene(group: Int, id: Int, _ payload: [UInt8]) -> CoAPServerResponse {
        guard let body = try? JSON(parsing: payload), body.objectValue != nil, var scene = scenes[group]?[id] else {
            return CoAPServerResponse(code: .badRequest)
        }
        if let name = body[GatewayKey.name]?.stringValue {
            scene[GatewayKey.name] = .string(name)
            scenes[group]?[id] = scene
            notify(GatewayPath.scene(id, ofGroup: group))
        }
        return CoAPServerResponse(code: .changed)
    }

    /// Applies each light setting of a scene (15013) to its light.
    func activate(_ scene: JSON) {
        for setting in scene[GatewayKey.sceneLightSettings]?.arrayValue ?? [] {
            guard var values = setting.objectValue,
                let device = values.removeValue(forKey: GatewayKey.instanceID)?.intValue
            else { continue }
            if devices[device]?[GatewayKey.lightCapability] != nil {
                changeDevice(device, [GatewayKey.lightCapability: .array([.object(values)])])
            }
        }
    }

    /// Applies a device patch and notifies when something changed.
    func changeDevice(_ id: Int, _ patch: [String: JSON]) {
        if apply(patch, toDevice: id) == true { notify(GatewayPath.device(id)) }
    }
}
