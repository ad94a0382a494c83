import Foundation
import HubModel
import TradfriModel

/// Every pairing request, decision, credential issue, fetch, expiry and revocation, one JSON
/// object per line: time, event, request/device id, name, IP, MAC when known, mode. Never a
/// secret (no password, no pairing secret).
public final class AuditLog: @unchecked Sendable {
    // @unchecked: writes are serialised by `lock`.
    private let path: String
    private let lock = NSLock()
    /// Rate-limited requests are logged at most once per address per minute.
    private var lastLimited: [String: Date] = [:]

    public init(path: String) {
        self.path = path
    }

    public func record(
        _ event: String, request: PairingBook.Request? = nil, device: PairedDevice? = nil,
        ip: String? = nil, detail: String? = nil
    ) {
        var entry: [String: JSON] = ["time": .string(Date().formatted(.iso8601)), "event": .string(event)]
        if let request {
            entry["request"] = .string(request.id)
            entry["name"] = .string(request.name)
            entry["ip"] = .string(request.ip)
            entry["mode"] = .string(request.mode.rawValue)
            if let mac = request.mac { entry["mac"] = .string(mac) }
        }
        if let device {
            entry["device"] = .string(device.id)
            entry["name"] = .string(device.name)
            entry["ip"] = .string(device.ip)
            entry["mode"] = .string(device.mode.rawValue)
            entry["username"] = .string(device.username)
            if let mac = device.mac { entry["mac"] = .string(mac) }
        }
        if let ip { entry["ip"] = .string(ip) }
        if let detail { entry["detail"] = .string(detail) }
        append(JSON.object(entry).description + "\n")
    }

    public func rateLimited(ip: String) {
        let now = Date()
        let due: Bool = lock.withLock {
            if let last = lastLimited[ip], now.timeIntervalSince(last) < 60 { return false }
            lastLimited[ip] = now
            if lastLimited.count > 4096 { lastLimited = lastLimited.filter { now.timeIntervalSince($0.value) < 60 } }
            return true
        }
        if due { record("rate_limited", ip: ip) }
    }

    private func append(_ line: String) {
        lock.withLock {
            let directory = (path as NSString).deletingLastPathComponent
            try? FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
            if !FileManager.default.fileExists(atPath: path) {
                _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
            }
            guard let handle = FileHandle(forWritingAtPath: path) else { return }
            defer { try? handle.close() }
            _ = try? handle.seekToEnd()
            try? handle.write(contentsOf: Data(line.utf8))
        }
    }
}
