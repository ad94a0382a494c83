internal import CMosquitto
import Foundation

/// Process-wide libmosquitto state.
enum Libmosquitto {
    /// `mosquitto_lib_init` runs once per process, on first use (Swift runs a static initialiser
    /// exactly once, thread-safely). It is never undone: `mosquitto_lib_cleanup` would pull the
    /// rug from under clients still alive elsewhere in the process.
    static let initialized: Void = {
        _ = mosquitto_lib_init()
    }()

    /// "2.0.11"
    static var version: String {
        var major: Int32 = 0
        var minor: Int32 = 0
        var revision: Int32 = 0
        _ = mosquitto_lib_version(&major, &minor, &revision)
        return "\(major).\(minor).\(revision)"
    }
}
