import Foundation
import HubModel
import TradfriModel

/// What a soak run found; `passed` is the verdict.
struct SoakReport: Sendable {
    struct Fault: Sendable {
        var kind: SoakFault
        /// Time to recover (nil: not within the wait).
        var seconds: Double?
        var limit: Double?
        var note: String

        var passed: Bool {
            guard let seconds else { return false }
            return limit.map { seconds <= $0 } ?? true
        }

        var summary: String {
            let time = seconds.map { String(format: "%.2f s", $0) } ?? "not recovered"
            let bound = limit.map { String(format: " (limit %.0f s)", $0) } ?? ""
            return "\(kind.rawValue): \(note): \(time)\(bound)\(passed ? "" : " FAILED")"
        }
    }

    struct Mismatch: Sendable {
        var id: Int
        var topic: String
        var gateway: LightSnapshot?
        var mqtt: LightSnapshot?

        var summary: String {
            "\(id) \(topic): gateway \(gateway?.description ?? "unreadable"), MQTT \(mqtt?.description ?? "nothing")"
        }
    }

    let options: SoakOptions
    let lightCount: Int
    var firstSync: Double?
    var commandsSent = 0
    var commandErrors = 0
    var appChanges = 0
    var appChangesFailed = 0
    var stateMessages = 0
    var faults: [Fault] = []
    /// Seconds after the load stopped until MQTT equalled the gateway (nil: not within the settle).
    var converged: Double?
    var mismatches: [Mismatch] = []
    var unreadable: [Int] = []
    var resyncSeconds: Double?
    var resyncStatus: String?
    var afterResync: [Mismatch] = []
    var bridgeStop: Double?
    var bridgeExit: Int32?
    var bridgeWarnings = 0
    var bridgeErrors = 0
    var failure: String?

    init(options: SoakOptions, lightCount: Int) {
        self.options = options
        self.lightCount = lightCount
    }

    var firstSyncPassed: Bool { firstSync.map { $0 <= options.limits.firstSync } ?? false }

    var passed: Bool {
        failure == nil && mismatches.isEmpty && unreadable.isEmpty && converged != nil && firstSyncPassed
            && faults.allSatisfy(\.passed) && resyncStatus == "ok" && afterResync.isEmpty && bridgeExit == 0
    }

    var text: String {
        var lines: [String] = []
        let o = options
        lines.append(
            "soak seed \(o.seed): \(lightCount) lights, \(Int(o.dropRate * 100)) % loss each way, \(Int(o.duration)) s of load "
                + "(\(Int(o.commandRate)) commands/s from \(o.clients) MQTT clients, \(Int(o.appRate)) changes/s at the gateway), "
                + "faults every \(Int(o.faultInterval)) s: \(o.faults.isEmpty ? "none" : o.faults.map(\.rawValue).joined(separator: ", "))"
        )
        if let failure { lines.append("RUN FAILED: \(failure)") }
        lines.append(
            "first sync: " + (firstSync.map { String(format: "%.2f s", $0) } ?? "–")
                + String(format: " (limit %.0f s)", o.limits.firstSync) + (firstSyncPassed ? "" : " FAILED"))
        lines.append(
            "load: \(commandsSent) commands sent (\(commandErrors) command_error events), \(appChanges) changes at the gateway "
                + "(\(appChangesFailed) not acknowledged), \(stateMessages) light state messages on MQTT")
        for fault in faults { lines.append("fault \(fault.summary)") }
        lines.append(
            "after the load: "
                + (converged.map { String(format: "MQTT equal to the gateway after %.2f s", $0) }
                    ?? "MQTT not equal to the gateway within \(Int(o.settle)) s"))
        lines.append(
            "verdict (coap-client-openssl vs retained states): \(lightCount - mismatches.count) of \(lightCount) lights equal"
        )
        for mismatch in mismatches { lines.append("  MISMATCH \(mismatch.summary)") }
        if !unreadable.isEmpty { lines.append("  unreadable at the gateway: \(unreadable)") }
        lines.append(
            "resync: "
                + (resyncSeconds.map { String(format: "answered %@ after %.2f s", resyncStatus ?? "?", $0) }
                    ?? "no answer") + ", then \(lightCount - afterResync.count) of \(lightCount) equal")
        for mismatch in afterResync { lines.append("  AFTER RESYNC \(mismatch.summary)") }
        lines.append(
            "bridge: stopped in " + (bridgeStop.map { String(format: "%.2f s", $0) } ?? "–")
                + " with status \(bridgeExit.map(String.init) ?? "–"); \(bridgeWarnings) warning and \(bridgeErrors) error lines"
        )
        lines.append(passed ? "PASSED" : "FAILED")
        return lines.joined(separator: "\n")
    }

    var json: JSON {
        func number(_ value: Double?) -> JSON { value.map { .double(($0 * 1000).rounded() / 1000) } ?? .null }
        func mismatchList(_ list: [Mismatch]) -> JSON {
            .array(
                list.map {
                    [
                        "id": .int($0.id), "topic": .string($0.topic),
                        "gateway": $0.gateway.map { .string($0.description) } ?? .null,
                        "mqtt": $0.mqtt.map { .string($0.description) } ?? .null,
                    ]
                })
        }
        return [
            "seed": .int(Int(truncatingIfNeeded: options.seed)), "lights": .int(lightCount),
            "drop_rate": .double(options.dropRate), "duration": .double(options.duration),
            "first_sync": number(firstSync), "commands_sent": .int(commandsSent), "command_errors": .int(commandErrors),
            "app_changes": .int(appChanges), "state_messages": .int(stateMessages),
            "faults": .array(
                faults.map {
                    [
                        "kind": .string($0.kind.rawValue), "seconds": number($0.seconds), "limit": number($0.limit),
                        "passed": .bool($0.passed),
                    ]
                }),
            "converged": number(converged), "mismatches": mismatchList(mismatches),
            "resync_seconds": number(resyncSeconds), "after_resync": mismatchList(afterResync),
            "bridge_stop": number(bridgeStop), "bridge_warnings": .int(bridgeWarnings),
            "bridge_errors": .int(bridgeErrors), "failure": failure.map(JSON.string) ?? .null,
            "passed": .bool(passed),
        ]
    }
}
