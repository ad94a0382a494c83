import TLS
import Testing

@testable import TradfriBridge

@Suite struct PairingBookTests {
    let credentials = IssuedCredentials(
        deviceID: "emonesp-abcd", username: "dev-emonesp-abcd", password: "p4ss",
        topicPrefix: "devices/emonesp-abcd")
    let secret = String(repeating: "s3cret", count: 6)

    func openBook(legacy: Bool = true) -> PairingBook {
        var book = PairingBook()
        book.open(minutes: 5, legacy: legacy, now: 0)
        return book
    }

    func registered(_ answer: PairingBook.Answer<IssuedCredentials>) -> PairingBook.Request? {
        if case .registered(let request, _) = answer { return request }
        return nil
    }

    @Test func legacyRequestsNeedALegacyWindow() {
        var book = PairingBook()
        guard case .windowClosed = book.legacyRequest(ip: "10.0.0.5", mac: nil, now: 0) else {
            Issue.record("closed"); return
        }
        book.open(minutes: 5, legacy: false, now: 0)
        guard case .windowClosed = book.legacyRequest(ip: "10.0.0.5", mac: nil, now: 1) else {
            Issue.record("a secure-only window refuses legacy requests"); return
        }
        book.open(minutes: 5, legacy: true, now: 2)
        #expect(registered(book.legacyRequest(ip: "10.0.0.5", mac: "aa:bb", now: 3)) != nil)
        guard case .windowClosed = book.legacyRequest(ip: "10.0.0.6", mac: nil, now: 5 * 60 + 3) else {
            Issue.record("the window ends after its minutes"); return
        }
    }

    @Test func anApprovedLegacyDeviceGetsItsCredentialsOnceAndOnlyFromItsAddress() {
        var book = openBook()
        let request = registered(book.legacyRequest(ip: "10.0.0.5", mac: nil, now: 1))!
        #expect(book.allow(id: request.id, credentials: credentials, now: 2) != nil)
        // Another address asks: it only registers a request of its own.
        #expect(registered(book.legacyRequest(ip: "10.0.0.9", mac: nil, now: 3))?.ip == "10.0.0.9")
        guard case .credentials(let grant) = book.legacyRequest(ip: "10.0.0.5", mac: nil, now: 4) else {
            Issue.record("the approved address gets the credentials"); return
        }
        #expect(grant.credentials == credentials)
        // A second fetch registers a new request instead of getting anything.
        #expect(registered(book.legacyRequest(ip: "10.0.0.5", mac: nil, now: 5)) != nil)
    }

    @Test func aGrantLastsSixtySeconds() {
        var book = openBook()
        let request = registered(book.legacyRequest(ip: "10.0.0.5", mac: nil, now: 1))!
        _ = book.allow(id: request.id, credentials: credentials, now: 2)
        let expired = book.expire(now: 62)
        #expect(expired.contains { if case .grant = $0 { return true } else { return false } })
        guard case .registered = book.legacyRequest(ip: "10.0.0.5", mac: nil, now: 63) else {
            Issue.record("after 60 s there is nothing to collect"); return
        }
    }

    @Test func aDeniedDeviceGetsNothingForTheRestOfTheWindow() {
        var book = openBook()
        let request = registered(book.legacyRequest(ip: "10.0.0.5", mac: nil, now: 1))!
        #expect(book.deny(id: request.id, now: 2) != nil)
        guard case .denied = book.legacyRequest(ip: "10.0.0.5", mac: nil, now: 30) else {
            Issue.record("denied"); return
        }
    }

    @Test func secureFetchNeedsTheSameSecret() {
        var book = openBook(legacy: false)
        let request = registered(
            book.secureRequest(ip: "10.0.0.7", mac: nil, name: "Heat pump", secret: secret, now: 1))!
        #expect(request.verificationCode?.count == 7)
        #expect(request.verificationCode == PairingBook.verificationCode(Crypto.sha256(Array(secret.utf8))))
        guard case .pending = book.secureFetch(id: request.id, secret: secret, ip: "10.0.0.7", now: 2) else {
            Issue.record("pending before Allow"); return
        }
        _ = book.allow(id: request.id, credentials: credentials, now: 3)
        guard case .wrongSecret = book.secureFetch(id: request.id, secret: secret + "x", ip: "10.0.0.7", now: 4) else {
            Issue.record("a wrong secret gets nothing"); return
        }
        guard case .credentials = book.secureFetch(id: request.id, secret: secret, ip: "10.0.0.8", now: 5) else {
            Issue.record("the secret, not the address, identifies a secure requester"); return
        }
        guard case .unknown = book.secureFetch(id: request.id, secret: secret, ip: "10.0.0.7", now: 6) else {
            Issue.record("only once"); return
        }
    }

    @Test func badSecureRequestsAreRefusedWithTheReason() {
        var book = openBook(legacy: false)
        guard
            case .invalid(let reason) = book.secureRequest(ip: "10.0.0.7", mac: nil, name: "x", secret: "short", now: 1)
        else {
            Issue.record("short secret"); return
        }
        #expect(reason.contains("32 to 128"))
        guard case .invalid = book.secureRequest(ip: "10.0.0.8", mac: nil, name: "", secret: secret, now: 1) else {
            Issue.record("empty name"); return
        }
    }

    @Test func pendingRequestsAreCappedAndExpire() {
        var book = PairingBook(
            settings: {
                var settings = PairingBook.Settings()
                settings.maxPending = 3
                settings.global = .init(rate: 1000, burst: 1000)
                return settings
            }())
        book.open(minutes: 10, legacy: true, now: 0)
        for host in 1...3 { _ = book.legacyRequest(ip: "10.0.1.\(host)", mac: nil, now: 1) }
        guard case .full = book.legacyRequest(ip: "10.0.1.9", mac: nil, now: 1) else { Issue.record("capped"); return }
        #expect(book.pending.count == 3)
        let expired = book.expire(now: 122)
        #expect(expired.count == 3 && book.pending.isEmpty)
    }

    @Test func floodsAreRateLimitedPerAddressAndOverall() {
        var book = openBook()
        var limited = 0
        for second in 0..<20 {
            if case .rateLimited = book.legacyRequest(ip: "10.0.0.5", mac: nil, now: 1 + Double(second) * 0.01) {
                limited += 1
            }
        }
        #expect(limited == 15, "a burst of 5, then nothing within a fraction of a second")
        var globallyLimited = 0
        for host in 0..<200 {
            if case .rateLimited = book.legacyRequest(ip: "10.0.\(host / 250).\(host % 250)", mac: nil, now: 2) {
                globallyLimited += 1
            }
        }
        #expect(globallyLimited > 100, "the global bucket holds the line")
    }
}
