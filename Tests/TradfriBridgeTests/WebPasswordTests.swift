import Foundation
import Testing

@testable import TradfriBridge

/// The web page's administrator password (stored as a slow salted hash) and its sessions and
/// log-in limits, without a server: time is passed in.
@Suite struct WebPasswordTests {
    @Test func onlyTheRightUserAndPasswordPassAndTheFileHoldsNoPassword() throws {
        let stored = try WebPassword.make(user: "admin", password: "correct horse battery")
        #expect(stored.verify(user: "admin", password: "correct horse battery"))
        #expect(!stored.verify(user: "admin", password: "correct horse batterx"))
        #expect(!stored.verify(user: "root", password: "correct horse battery"))
        #expect(!stored.line.contains("correct horse battery"))
        #expect(stored.line.hasPrefix("admin:$scrypt$ln=14,r=8,p=5$"))
        // The same password hashes differently each time (a random salt).
        #expect(try WebPassword.make(user: "admin", password: "correct horse battery").line != stored.line)
        let reread = try #require(WebPassword.parse(stored.line + "\n"))
        #expect(reread == stored && reread.verify(user: "admin", password: "correct horse battery"))
    }

    @Test(arguments: [
        ("admin", "short", "at least 10 characters"), ("", "correct horse battery", "user name"),
        ("a b", "correct horse battery", "user name"), ("admin:x", "correct horse battery", "user name"),
    ])
    func weakPasswordsAndOddNamesAreRefused(user: String, password: String, message: String) {
        #expect {
            try WebPassword.make(user: user, password: password)
        } throws: { "\($0)".contains(message) }
    }

    @Test(arguments: [
        "", "admin", "admin:secret", "admin:$scrypt$ln=14,r=8,p=5$c2FsdHNhbHQ=", "admin:$md5$x$y$z",
        "admin:$scrypt$ln=40,r=8,p=5$c2FsdHNhbHQ=$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "adm in:$scrypt$ln=14,r=8,p=5$c2FsdHNhbHQ=$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ])
    func aFileThatIsNotAPasswordFileIsNotTakenForOne(text: String) {
        #expect(WebPassword.parse(text) == nil)
    }

    @Test func aMissingFileMeansNotSetAndAStoredOneIsMode0600() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("web-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("web-password").path
        #expect(WebPassword.load(path: path) == .notSet)
        let stored = try WebPassword.make(user: "admin", password: "correct horse battery")
        try stored.store(path: path)
        #expect(WebPassword.load(path: path) == .set(stored))
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        try "garbage\n".write(toFile: path, atomically: true, encoding: .utf8)
        guard case .unusable = WebPassword.load(path: path) else {
            Issue.record("a file that is not a password file must be reported")
            return
        }
    }

    // MARK: Sessions

    let start = ContinuousClock.now

    @Test func aSessionLivesWhileItsPageIsUsedAndEndsAfterTheIdleTime() {
        var sessions = WebSessions(timeout: .seconds(60), now: start)
        let (token, session) = sessions.create(user: "admin", client: "192.0.2.1", credential: "line", now: start)
        #expect(!token.isEmpty && session.id != token && session.csrf != token)
        #expect(sessions.session(token: token, credential: "line", now: start + .seconds(50)) != nil)
        // Used at 50 s: alive at 100 s, gone at 111 s.
        #expect(sessions.session(token: token, credential: "line", now: start + .seconds(100)) != nil)
        #expect(sessions.nextExpiry == start + .seconds(160))
        #expect(sessions.expire(now: start + .seconds(150)).isEmpty)
        #expect(sessions.expire(now: start + .seconds(161)).map(\.user) == ["admin"])
        #expect(sessions.session(token: token, credential: "line", now: start + .seconds(162)) == nil)
        #expect(sessions.nextExpiry == nil)
    }

    @Test func aNewPasswordOrALogOutEndsASessionAndWrongTokensFindNothing() {
        var sessions = WebSessions(timeout: .seconds(60), now: start)
        let (token, session) = sessions.create(user: "admin", client: "192.0.2.1", credential: "old", now: start)
        #expect(sessions.session(token: "x" + token, credential: "old", now: start) == nil)
        #expect(sessions.session(token: nil, credential: "old", now: start) == nil)
        #expect(sessions.session(token: token, credential: "new", now: start) == nil, "the password changed")
        #expect(sessions.session(token: token, credential: "old", now: start) == nil, "and the session is gone")
        let (second, secondSession) = sessions.create(user: "admin", client: "192.0.2.1", credential: "old", now: start)
        #expect(sessions.end(id: secondSession.id) != nil)
        #expect(sessions.session(token: second, credential: "old", now: start) == nil)
        #expect(session.id != secondSession.id)
    }

    @Test func atMostSixteenSessionsTheOldestGoFirst() {
        var sessions = WebSessions(timeout: .seconds(600), now: start)
        let first = sessions.create(user: "admin", client: "a", credential: "c", now: start).token
        for index in 1...16 {
            _ = sessions.create(user: "admin", client: "a", credential: "c", now: start + .seconds(index))
        }
        #expect(sessions.count == 16)
        #expect(sessions.session(token: first, credential: "c", now: start + .seconds(20)) == nil)
    }

    @Test func wrongPasswordsAreLimitedPerClientAndForEveryone() {
        var sessions = WebSessions(timeout: .seconds(60), now: start)
        for _ in 1...5 {
            #expect(sessions.loginWait(client: "192.0.2.1", now: start) == nil)
            sessions.loginFailed(client: "192.0.2.1", now: start)
        }
        #expect(sessions.loginWait(client: "192.0.2.1", now: start) == 30, "five, then one per 30 s")
        #expect(sessions.loginWait(client: "192.0.2.2", now: start) == nil, "others may still try")
        #expect(sessions.loginWait(client: "192.0.2.1", now: start + .seconds(30)) == nil)
        // Everyone together: 30, then one per 10 s (5 used above, 3 come back in 30 s: 28 left).
        for index in 0..<28 { sessions.loginFailed(client: "198.51.100.\(index)", now: start + .seconds(30)) }
        #expect(sessions.loginWait(client: "203.0.113.9", now: start + .seconds(30)) == 10)
        #expect(sessions.loginWait(client: "203.0.113.9", now: start + .seconds(40)) == nil)
    }
}
