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
