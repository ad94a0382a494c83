import Foundation
import Logging
import NIOSSL
import TLS

/// The bridge's own TLS certificate, for its HTTPS endpoints (secure pairing, the web page off
/// loopback): self-signed, EC P-256, made once and kept in the state directory
/// (`pairing-certificate.pem`, and `pairing-key.pem` with mode 0600), so its fingerprint, which
/// devices pin and users compare, never changes.
enum BridgeCertificate {
    /// Loads the certificate kept in `directory`, or makes and keeps one. Throws when it can
    /// neither read nor write one: a certificate that is not kept would change at every start.
    static func load(in directory: String) throws -> CertificateBundle {
        let certificatePath = directory + "/pairing-certificate.pem"
        let keyPath = directory + "/pairing-key.pem"
        if let certificate = try? String(contentsOfFile: certificatePath, encoding: .utf8),
            let key = try? String(contentsOfFile: keyPath, encoding: .utf8)
        {
            return CertificateBundle(certificatePEM: certificate, privateKeyPEM: key)
        }
        let host = BridgeConfiguration.hostName
        let bundle = try CertificateBundle.selfSigned(commonName: "\(host).local", dnsNames: [host, "\(host).local"])
        try AtomicFile.write(Data(bundle.privateKeyPEM.utf8), to: keyPath, mode: 0o600)
        try AtomicFile.write(Data(bundle.certificatePEM.utf8), to: certificatePath, mode: 0o644)
        Logger(label: "tls").info(
            "created the bridge's certificate",
            metadata: ["tls.fingerprint": "\((try? bundle.fingerprint()) ?? "?")"])
        return bundle
    }

    /// A server configuration (TLS 1.2 or newer) with the certificate and its key; a closing
    /// connection waits at most 100 ms for the client's goodbye.
    static func serverConfiguration(_ bundle: CertificateBundle) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [
                .certificate(try NIOSSLCertificate(bytes: Array(bundle.certificatePEM.utf8), format: .pem))
            ],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(bundle.privateKeyPEM.utf8), format: .pem)))
        configuration.minimumTLSVersion = .tlsv12
        // Closing waits this long for the peer's close_notify (5 s by default): a client that never
        // finished its handshake would hold every close, and a stop, that long.
        configuration.shutdownTimeout = .milliseconds(100)
        return configuration
    }
}
