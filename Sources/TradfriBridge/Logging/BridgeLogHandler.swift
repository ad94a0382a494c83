import Foundation
import HubModel
import Logging
import Synchronization

/// Log lines on standard error (journald picks them up under systemd): constant messages with
/// structured metadata, as text (`2026-01-01T10:00:00Z info gateway: connected gateway.id=…`)
/// or one JSON object per line. Callers never put secrets in messages or metadata.
///
/// The level is one for the whole process (`BridgeLogHandler.level`), so it can change at runtime
/// (`bridge/request/options`) for loggers that already exist; a logger that sets its own level
/// keeps that one.
public struct BridgeLogHandler: LogHandler {
    public enum Format: String, Sendable { case text, json }

    private static let processLevel = Mutex(Logger.Level.info)

    /// The level of every logger that did not set its own.
    public static var level: Logger.Level {
        get { processLevel.withLock { $0 } }
        set { processLevel.withLock { $0 = newValue } }
    }

    private var ownLevel: Logger.Level?
    public var logLevel: Logger.Level {
        get { ownLevel ?? Self.level }
        set { ownLevel = newValue }
    }
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: Format

    /// - Parameter level: this handler's own level; nil follows `BridgeLogHandler.level`.
    public init(label: String, level: Logger.Level? = nil, format: Format) {
        self.label = label
        self.ownLevel = level
        self.format = format
    }

    private static let installed = Mutex(false)

    /// Sets the process level to `level` and installs the handler for the whole process. swift-log
    /// allows a single bootstrap, so later calls only change the level.
    public static func bootstrap(level: Logger.Level, format: Format) {
        self.level = level
        installed.withLock { isInstalled in
            guard !isInstalled else { return }
            isInstalled = true
            LoggingSystem.bootstrap { label in BridgeLogHandler(label: label, format: format) }
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
            var object: [String: String] = [
                "time": time, "level": "\(event.level)", "logger": label,
                "message": "\(event.message)",
            ]
            for (key, value) in merged { object[key] = "\(value)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
