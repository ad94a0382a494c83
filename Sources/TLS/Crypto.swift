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

    /// scrypt (RFC 7914): a slow, memory-hard hash of a password with its salt, N = 2^`logN`. It
    /// needs 128 · r · N bytes of memory for its duration (16 MiB for logN 14, r 8). Throws for
    /// parameters OpenSSL refuses.
    public static func scrypt(
        password: [UInt8], salt: [UInt8], logN: Int, r: Int, p: Int, length: Int = 32
    ) throws(TLSError) -> [UInt8] {
        guard (1...22).contains(logN), (1...32).contains(r), (1...16).contains(p), (16...64).contains(length) else {
            throw TLSError(operation: "scrypt", reason: "parameters out of range")
        }
        var key = [UInt8](repeating: 0, count: length)
        let memory = UInt64(128 * r) << UInt64(logN)
        let done = password.withUnsafeBytes { pass in
            salt.withUnsafeBytes { salt in
                EVP_PBE_scrypt(
                    pass.baseAddress?.assumingMemoryBound(to: CChar.self), pass.count,
                    salt.baseAddress?.assumingMemoryBound(to: UInt8.self), salt.count, UInt64(1) << UInt64(logN),
                    UInt64(r), UInt64(p), memory * 2 + (1 << 20), &key, length)
            }
        }
        guard done == 1 else { throw .lastError("scrypt") }
        return key
    }

    /// Equality of two secrets without timing differences.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
