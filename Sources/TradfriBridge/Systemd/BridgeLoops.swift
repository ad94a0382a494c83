import CoAP
import MQTT

/// The bridge's event loops as the watchdog sees them: the libcoap executor (every gateway
/// session and every feature run there) and the MQTT client's network thread.
struct BridgeLoops: WatchedLoops {
    let bridge: Bridge

    func probe() async {
        await bridge.probe()
    }

    func mqttTurns() -> Int {
        bridge.mqtt.statistics.loopTurns
    }
}

/// With `takeover.enabled`: the libcoap executor (the bridge's hubs run there while this
/// instance drives any) and the takeover coordinator's MQTT network thread, which runs always
/// (the bridge's own MQTT client exists only while driving).
struct TakeoverLoops: WatchedLoops {
    let ownership: GatewayOwnership
    let bridge: TakeoverBridge

    /// Runs on the libcoap executor, and refreshes the status line of the bridge that drives, if any.
    func probe() async {
        await bridge.probe()
    }

    func mqttTurns() -> Int {
        ownership.mqttLoopTurns
    }
}
