internal import COpenSSL

/// A certificate and its private key in PEM, e.g. the bridge's own self-signed certificate for
/// the pairing endpoint.
public struct CertificateBundle: Sendable, Equatable {
    public var certificatePEM: String
    public var privateKeyPEM: String

    public init(certificatePEM: String, privateKeyPEM: String) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }

    /// A new self-signed certificate with an EC P-256 key, valid for `days`, for `commonName`
    /// and the given DNS names and IP addresses.
    public static func selfSigned(
        commonName: String, dnsNames: [String] = [], ipAddresses: [String] = [], days: Int = 3650
    ) throws(TLSError) -> CertificateBundle {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { throw .lastError("EVP_PKEY_CTX_new") }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_CTX_set_group_name(context, "P-256") == 1,
            EVP_PKEY_generate(context, &key) == 1, let key
        else { throw .lastError("generating an EC key") }
        defer { EVP_PKEY_free(key) }

        guard let certificate = X509_new() else { throw .lastError("X509_new") }
        defer { X509_free(certificate) }
        X509_set_version(certificate, 2)
        let serial = Crypto.randomBytes(8).reduce(0) { $0 << 8 | Int($1) } & 0x7FFF_FFFF_FFFF_FFFF
        ASN1_INTEGER_set_int64(X509_get_serialNumber(certificate), Int64(serial))
        X509_gmtime_adj(X509_getm_notBefore(certificate), -3600)
        X509_gmtime_adj(X509_getm_notAfter(certificate), days * 86400)
        X509_set_pubkey(certificate, key)
        let name = X509_get_subject_name(certificate)
        _ = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, commonName, -1, -1, 0)
        _ = X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, "tradfri-bridge", -1, -1, 0)
        X509_set_issuer_name(certificate, name)

        var alternatives = dnsNames.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" }
        if alternatives.isEmpty { alternatives = ["DNS:\(commonName)"] }
        var v3 = X509V3_CTX()
        copenssl_x509v3_ctx(&v3, certificate, certificate)
        for (nid, value) in [
            (NID_subject_alt_name, alternatives.joined(separator: ",")),
            (NID_basic_constraints, "critical,CA:TRUE"),
            (NID_key_usage, "critical,digitalSignature,keyCertSign"),
            (NID_ext_key_usage, "serverAuth"),
        ] {
            guard let extensionData = X509V3_EXT_conf_nid(nil, &v3, nid, value) else {
                throw .lastError("certificate extension \(value)")
            }
            X509_add_ext(certificate, extensionData, -1)
            X509_EXTENSION_free(extensionData)
        }
        guard X509_sign(certificate, key, EVP_sha256()) > 0 else { throw .lastError("signing the certificate") }
        return CertificateBundle(
            certificatePEM: try pem { PEM_write_bio_X509($0, certificate) },
            privateKeyPEM: try pem { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) })
    }

    /// "SHA256:AB:CD:…", the SHA-256 fingerprint of the certificate (as `openssl x509 -fingerprint
    /// -sha256` prints it, with the algorithm in front).
    public func fingerprint() throws(TLSError) -> String {
        try Self.fingerprint(ofPEM: certificatePEM)
    }

    public static func fingerprint(ofPEM pem: String) throws(TLSError) -> String {
        let certificate = try readCertificate(pem)
        defer { X509_free(certificate) }
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(certificate, EVP_sha256(), &digest, &length) == 1 else { throw .lastError("X509_digest") }
        return "SHA256:" + Crypto.hex(digest.prefix(Int(length)), uppercase: true, separator: ":")
    }

    static func readCertificate(_ pem: String) throws(TLSError) -> OpaquePointer {
        let bytes = Array(pem.utf8)
        guard let bio = bytes.withUnsafeBytes({ BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }) else {
            throw .lastError("BIO_new_mem_buf")
        }
        defer { BIO_free(bio) }
        guard let certificate = PEM_read_bio_X509(bio, nil, nil, nil) else {
            throw .lastError("reading a PEM certificate")
        }
        return certificate
    }

    static func readPrivateKey(_ pem: String) throws(TLSError) -> OpaquePointer {
        let bytes = Array(pem.utf8)
        guard let bio = bytes.withUnsafeBytes({ BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }) else {
            throw .lastError("BIO_new_mem_buf")
        }
        defer { BIO_free(bio) }
        guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
            throw .lastError("reading a PEM private key")
        }
        return key
    }

    private static func pem(_ write: (OpaquePointer) -> Int32) throws(TLSError) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw .lastError("BIO_new") }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw .lastError("writing PEM") }
        var buffer = [UInt8](repeating: 0, count: Int(BIO_ctrl_pending(bio)))
        let read = BIO_read(bio, &buffer, Int32(buffer.count))
        return String(decoding: buffer.prefix(Int(max(read, 0))), as: UTF8.self)
    }
}
