import TLS

/// The pairing rules, without I/O: requests, decisions, one-shot grants, the pairing window and
/// rate limits. Time is passed in (seconds on a monotonic clock), so every rule is testable.
///
/// Rules:
/// - Requests are accepted only while a pairing window is open (legacy EmonESP requests only while
///   a *legacy* window is open). At most `maxPending` wait for a decision; each expires after
///   `pendingLifetime` without a decision.
/// - Allow turns a request into a grant that can be fetched **once**, within `grantLifetime`:
///   a legacy grant only by a request from the approved IPv4 address, a secure grant only with
///   the request's secret. Anything else gets nothing.
/// - Deny makes the requester get nothing for the rest of the window.
/// - Every IP may make `perIP` requests (token bucket), everyone together `global`.
public struct PairingBook: Sendable {
    public enum Mode: String, Sendable, Codable {
        case legacy
        case secure
    }

    public struct RateLimit: Sendable {
        /// Requests per second, refilled continuously.
        public var rate: Double
        public var burst: Double
        public init(rate: Double, burst: Double) {
            self.rate = rate
            self.burst = burst
        }
    }

    public struct Settings: Sendable {
        public var maxPending = 16
        public var pendingLifetime: Double = 120
        public var grantLifetime: Double = 60
        public var perIP = RateLimit(rate: 1, burst: 5)
        public var global = RateLimit(rate: 20, burst: 60)
        public init() {}
    }

    public struct Request: Sendable, Equatable {
        /// Short, unambiguous, shown at the prompt (`allow K7Q2`).
        public var id: String
        public var mode: Mode
        public var name: String
        public var ip: String
        public var mac: String?
        public var firstSeen: Double
        public var lastSeen: Double
        /// SHA-256 of the secure-mode secret (never the secret itself).
        public var secretHash: [UInt8]?
        /// Six digits the device shows too, so the user can match the two.
        public var verificationCode: String?
    }

    public struct Grant<Credentials: Sendable>: Sendable {
        public var request: Request
        public var credentials: Credentials
        public var expires: Double
    }

    public enum Answer<Credentials: Sendable>: Sendable {
        case registered(Request, isNew: Bool)
        case credentials(Grant<Credentials>)
        case pending(Request)
        case windowClosed
        case denied
        case rateLimited
        case full
        case wrongSecret
        case unknown
        case invalid(String)
    }

    public enum Expiry<Credentials: Sendable>: Sendable {
        case request(Request)
        case grant(Grant<Credentials>)
        case window
    }

    public let settings: Settings
    public private(set) var window: (until: Double, legacy: Bool)?
    public private(set) var pending: [Request] = []
    private var grants: [String: Grant<IssuedCredentials>] = [:]
    private var denied: [String: Double] = [:]
    private var buckets: [String: (tokens: Double, time: Double)] = [:]
    private var globalBucket: (tokens: Double, time: Double)

    public init(settings: Settings = Settings()) {
        self.settings = settings
        globalBucket = (settings.global.burst, 0)
    }

    // MARK: Window

    public mutating func open(minutes: Int, legacy: Bool, now: Double) {
        window = (now + Double(minutes) * 60, legacy)
        denied.removeAll()
    }

    public mutating func close() {
        window = nil
    }

    public func isOpen(now: Double) -> Bool {
        guard let window else { return false }
        return now < window.until
    }

    public func isLegacyOpen(now: Double) -> Bool {
        isOpen(now: now) && window?.legacy == true
    }

    // MARK: Legacy (EmonESP) requests

    /// A legacy request: the device is identified by its IPv4 address only.
    public mutating func legacyRequest(ip: String, mac: String?, now: Double) -> Answer<IssuedCredentials> {
        // A grant is collected even if the window closed since Allow (it is younger than a minute).
        if let (key, grant) = grants.first(where: { $0.value.request.mode == .legacy && $0.value.request.ip == ip }) {
            guard admit(ip, now: now) else { return .rateLimited }
            grants[key] = nil
            guard now < grant.expires else { return .unknown }
            return .credentials(grant)
        }
        guard isLegacyOpen(now: now) else { return .windowClosed }
        guard Self.isIPv4(ip) else { return .invalid("legacy pairing works over IPv4 only") }
        guard admit(ip, now: now) else { return .rateLimited }
        if let until = denied[ip], now < until { return .denied }
        if let index = pending.firstIndex(where: { $0.mode == .legacy && $0.ip == ip }) {
            pending[index].lastSeen = now
            if let mac { pending[index].mac = mac }
            return .registered(pending[index], isNew: false)
        }
        guard pending.count < settings.maxPending else { return .full }
        let request = Request(
            id: newID(), mode: .legacy, name: "EmonESP at \(ip)", ip: ip, mac: mac, firstSeen: now,
            lastSeen: now, secretHash: nil, verificationCode: nil)
        pending.append(request)
        return .registered(request, isNew: true)
    }

    // MARK: Secure requests

