internal import COpenSSL

/// Hashing and randomness from OpenSSL.
public enum Crypto {
    /// Cryptographically strong random bytes.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        // RAND_bytes only fails if the generator cannot be seeded, which on Linux means the
        // kernel's getrandom is unavailable; nothing sensible can continue then.
        precondition(RAND_bytes(&bytes, Int32(count)) == 1, "OpenSSL's random generator is not available")
        return bytes
    }

    /// Random text from a colon-free, shell-safe alphabet (letters and digits).
    public static func randomToken(length: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var result = ""
        while result.count < length {
            for byte in randomBytes(length * 2) where byte < 248 && result.count < length {
                result.append(alphabet[Int(byte) % alphabet.count])
            }
        }
        return result
    }

    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = data.withUnsafeBytes { buffer in
            EVP_Digest(buffer.baseAddress, buffer.count, &digest, &length, EVP_sha256(), nil)
        }
        return Array(digest.prefix(Int(length)))
    }

    /// Two hex digits per byte: "0a1b…", or "0A:1B:…" as certificate fingerprints are written.
    public static func hex(_ bytes: some Sequence<UInt8>, uppercase: Bool = false, separator: String = "") -> String {
        bytes.map { byte in
            let text = String(byte, radix: 16, uppercase: uppercase)
            return byte < 16 ? "0" + text : text
        }.joined(separator: separator)
    }

    /// Equality of two secrets without timing differences.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
