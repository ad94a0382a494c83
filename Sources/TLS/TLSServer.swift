internal import COpenSSL
import Foundation

/// Server-side TLS (1.2 or newer) over connected sockets, with one certificate.
///
/// Contract: `accept(socket:)` performs the handshake on a blocking socket (the caller sets its
/// timeouts) and returns a connection to read and write; one connection is used by one thread
/// at a time. The context itself is immutable after `init` and safe to share.
public final class TLSServerContext: @unchecked Sendable {
    // @unchecked: the SSL_CTX is configured in init and only read afterwards (OpenSSL allows
    // creating SSL objects from one context on several threads).
    private let context: OpaquePointer

    public init(_ bundle: CertificateBundle) throws(TLSError) {
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw .lastError("SSL_CTX_new") }
        self.context = context
        _ = copenssl_ctx_set_min_tls12(context)
        let certificate = try CertificateBundle.readCertificate(bundle.certificatePEM)
        defer { X509_free(certificate) }
        let key = try CertificateBundle.readPrivateKey(bundle.privateKeyPEM)
        defer { EVP_PKEY_free(key) }
        guard SSL_CTX_use_certificate(context, certificate) == 1, SSL_CTX_use_PrivateKey(context, key) == 1,
            SSL_CTX_check_private_key(context) == 1
        else {
            throw .lastError("loading the certificate and key")
        }
    }

    deinit {
        SSL_CTX_free(context)
    }

    /// Runs the server handshake on `socket`.
    public func accept(socket: Int32) throws(TLSError) -> TLSConnection {
        ERR_clear_error()
        guard let ssl = SSL_new(context) else { throw .lastError("SSL_new") }
        SSL_set_fd(ssl, socket)
        guard SSL_accept(ssl) == 1 else {
            let error = TLSError.lastError("TLS handshake")
            SSL_free(ssl)
            throw error
        }
        return TLSConnection(ssl: ssl)
    }
}

/// One TLS connection. Not thread-safe: used by the thread that accepted it.
public final class TLSConnection {
    private let ssl: OpaquePointer

    init(ssl: OpaquePointer) {
        self.ssl = ssl
    }

    deinit {
        SSL_free(ssl)
    }

    /// Reads up to `count` bytes; an empty result means the peer closed (or the read timed out).
    public func read(_ count: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let read = SSL_read(ssl, &buffer, Int32(count))
        return read > 0 ? Array(buffer.prefix(Int(read))) : []
    }

    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
            guard written > 0 else { return false }
            offset += Int(written)
        }
        return true
    }

    public func shutdown() {
        SSL_shutdown(ssl)
    }
}