    /// A secure request: the device sends its name and a one-time secret (over TLS).
    public mutating func secureRequest(
        ip: String, mac: String?, name: String, secret: String, now: Double
    )
        -> Answer<IssuedCredentials>
    {
        guard isOpen(now: now) else { return .windowClosed }
        guard admit(ip, now: now) else { return .rateLimited }
        let trimmed = name.trimmingPrefix(while: \.isWhitespace)
        guard (1...64).contains(trimmed.count),
            trimmed.allSatisfy({ !$0.isNewline && $0.asciiValue.map { $0 >= 32 } ?? true })
        else { return .invalid("name must be 1 to 64 printable characters") }
        guard Self.isValidSecret(secret) else {
            return .invalid("secret must be 32 to 128 characters from A-Z a-z 0-9 - _")
        }
        let hash = Crypto.sha256(Array(secret.utf8))
        if let existing = pending.first(where: { $0.secretHash.map { Crypto.constantTimeEqual($0, hash) } ?? false }) {
            return .registered(existing, isNew: false)
        }
        guard pending.count < settings.maxPending else { return .full }
        let request = Request(
            id: newID(), mode: .secure, name: String(trimmed), ip: ip, mac: mac, firstSeen: now,
            lastSeen: now, secretHash: hash, verificationCode: Self.verificationCode(hash))
        pending.append(request)
        return .registered(request, isNew: true)
    }

    /// A secure fetch: the credentials go only to whoever proves the request's secret.
    public mutating func secureFetch(id: String, secret: String, ip: String, now: Double) -> Answer<IssuedCredentials> {
        guard admit(ip, now: now) else { return .rateLimited }
        let hash = Crypto.sha256(Array(secret.utf8))
        if let grant = grants[id] {
            guard let expected = grant.request.secretHash, Crypto.constantTimeEqual(expected, hash) else {
                return .wrongSecret
            }
            grants[id] = nil
            guard now < grant.expires else { return .unknown }
            return .credentials(grant)
        }
        if let request = pending.first(where: { $0.id == id }) {
            guard let expected = request.secretHash, Crypto.constantTimeEqual(expected, hash) else {
                return .wrongSecret
            }
            return .pending(request)
        }
        if let until = denied[id], now < until { return .denied }
        return .unknown
    }

    // MARK: Decisions

    public func request(id: String) -> Request? {
        pending.first { $0.id == id }
    }

    /// Turns a pending request into a one-shot grant. Nil if it is no longer pending.
    public mutating func allow(id: String, credentials: IssuedCredentials, now: Double) -> Grant<IssuedCredentials>? {
        guard let index = pending.firstIndex(where: { $0.id == id }) else { return nil }
        let request = pending.remove(at: index)
        let grant = Grant(request: request, credentials: credentials, expires: now + settings.grantLifetime)
        grants[request.id] = grant
        return grant
    }

    public mutating func deny(id: String, now: Double) -> Request? {
        guard let index = pending.firstIndex(where: { $0.id == id }) else { return nil }
        let request = pending.remove(at: index)
        let until = max(window?.until ?? now, now) + 60
        denied[request.mode == .legacy ? request.ip : request.id] = until
        return request
    }

    // MARK: Time passing

    /// Removes what timed out; returns it (for the audit log and the prompt).
    public mutating func expire(now: Double) -> [Expiry<IssuedCredentials>] {
        var expired: [Expiry<IssuedCredentials>] = []
        pending.removeAll { request in
            guard now - request.lastSeen > settings.pendingLifetime else { return false }
            expired.append(.request(request))
            return true
        }
        for (id, grant) in grants where now >= grant.expires {
            grants[id] = nil
            expired.append(.grant(grant))
        }
        if let window, now >= window.until {
            self.window = nil
            expired.append(.window)
        }
        denied = denied.filter { now < $0.value }
        return expired
    }

    /// When something next times out (nil when nothing will): the service sleeps until then.
    public func nextDeadline() -> Double? {
        let times =
            pending.map { $0.lastSeen + settings.pendingLifetime } + grants.values.map(\.expires)
            + (window.map { [$0.until] } ?? [])
        return times.min()
    }

    // MARK: Limits and helpers

    private mutating func admit(_ ip: String, now: Double) -> Bool {
        func take(_ bucket: (tokens: Double, time: Double), _ limit: RateLimit) -> (Bool, (Double, Double)) {
            let tokens = min(limit.burst, bucket.tokens + (now - bucket.time) * limit.rate)
            return tokens >= 1 ? (true, (tokens - 1, now)) : (false, (tokens, now))
        }
        let (globalOK, global) = take(globalBucket, settings.global)
        globalBucket = global
        guard globalOK else { return false }
        if buckets.count > 4096 {
            // Forget the quietest addresses; a full bucket is what a new address gets anyway.
            buckets = buckets.filter { now - $0.value.time < 60 }
        }
        let (ok, bucket) = take(buckets[ip] ?? (settings.perIP.burst, now), settings.perIP)
        buckets[ip] = bucket
        return ok
    }

    private func newID() -> String {
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        while true {
            let id = String(Crypto.randomBytes(4).map { alphabet[Int($0) % alphabet.count] })
            if !pending.contains(where: { $0.id == id }), grants[id] == nil { return id }
        }
    }

    static func isIPv4(_ ip: String) -> Bool {
        let parts = ip.split(separator: ".")
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
    }

    static func isValidSecret(_ secret: String) -> Bool {
        (32...128).contains(secret.count)
            && secret.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" }
    }

    /// "123 456": six digits from the secret's hash; the device computes the same from its secret.
    public static func verificationCode(_ hash: [UInt8]) -> String {
        let number = hash.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) } % 1_000_000
        var digits = String(number)
        digits = String(repeating: "0", count: 6 - digits.count) + digits
        return "\(digits.prefix(3)) \(digits.suffix(3))"
    }
}

/// What an approved device receives.
public struct IssuedCredentials: Sendable, Equatable, Codable {
    /// Stable device id, e.g. "emonesp-k7q2".
    public var deviceID: String
    public var username: String
    public var password: String
    /// The device may use `<topicPrefix>/#` and nothing else.
    public var topicPrefix: String
}
