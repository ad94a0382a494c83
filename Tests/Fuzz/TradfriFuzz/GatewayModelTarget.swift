import TradfriModel

/// A payload from the gateway, read as every resource the bridge reads; what parses is turned into
/// the MQTT state the bridge would publish, which must itself be JSON the bridge can read back.
struct GatewayModelTarget: FuzzTarget {
    static let name = "gateway-model"

    func run(_ input: [UInt8]) {
        if let device = try? Device(payload: input) {
            check(MQTTState.payload(for: device))
            if let light = device.light { _ = ColorMode.supported(by: light.spectrum) }
            _ = ColorMode.supported(byGroupOf: [device] + DemoHome.devices)
        }
        if let group = try? Group(payload: input) {
            check(MQTTState.payload(for: group, members: DemoHome.devices, activeScene: nil))
        }
        _ = try? Scene(payload: input)
        _ = try? GatewayDetails(payload: input)
        _ = try? GatewayNotification.list(payload: input)
        _ = try? IDList.parse(input, what: "device")
    }

    private func check(_ state: JSON) {
        let text = state.description
        guard (try? JSON(parsing: text)) != nil else { fatalError("the bridge wrote JSON it cannot read: \(text)") }
    }
}
