import CoAP
import Foundation
import HubModel
import TradfriModel

/// The one-time pairing with a gateway: open a session as `Client_identity` with the security
/// code from the label, create our own identity (POST 15011/9063), then read the gateway's id
/// with that identity. See tradfri-gateway-protocol.md §1.3.
public enum GatewayPairing {
    public enum Failure: Error, Sendable, CustomStringConvertible, Equatable {
        case invalidSecurityCode
        case wrongSecurityCode
        case unreachable(String, String)
        case identityExists(String)
        case unexpectedAnswer(String)

        public var description: String {
            switch self {
            case .invalidSecurityCode:
                "a security code is the 16 letters and digits printed on the gateway's label"
            case .wrongSecurityCode:
                "the gateway did not accept the security code: check the 16 characters on its label (they are case-sensitive)"
            case .unreachable(let address, let reason):
                "cannot reach a gateway at \(address): \(reason)"
            case .identityExists(let identity):
                "the gateway already has an identity named '\(identity)'; gateways hand out a key only once per identity, so choose another name with --identity"
            case .unexpectedAnswer(let what):
                "the gateway answered unexpectedly: \(what)"
            }
        }
    }

    public static func isPlausibleSecurityCode(_ code: String) -> Bool {
        code.count == 16 && code.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
    }

    /// A fresh identity name: recognisable in logs, unique per pairing.
    public static func generatedIdentity() -> String {
        let host = BridgeConfiguration.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        let suffix = (0..<6).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined()
        return "tradfri-bridge-\(host.prefix(20))-\(suffix)"
    }

    /// Pairs with the gateway at `host:port` and returns the credentials to store.
    /// - Parameter identity: the identity to create; nil generates one (and retries once with a
    ///   new name if the gateway reports it exists, which happens when a lost acknowledgement made
    ///   us send the request twice).
    public static func pair(
        host: String, port: UInt16, securityCode: String, identity: String?, timeout: Duration = .seconds(10)
    ) async throws(Failure) -> GatewayCredentials {
        guard isPlausibleSecurityCode(securityCode) else { throw .invalidSecurityCode }
        let address = BridgeConfiguration.GatewayAddress.host(host, port: port).description
        let bootstrap = CoAPClient(
            .init(
                host: host, port: port, identity: bootstrapIdentity, key: securityCode,
                handshakeTimeout: timeout, requestTimeout: timeout))
        do {
            try await bootstrap.connect()
        } catch {
            throw failure(for: error, address: address)
        }
        var name = identity ?? generatedIdentity()
        var psk: String?
        var firmware: String?
        for attempt in 0..<2 {
            let response: CoAPResponse
            do {
                response = try await bootstrap.post(
                    GatewayPath.authenticate, json: JSON.object([GatewayKey.identity: .string(name)]).description)
            } catch {
                await bootstrap.close()
                throw failure(for: error, address: address)
            }
            if response.code == .created {
                let body = try? JSON(parsing: response.payload)
                psk = body?[GatewayKey.psk]?.stringValue
                firmware = body?[GatewayKey.gatewayFirmware]?.stringValue
                break
            }
            if response.code == .badRequest {
                if identity == nil, attempt == 0 {
                    name = generatedIdentity()
                    continue
                }
                await bootstrap.close()
                throw .identityExists(name)
            }
            await bootstrap.close()
            throw .unexpectedAnswer("\(response.code) to the pairing request")
        }
        await bootstrap.close()
        guard let psk, !psk.isEmpty else { throw .unexpectedAnswer("no key (9091) in the pairing answer") }

        // Use the new identity once, as every later session will, and learn the gateway's id.
        let session = CoAPClient(
            .init(
                host: host, port: port, identity: name, key: psk,
                handshakeTimeout: timeout, requestTimeout: timeout))
        do {
            try await session.connect()
            let response = try await session.get(GatewayPath.gatewayDetails)
            await session.close()
            guard response.code == .content else {
                throw Failure.unexpectedAnswer("\(response.code) for the gateway details")
            }
            let details = try GatewayDetails(payload: response.payload)
            return GatewayCredentials(
                identity: name, psk: psk, gatewayID: details.id, address: host, port: port,
                firmware: details.firmware.isEmpty ? firmware : details.firmware)
        } catch let error as Failure {
            throw error
        } catch {
            await session.close()
            throw .unexpectedAnswer("the new identity does not work: \(error)")
        }
    }

    /// Whether stored credentials still open a session and read the gateway's details.
    public static func credentialsWork(_ credentials: GatewayCredentials, timeout: Duration = .seconds(5)) async -> Bool
    {
        await gatewayID(at: credentials.address, port: credentials.port, using: credentials, timeout: timeout) != nil
    }

    /// The id (9081) of the gateway at `host:port` if `credentials` open a session there and
    /// read its details; nil otherwise (another gateway, an identity it forgot, no answer).
    /// A cancelled task closes the attempt instead of waiting out the handshake.
    public static func gatewayID(
        at host: String, port: UInt16, using credentials: GatewayCredentials, timeout: Duration = .seconds(5)
    ) async -> String? {
        let session = CoAPClient(
            .init(
                host: host, port: port, identity: credentials.identity, key: credentials.psk,
                handshakeTimeout: timeout, requestTimeout: timeout))
        // With an address literal, connect() sends the ClientHello before its first suspension,
        // so the close cannot overtake it. onCancel is synchronous: the close hops onto the
        // CoAP executor, and the awaited close below follows it there.
        let connected = await withTaskCancellationHandler {
            (try? await session.connect()) != nil
        } onCancel: {
            Task { await session.close() }
        }
        var id: String?
        if connected, let response = try? await session.get(GatewayPath.gatewayDetails),
            response.code == .content, let details = try? GatewayDetails(payload: response.payload)
        {
            id = details.id
        }
        await session.close()
        return id
    }

    /// The stored entry that is the gateway at `host:port` and still works there: each entry's
    /// identity is tried at that address at once (an identity of another gateway is refused in
    /// the handshake), and the one that reads its own gateway id wins.
    public static func workingEntry(
        at host: String, port: UInt16, in store: CredentialStore, timeout: Duration = .seconds(5)
    ) async -> GatewayCredentials? {
        await withTaskGroup(of: GatewayCredentials?.self) { group in
            for entry in store.entries {
                group.addTask {
                    let id = await gatewayID(at: host, port: port, using: entry, timeout: timeout)
                    return id?.lowercased() == entry.gatewayID.lowercased() ? entry : nil
                }
            }
            for await found in group {
                if let found {
                    group.cancelAll()
                    return found
                }
            }
            return nil
        }
    }

    static func failure(for error: any Error, address: String) -> Failure {
        guard let error = error as? CoAPError else { return .unreachable(address, "\(error)") }
        switch error {
        case .keyRejected, .unknownIdentity: return .wrongSecurityCode
        case .noAnswer: return .unreachable(address, "no answer (is the address right and the gateway powered?)")
        default: return .unreachable(address, error.description)
        }
    }
}
