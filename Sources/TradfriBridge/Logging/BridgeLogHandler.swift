import Foundation
import Logging

/// Log lines on standard error (journald picks them up under systemd): constant messages with
/// structured metadata, as text (`2026-01-01T10:00:00Z info gateway: connected gateway.id=…`)
/// or one JSON object per line. Callers never put secrets in messages or metadata.
public struct BridgeLogHandler: LogHandler {
    public enum Format: String, Sendable { case text, json }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: Format

    public init(label: String, level: Logger.Level, format: Format) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    private static let installed = NSLock()
    nonisolated(unsafe) private static var isInstalled = false  // guarded by `installed`

    /// Installs the handler for the whole process (once; later calls do nothing, as swift-log
    /// allows a single bootstrap).
    public static func bootstrap(level: Logger.Level, format: Format) {
        installed.withLock {
            guard !isInstalled else { return }
            isInstalled = true
            LoggingSystem.bootstrap { label in BridgeLogHandler(label: label, level: level, format: format) }
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let time = Date().formatted(.iso8601)
        let line: String
        switch format {
        case .text:
            var text = "\(time) \(event.level) \(label): \(event.message)"
            for key in merged.keys.sorted() {
                let value = "\(merged[key]!)"
                text += value.contains(" ") ? " \(key)=\"\(value)\"" : " \(key)=\(value)"
            }
            line = text
        case .json:
            var object: [String: String] = ["time": time, "level": "\(event.level)", "logger": label,
                                            "message": "\(event.message)"]
            for (key, value) in merged { object[key] = "\(value)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
