import DoorbellCore
import Foundation

/// Signed-in dashboard sessions, kept in the store so every node sharing it accepts the same cookie.
/// Only a hash of the session id is stored: a copy of the database signs nobody in.
public protocol DashboardSessionStore: Sendable {
    /// Stores a new session.
    func createSession(_ session: DashboardSession) async throws
    /// The session whose id hashes to `idHash`, if it is still valid at `now` (neither idle past
    /// `idleUntil` nor past `expiresAt`).
    func session(idHash: String, now: Date) async throws -> DashboardSession?
    /// Moves a session's idle deadline on (a request was made with it).
    func touchSession(idHash: String, idleUntil: Date) async throws
    /// Ends a session (sign out); false when there was none.
    func deleteSession(idHash: String) async throws -> Bool
    /// Forgets sessions no longer valid at `now`; returns how many.
    func deleteExpiredSessions(now: Date) async throws -> Int
}

/// One signed-in browser.
public struct DashboardSession: Sendable, Equatable {
    /// Hex SHA-256 of the session id the cookie holds.
    public var idHash: String
    /// Who signed in, for the page header and logs: `token 1`, `password`. Never a secret.
    public var principal: String
    public var createdAt: Date
    /// Idle expiry: each request moves it on.
    public var idleUntil: Date
    /// Absolute expiry: a session ends here however busy it is.
    public var expiresAt: Date

    public init(idHash: String, principal: String, createdAt: Date, idleUntil: Date, expiresAt: Date) {
        self.idHash = idHash
        self.principal = principal
        self.createdAt = createdAt
        self.idleUntil = idleUntil
        self.expiresAt = expiresAt
    }
}
