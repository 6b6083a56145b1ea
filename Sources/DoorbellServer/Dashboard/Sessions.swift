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
    let passwordGate = PasswordCheckGate()
    let now: @Sendable () -> Date
    /// One fingerprint per credential that signs in now (each token, the password hash). A session
    /// records the one it was made with and ends once the config no longer has it (token removed,
    /// password changed), on every node, after the restart that loads the new config.
    let tokenFingerprints: [String]
    let passwordFingerprint: String?

    init(configuration: Configuration, store: any DashboardSessionStore, now: @escaping @Sendable () -> Date) {
        self.store = store
        self.tokenDigests = configuration.api.tokens.map { Array(SHA256.hash(data: Array($0.utf8))) }
        self.password = configuration.dashboard.passwordHash.flatMap(PasswordHash.init)
        self.tokenFingerprints = tokenDigests.map { Self.fingerprint(key: $0) }
        self.passwordFingerprint = password.map { Self.fingerprint(key: Array($0.description.utf8)) }
        self.settings = configuration.dashboard
        self.secureCookies = configuration.server.publicURL?.lowercased().hasPrefix("https://") ?? false
        self.limiter = SignInLimiter()
        self.now = now
    }

    /// Whether anyone can sign in at all.
    var isConfigured: Bool { !tokenDigests.isEmpty || password != nil }

    /// Who `secret` signs in as: `token N` or `password`; nil when it is neither.
    func principal(for secret: String) -> String? {
        if let token = tokenPrincipal(secret) { return token }
        if let password, password.matches(secret) { return "password" }
        return nil
    }

    /// `token N` when `secret` is the Nth API token; cheap (no PBKDF2).
    func tokenPrincipal(_ secret: String) -> String? {
        let digest = Array(SHA256.hash(data: Array(secret.utf8)))
        var matched: Int?
        // Every token compared whole, whatever matched, so timing says nothing about which.
        for (index, expected) in tokenDigests.enumerated() where Self.constantTimeEqual(expected, digest) && matched == nil {
            matched = index + 1
        }
        return matched.map { "token \($0)" }
    }

    /// A credential's fingerprint: HMAC-SHA256 of a fixed text keyed by the token's SHA-256 or the
    /// stored password hash, 128 bits in hex. One-way, so the sessions table reveals no credential.
    static func fingerprint(key: [UInt8]) -> String {
        HMAC<SHA256>.authenticationCode(for: Array("doorbell dashboard session credential".utf8), using: SymmetricKey(data: key))
            .prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// The fingerprint of the credential `principal` (`token N`, `password`) names, if configured.
    func fingerprint(of principal: String) -> String? {
        if principal == "password" { return passwordFingerprint }
        guard principal.hasPrefix("token "), let number = Int(principal.dropFirst(6)), tokenFingerprints.indices.contains(number - 1) else { return nil }
        return tokenFingerprints[number - 1]
    }

    /// Whether a stored session's credential still signs in. The session's principal is stored as
    /// `<who> <fingerprint>` (the store's column is free text; no schema change).
    func credentialConfigured(_ session: DashboardSession) -> Bool {
        guard let fingerprint = session.principal.split(separator: " ").last.map(String.init), fingerprint.count == 32 else { return false }
        return tokenFingerprints.contains(fingerprint) || passwordFingerprint == fingerprint
    }

    /// Creates a session; returns the cookie to set.
    func startSession(principal: String) async throws -> Cookie {
        guard let fingerprint = fingerprint(of: principal) else { throw DashboardAuthError.unknownPrincipal }
        let id = Self.randomToken()
        let time = now()
        _ = try? await store.deleteExpiredSessions(now: time)
        try await store.createSession(DashboardSession(
            idHash: Self.hash(id), principal: principal + " " + fingerprint, createdAt: time,
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
        guard credentialConfigured(session) else {
            // Made with a token or password the config no longer has: ended, here and for every node.
            _ = try? await store.deleteSession(idHash: idHash)
            return nil
        }
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

/// A sign-in that cannot become a session.
struct DashboardAuthError: Error {
    /// The principal names no configured credential (a programming error: sign-in found it).
    static let unknownPrincipal = DashboardAuthError()
}

/// A request's valid session and the CSRF token its forms must carry.
struct SignedIn: Sendable {
    let session: DashboardSession
    let csrfToken: String
}

/// Failed sign-ins per client address, in memory: at most `limit` in `window`, then 429 until the
/// oldest ages out. Per node, which is enough to make guessing a token or password hopeless.
/// A guess takes its slot before it is checked (guesses still being checked count), so parallel
/// requests get no more guesses than sequential ones; an IPv6 client counts by its /64.
final class SignInLimiter: Sendable {
    static let limit = 10
    static let window: Double = 15 * 60
    /// Failed password checks from every address together per window: past it the password is not
    /// checked at all (429) until the window moves on; API tokens still sign in.
    static let globalPasswordLimit = 100
    /// Addresses remembered; past it, new addresses share one bucket (an address flood cannot grow
    /// the table nor spread its guesses over fresh buckets).
    static let maxAddresses = 10_000
    static let overflowKey = "(other addresses)"

    private struct State {
        var failures: [String: [Date]] = [:]
        var inFlight: [String: Int] = [:]
        var passwordFailures: [Date] = []
        var passwordChecks = 0
        var nextPrune = Date.distantPast
    }
    private let state = Mutex(State())

    /// The bucket an address counts in: IPv4 (and IPv4-mapped) whole, IPv6 by its /64 network.
    static func key(_ address: String) -> String {
        guard let (bytes, isIPv4) = CIDR.parseAddress(address) else { return address }
        if isIPv4 { return bytes.suffix(4).map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 8, by: 2).map { String(format: "%02x%02x", bytes[$0], bytes[$0 + 1]) }.joined(separator: ":") + "::/64"
    }

    /// Takes a guess slot for `key`, or says until when it is blocked. Every slot taken is given
    /// back with `end`.
    func begin(_ key: String, now: Date) -> (key: String, blockedUntil: Date?) {
        state.withLock { state in
            Self.prune(&state, now: now)
            let bucket = state.failures[key] != nil || state.inFlight[key] != nil || state.failures.count < Self.maxAddresses ? key : Self.overflowKey
            let recent = (state.failures[bucket] ?? []).filter { now.timeIntervalSince($0) < Self.window }
            state.failures[bucket] = recent.isEmpty ? nil : recent
            let checking = state.inFlight[bucket] ?? 0
            if recent.count >= Self.limit { return (bucket, recent[recent.count - Self.limit].addingTimeInterval(Self.window)) }
            // Guesses still being checked may all fail: wait for them.
            if recent.count + checking >= Self.limit { return (bucket, now.addingTimeInterval(1)) }
            state.inFlight[bucket] = checking + 1
            return (bucket, nil)
        }
    }

    /// Gives back the slot `begin` took; a failed guess stays counted for `window`.
    func end(_ key: String, failed: Bool, now: Date) {
        state.withLock { state in
            let checking = (state.inFlight[key] ?? 1) - 1
            state.inFlight[key] = checking > 0 ? checking : nil
            if failed { state.failures[key, default: []].append(now) }
        }
    }

    /// Takes a slot in the global password budget, or says until when the password is not checked.
    func beginPasswordCheck(now: Date) -> Date? {
        state.withLock { state in
            state.passwordFailures.removeAll { now.timeIntervalSince($0) >= Self.window }
            if state.passwordFailures.count + state.passwordChecks >= Self.globalPasswordLimit {
                return (state.passwordFailures.first ?? now).addingTimeInterval(Self.window)
            }
            state.passwordChecks += 1
            return nil
        }
    }

    func endPasswordCheck(failed: Bool, now: Date) {
        state.withLock { state in
            state.passwordChecks -= 1
            if failed { state.passwordFailures.append(now) }
        }
    }

    /// Forgets aged-out failures, at most once a minute (not on every request: the table may be large).
    private static func prune(_ state: inout State, now: Date) {
        guard now >= state.nextPrune else { return }
        state.nextPrune = now.addingTimeInterval(60)
        state.failures = state.failures.filter { now.timeIntervalSince($0.value.last ?? .distantPast) < window }
    }
}

/// At most two PBKDF2 checks at a time, each off the concurrency pool: sign-in attempts queue here
/// instead of taking every core (the global password budget bounds the queue).
final class PasswordCheckGate: Sendable {
    static let concurrent = 2
    private let state = Mutex<(running: Int, waiting: [CheckedContinuation<Void, Never>])>((0, []))

    func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (slot: CheckedContinuation<Void, Never>) in
            let admitted = state.withLock { state in
                if state.running < Self.concurrent { state.running += 1; return true }
                state.waiting.append(slot)
                return false
            }
            if admitted { slot.resume() }
        }
        let result = await withCheckedContinuation { answer in DispatchQueue.global().async { answer.resume(returning: work()) } }
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            // The slot passes straight to the next waiter, if any.
            if state.waiting.isEmpty { state.running -= 1; return nil }
            return state.waiting.removeFirst()
        }
        next?.resume()
        return result
    }
}

/// How a sign-in attempt ended.
enum SignInOutcome: Sendable {
    case signedIn(principal: String)
    case refused
    /// Too many failures: from this address, or (`everyone`) password checks from all addresses.
    case blocked(until: Date, everyone: Bool)
}

extension DashboardAuth {
    /// Checks `secret` from `address` within the limits: a guess slot first, then the API tokens
    /// (cheap), then the password (PBKDF2, within the global budget and at most two at a time).
    func checkSignIn(secret: String, address: String, now time: Date) async -> SignInOutcome {
        let (key, blocked) = limiter.begin(SignInLimiter.key(address), now: time)
        if let blocked { return .blocked(until: blocked, everyone: false) }
        var failed = true
        defer { limiter.end(key, failed: failed, now: time) }
        guard !secret.isEmpty, secret.count <= 1000 else { return .refused }
        if let token = tokenPrincipal(secret) {
            failed = false
            return .signedIn(principal: token)
        }
        guard let password else { return .refused }
        if let until = limiter.beginPasswordCheck(now: time) {
            // Not checked, so not a guess from this address.
            failed = false
            return .blocked(until: until, everyone: true)
        }
        let matched = await passwordGate.run { password.matches(secret) }
        limiter.endPasswordCheck(failed: !matched, now: time)
        failed = !matched
        return matched ? .signedIn(principal: "password") : .refused
    }
}
