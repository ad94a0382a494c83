import Foundation

/// Identities created through `15011/9063` and their PSKs, kept in `<state dir>/identities.json`
/// (mode 0600, written atomically) so they survive restarts as on the real gateway.
struct IdentityStore {
    private(set) var identities: [String: String] = [:]
    let file: URL?

    enum Failure: Error, CustomStringConvertible {
        case unreadable(String)
        var description: String {
            switch self {
            case .unreadable(let message): "cannot read the simulator state: \(message)"
            }
        }
    }

    init(directory: String?) throws {
        guard let directory else {
            file = nil
            return
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = URL(fileURLWithPath: directory).appendingPathComponent("identities.json")
        self.file = file
        guard FileManager.default.fileExists(atPath: file.path) else { return }
        let data = try Data(contentsOf: file)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: String] else {
            throw Failure.unreadable("\(file.path) is not a JSON object of identity → key")
        }
        identities = object
    }

    func key(for identity: String) -> String? {
        identities[identity]
    }

    /// Removes `identity` (nil: every one); returns the identities removed.
    mutating func forget(_ identity: String?) -> [String] {
        let gone = identity.map { identities[$0] == nil ? [] : [$0] } ?? Array(identities.keys)
        for name in gone { identities[name] = nil }
        persist()
        return gone
    }

    /// Creates `identity` with a fresh 16-character key; nil if it already exists.
    mutating func create(_ identity: String) -> String? {
        guard identities[identity] == nil else { return nil }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        let key = String((0..<16).map { _ in alphabet.randomElement(using: &generator)! })
        identities[identity] = key
        persist()
        return key
    }

    private func persist() {
        guard let file else { return }
        guard let data = try? JSONSerialization.data(withJSONObject: identities, options: [.sortedKeys]) else { return }
        let temporary = file.appendingPathExtension("tmp")
        _ = FileManager.default.createFile(
            atPath: temporary.path, contents: data, attributes: [.posixPermissions: 0o600])
        // rename(2) replaces the old file atomically.
        rename(temporary.path, file.path)
    }
}
