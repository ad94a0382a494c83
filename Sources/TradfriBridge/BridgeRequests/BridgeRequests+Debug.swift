#if DEBUG
import Foundation
import HubModel
import MQTT

/// Test-only hooks, in debug builds only and only with `TRADFRI_DEBUG_HOOKS=1` in the
/// environment: the package and every release build have none of this.
///
/// `bridge/request/debug/stall` `{"loop": "coap" | "mqtt", "seconds": N}` makes an event loop
/// stick for N seconds, as a blocking call in it would: `coap` blocks the libcoap executor (this
/// handler runs on it), `mqtt` the MQTT network thread at its next turn. The watchdog test uses
/// it to see systemd's watchdog restart the bridge.
extension BridgeRequests {
    func registerDebugVerbs(mqtt: MQTTClient) {
        logger.warning("test hooks are on (TRADFRI_DEBUG_HOOKS=1): bridge/request/debug/stall can freeze the bridge")
        register(verb: "debug/stall") { [logger] request in
            try request.allowOnly(["loop", "seconds"])
            let loop = try request.string("loop")
            let seconds = request.members["seconds"]?.doubleValue ?? 60
            switch loop {
            case "coap":
                logger.warning("test hook: the libcoap executor stops turning", metadata: ["seconds": "\(seconds)"])
                blockThisThread(seconds: seconds)
            case "mqtt":
                mqtt.stallNetworkThread(for: .seconds(seconds))
            default:
                throw BridgeRequestError("loop must be coap or mqtt")
            }
            return ["loop": .string(loop), "seconds": .double(seconds)]
        }
    }
}

/// Blocks the calling thread (on purpose: that is the stall).
private func blockThisThread(seconds: Double) {
    Thread.sleep(forTimeInterval: seconds)
}
#endif
