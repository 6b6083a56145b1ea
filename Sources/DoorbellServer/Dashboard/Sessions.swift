import Crypto
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import DoorbellVerification
import Foundation
import Hummingbird
import Synchronization

/// Dashboard sign-in and sessions. A browser signs in with an API token or the dashboard password;
/// it then holds a random session id in an HttpOnly, SameSite=Strict cookie. The store keeps only the
/// id's SHA-256, so sessions are shared by every node and a database copy signs nobody in. The CSRF
/// token is an HMAC of the session id: every form carries it, and no state changes without it.
struct DashboardAuth: Sendable {
    static let cookieName = "doorbell_session"
    static let signInCookieName = "doorbell_signin"

    let store: any DashboardSessionStore
    /// SHA-256 of each API token, compared in constant time.
    let tokenDigests: [[UInt8]]
    let password: PasswordHash?
    let settings: DashboardSettings
    /// Secure cookies when the dashboard is reached over https (server.public_url).
    let secureCookies: Bool
    let limiter: SignInLimiter
    let now: @Sendable () -> Date

    init(configuration: Configuration, store: any DashboardSessionStore, now: @escaping @Sendable () -> Date) {
        self.store = store
        self.tokenDigests = configuration.api.tokens.map { Array(SHA256.hash(data: Array($0.utf8))) }
        self.password = configuration.dashboard.passwordHash.flatMap(PasswordHash.init)
        self.settings = configuration.dashboard
        self.secureCookies = configuration.server.publicURL?.lowercased().hasPrefix("https://") ?? false
        self.limiter = SignInLimiter()
        self.now = now
    }

    /// Whether anyone can sign in at all.
    var isConfigured: Bool { !tokenDigests.isEmpty || password != nil }

    /// Who `secret` signs in as: `token N` or `password`; nil when it is neither.
    func principal(for secret: String) -> String? {
        let digest = Array(SHA256.hash(data: Array(secret.utf8)))
        var matched: Int?
        // Every token compared whole, whatever matched, so timing says nothing about which.
        for (index, expected) in tokenDigests.enumerated() where Self.constantTimeEqual(expected, digest) && matched == nil {
            matched = index + 1
        }
        if let matched { return "token \(matched)" }
        if let password, password.matches(secret) { return "password" }
        return nil
    }

    /// Creates a session; returns the cookie to set.
    func startSession(principal: String) async throws -> Cookie {
        let id = Self.randomToken()
        let time = now()
        _ = try? await store.deleteExpiredSessions(now: time)
        try await store.createSession(DashboardSession(
            idHash: Self.hash(id), principal: principal, createdAt: time,
            idleUntil: time.addingTimeInterval(settings.sessionIdle), expiresAt: time.addingTimeInterval(settings.sessionMax)
        ))
        return cookie(Self.cookieName, id, maxAge: Int(settings.sessionMax))
    }

    /// The signed-in session of a request, if its cookie names a valid one. Moves the idle expiry
    /// on at most once a minute (one write, not one per page).
    func session(of request: Request) async throws -> SignedIn? {
        guard let id = request.cookies[Self.cookieName]?.value, !id.isEmpty, id.count <= 100 else { return nil }
        let idHash = Self.hash(id)
        let time = now()
        guard let session = try await store.session(idHash: idHash, now: time) else { return nil }
        let idleUntil = time.addingTimeInterval(settings.sessionIdle)
        if idleUntil.timeIntervalSince(session.idleUntil) > 60 {
            try await store.touchSession(idHash: idHash, idleUntil: idleUntil)
        }
        return SignedIn(session: session, csrfToken: Self.csrfToken(sessionID: id))
    }

    func endSession(of request: Request) async throws {
        guard let id = request.cookies[Self.cookieName]?.value, !id.isEmpty, id.count <= 100 else { return }
        _ = try await store.deleteSession(idHash: Self.hash(id))
    }

    /// A cookie with the dashboard's attributes: HttpOnly, SameSite=Strict, Path=/ui, Secure over https.
    func cookie(_ name: String, _ value: String, maxAge: Int) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/ui", secure: secureCookies, httpOnly: true, sameSite: .strict)
    }

    static func hash(_ text: String) -> String {
        SHA256.hash(data: Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// 32 random bytes, base64url: the session id and the sign-in form's token.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// The CSRF token of a session: HMAC-SHA256 keyed by the session id, so it needs no storage and
    /// only the session's holder can know it.
    static func csrfToken(sessionID: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Array("doorbell dashboard csrf".utf8), using: SymmetricKey(data: Array(sessionID.utf8)))
            .map { String(format: "%02x", $0) }.joined()
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<a.count { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        constantTimeEqual(Array(SHA256.hash(data: Array(a.utf8))), Array(SHA256.hash(data: Array(b.utf8))))
    }
}

/// A request's valid session and the CSRF token its forms must carry.
struct SignedIn: Sendable {
    let session: DashboardSession
    let csrfToken: String
}

/// Failed sign-ins per client address, in memory: at most `limit` in `window`, then 429 until the
/// oldest ages out. Per node, which is enough to make guessing a token or password hopeless.
final class SignInLimiter: Sendable {
    static let limit = 10
    static let window: Double = 15 * 60
    private let failures = Mutex<[String: [Date]]>([:])

    /// When the address may try again, or nil when it may now.
    func blockedUntil(_ address: String, now: Date) -> Date? {
        failures.withLock { table in
            let recent = (table[address] ?? []).filter { now.timeIntervalSince($0) < Self.window }
            table[address] = recent.isEmpty ? nil : recent
            return recent.count >= Self.limit ? recent[recent.count - Self.limit].addingTimeInterval(Self.window) : nil
        }
    }

    func recordFailure(_ address: String, now: Date) {
        failures.withLock { table in
            // Bounded: an address flood forgets the oldest entries, never grows without end.
            if table.count > 10_000 { table = table.filter { now.timeIntervalSince($0.value.last ?? .distantPast) < Self.window } }
            table[address, default: []].append(now)
        }
    }
}
