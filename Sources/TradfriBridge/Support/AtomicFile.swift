import Foundation

/// Files that hold secrets (gateway credentials, the paired-device registry) are written whole
/// or not at all: into a temporary file with the final permissions, then renamed over the old one.
enum AtomicFile {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Writes `data` to `path` with `mode`; creates the directory (0700) if missing.
    static func write(_ data: Data, to path: String, mode: Int = 0o600) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        let temporary = directory + "/.\(url.lastPathComponent).\(getpid()).tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: mode])
        else {
            throw Failure(description: "cannot create \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw Failure(description: "cannot replace \(path): \(reason)")
        }
    }
}
