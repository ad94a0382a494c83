import Foundation
import TLS

/// A logged-in administrator's session on the web page.
struct WebSession: Sendable, Equatable {
    /// An internal key (a hash of the cookie's token, never the token itself).
    let id: String
    let user: String
    /// The token the page sends with every state-changing request (`X-CSRF-Token`).
    let csrf: String
    /// The browser's address at log-in.
    let client: String
    /// The password file's line the session was made with: a new password ends it.
    let credential: String
    var lastSeen: ContinuousClock.Instant
}

/// The web page's sessions and log-in attempts. Time is passed in, so every rule is testable.
///
/// Rules:
/// - A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie (Secure over
///   HTTPS); the server keeps only its SHA-256. It ends at log-out, after `timeout` without a
///   request from its page, or when the password changes. At most `maxSessions` live at once
///   (the oldest goes first).
/// - Log-in attempts that fail are limited per client address (5, then one per 30 s) and for
///   everyone together (30, then one per 10 s); while limited, even the right password is
///   refused, and the password is not even checked (no hashing on demand for an attacker).
struct WebSessions: Sendable {
    let timeout: Duration
    let maxSessions: Int
    private var sessions: [String: WebSession] = [:]
    private var failures: [String: Bucket] = [:]
    private var everyone: Bucket

    private struct Bucket {
        var tokens: Double
        var time: ContinuousClock.Instant
    }

    static let perClient = (burst: 5.0, refill: Duration.seconds(30))
    static let global = (burst: 30.0, refill: Duration.seconds(10))

    init(timeout: Duration, maxSessions: Int = 16, now: ContinuousClock.Instant) {
        self.timeout = timeout
        self.maxSessions = maxSessions
        everyone = Bucket(tokens: Self.global.burst, time: now)
    }

    // MARK: Sessions

    /// A new session; returns the cookie's token (given to the browser only) and the session.
    mutating func create(
        user: String, client: String, credential: String, now: ContinuousClock.Instant
    ) -> (token: String, session: WebSession) {
        let token = Self.token()
        let session = WebSession(
            id: Self.key(token), user: user, csrf: Self.token(), client: client, credential: credential, lastSeen: now)
        if sessions.count >= maxSessions, let oldest = sessions.values.min(by: { $0.lastSeen < $1.lastSeen }) {
            sessions[oldest.id] = nil
        }
        sessions[session.id] = session
        return (token, session)
    }

    /// The live session of a cookie's token, its idle time restarted; nil if there is none, it
    /// expired, or the password changed since (`credential`: the password file's line now).
    mutating func session(token: String?, credential: String?, now: ContinuousClock.Instant) -> WebSession? {
        guard let token, !token.isEmpty else { return nil }
        let id = Self.key(token)
        guard var session = sessions[id] else { return nil }
        guard now - session.lastSeen < timeout, session.credential == credential else {
            sessions[id] = nil
            return nil
        }
        session.lastSeen = now
        sessions[id] = session
        return session
    }

    /// Ends a session (log-out).
    mutating func end(id: String) -> WebSession? {
        sessions.removeValue(forKey: id)
    }

    /// The sessions idle for `timeout`, removed.
    mutating func expire(now: ContinuousClock.Instant) -> [WebSession] {
        let expired = sessions.values.filter { now - $0.lastSeen >= timeout }
        for session in expired { sessions[session.id] = nil }
        return expired.sorted { $0.lastSeen < $1.lastSeen }
    }

    /// When the next session would expire (nil: none left).
    var nextExpiry: ContinuousClock.Instant? {
        sessions.values.map(\.lastSeen).min().map { $0 + timeout }
    }

    var count: Int { sessions.count }

    // MARK: Log-in attempts

    /// Seconds until `client` may try again; nil when it may try now.
    mutating func loginWait(client: String, now: ContinuousClock.Instant) -> Int? {
        let own = refill(failures[client], Self.perClient, now: now)
        everyone = refill(everyone, Self.global, now: now)
        failures[client] = own
        let wait = max(Self.wait(own, Self.perClient.refill), Self.wait(everyone, Self.global.refill))
        return wait > 0 ? wait : nil
    }

    /// A wrong user name or password from `client`.
    mutating func loginFailed(client: String, now: ContinuousClock.Instant) {
        var own = refill(failures[client], Self.perClient, now: now)
        own.tokens -= 1
        failures[client] = own
        everyone = refill(everyone, Self.global, now: now)
        everyone.tokens -= 1
        if failures.count > 4096 {
            failures = failures.filter { $0.value.tokens < Self.perClient.burst - 0.5 }
        }
    }

    private func refill(
        _ bucket: Bucket?, _ limit: (burst: Double, refill: Duration), now: ContinuousClock.Instant
    ) -> Bucket {
        guard let bucket else { return Bucket(tokens: limit.burst, time: now) }
        let gained = (now - bucket.time) / limit.refill
        return Bucket(tokens: min(limit.burst, bucket.tokens + gained), time: now)
    }

    private static func wait(_ bucket: Bucket, _ refill: Duration) -> Int {
        guard bucket.tokens < 1 else { return 0 }
        return Int(((1 - bucket.tokens) * refill.seconds).rounded(.up))
    }

    // MARK: Tokens

    /// 256 random bits, base64url.
    static func token() -> String {
        Data(Crypto.randomBytes(32)).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func key(_ token: String) -> String {
        Crypto.hex(Crypto.sha256(Array(token.utf8)))
    }
}
