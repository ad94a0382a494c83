import Foundation
import HubModel
import Logging
import Synchronization

/// Log lines on standard error (journald picks them up under systemd): constant messages with
/// structured metadata, as text (`2026-01-01T10:00:00Z info gateway: connected gateway.id=…`)
/// or one JSON object per line. Callers never put secrets in messages or metadata.
///
/// Every value is escaped (`LogEscape`): text from outside cannot start a line of its own or send
/// escape codes to a terminal. A warning or error that repeats is logged once, then summarised
/// once per `repeatInterval` (`RepeatedLogFilter`), so an outage costs a few lines, not a disk.
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
    private let output: LogOutput

    /// - Parameter level: this handler's own level; nil follows `BridgeLogHandler.level`.
    public init(label: String, level: Logger.Level? = nil, format: Format) {
        self.init(label: label, level: level, format: format, output: .standardError)
    }

    /// A handler that writes to `output` (tests give one with their own sink and clock).
    init(label: String, level: Logger.Level? = nil, format: Format, output: LogOutput) {
        self.label = label
        self.ownLevel = level
        self.format = format
        self.output = output
    }

    private static let installed = Mutex(false)

    /// Sets the process level to `level` and installs the handler for the whole process. swift-log
    /// allows a single bootstrap, so later calls only change the level and the interval.
    /// - Parameter repeatInterval: a repeated warning is summarised once per this interval
    ///   (`logging.repeat_interval`); zero logs every repeat.
    public static func bootstrap(level: Logger.Level, format: Format, repeatInterval: Duration = .seconds(600)) {
        self.level = level
        LogOutput.standardError.setRepeatInterval(repeatInterval)
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
        output.write(
            LogOutput.Record(
                time: Date(), level: event.level, label: label, message: "\(event.message)",
                metadata: merged.keys.sorted().map { ($0, "\(merged[$0]!)") }, format: format))
    }
}
