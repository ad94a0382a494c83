import Foundation
import TLS

/// The web page's administrator: a name and a slow, salted hash of the password (scrypt,
/// N = 2^14, r = 8, p = 5: 16 MiB and about a quarter of a second per check on a small machine,
/// OWASP's minimum), one line in `web.password_file` (mode 0600):
///
///     admin:$scrypt$ln=14,r=8,p=5$<salt, base64>$<hash, base64>
///
/// The password itself is never stored, logged or shown. `tradfri-bridge web-password` writes
/// the file; the daemon reads it at every log-in, so a new password needs no restart (and ends
/// every session made with the old one).
public struct WebPassword: Sendable, Equatable {
    public let user: String
    let logN: Int
    let r: Int
    let p: Int
    let salt: [UInt8]
    let hash: [UInt8]

    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    static let minimumLength = 10

    /// Hashes `password` for `user` with a new random salt.
    public static func make(user: String, password: String) throws(Failure) -> WebPassword {
        guard isValidUser(user) else {
            throw Failure(description: "the user name must be 1–32 of A–Z, a–z, 0–9, '.', '_' and '-'")
        }
        guard password.count >= minimumLength else {
            throw Failure(description: "the password must have at least \(minimumLength) characters")
        }
        guard password.utf8.count <= 1024 else { throw Failure(description: "the password is too long") }
        let salt = Crypto.randomBytes(16)
        let hash = try derive(password, salt: salt, logN: 14, r: 8, p: 5)
        return WebPassword(user: user, logN: 14, r: 8, p: 5, salt: salt, hash: hash)
    }

    static func isValidUser(_ user: String) -> Bool {
        (1...32).contains(user.count)
            && user.unicodeScalars.allSatisfy {
                $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0))
            }
    }

    private static func derive(
        _ password: String, salt: [UInt8], logN: Int, r: Int, p: Int
    ) throws(Failure) -> [UInt8] {
        do {
            return try Crypto.scrypt(password: Array(password.utf8), salt: salt, logN: logN, r: r, p: p, length: 32)
        } catch {
            throw Failure(description: "cannot hash the password: \(error)")
        }
    }

    /// Whether `user` and `password` are the administrator's (constant time in the hash).
    public func verify(user: String, password: String) -> Bool {
        guard password.utf8.count <= 1024, let derived = try? Self.derive(password, salt: salt, logN: logN, r: r, p: p)
        else { return false }
        let sameHash = Crypto.constantTimeEqual(derived, hash)
        return sameHash && user == self.user
    }

    /// The file's line (no secret in it: the hash of a slow function with a random salt).
    public var line: String {
        "\(user):$scrypt$ln=\(logN),r=\(r),p=\(p)$\(Data(salt).base64EncodedString())$\(Data(hash).base64EncodedString())"
    }

    /// Reads a line as `line` writes it; nil if it is not one.
    public static func parse(_ text: String) -> WebPassword? {
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        guard let colon = line.firstIndex(of: ":") else { return nil }
        let user = String(line[..<colon])
        let fields = line[line.index(after: colon)...].split(separator: "$", omittingEmptySubsequences: false)
        guard isValidUser(user), fields.count == 5, fields[0].isEmpty, fields[1] == "scrypt" else { return nil }
        var parameters: [String: Int] = [:]
        for pair in fields[2].split(separator: ",") {
            let kv = pair.split(separator: "=")
            guard kv.count == 2, let value = Int(kv[1]) else { return nil }
            parameters[String(kv[0])] = value
        }
        guard let logN = parameters["ln"], let r = parameters["r"], let p = parameters["p"],
            (10...20).contains(logN), (1...32).contains(r), (1...16).contains(p),
            let salt = Data(base64Encoded: String(fields[3])), salt.count >= 8,
            let hash = Data(base64Encoded: String(fields[4])), hash.count == 32
        else { return nil }
        return WebPassword(user: user, logN: logN, r: r, p: p, salt: Array(salt), hash: Array(hash))
    }

    /// What `web.password_file` holds.
    public enum Stored: Sendable, Equatable {
        /// No file: the page says how to set a password and shows nothing else.
        case notSet
        case set(WebPassword)
        /// The file exists but cannot be read or is not in the format above.
        case unusable(String)
    }

    public static func load(path: String) -> Stored {
        guard FileManager.default.fileExists(atPath: path) else { return .notSet }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            return .unusable("\(path) cannot be read by the bridge's user")
        }
        guard let password = parse(text) else { return .unusable("\(path) is not a password file") }
        return .set(password)
    }

    /// Writes the file whole (mode 0600). Run as root, the file is given to the owner of its
    /// directory (the bridge's user owns /var/lib/tradfri-bridge), so the daemon can read it.
    public func store(path: String) throws {
        try AtomicFile.write(Data((line + "\n").utf8), to: path, mode: 0o600)
        let directory = (path as NSString).deletingLastPathComponent
        var owner = stat()
        if getuid() == 0, stat(directory, &owner) == 0, owner.st_uid != 0 {
            chown(path, owner.st_uid, owner.st_gid)
        }
    }
}
