import DoorbellCore
import Yams

/// `dashboard:` — how the browser dashboard at `/ui` signs people in. Without it, only the tokens in
/// `api.tokens` sign in.
public struct DashboardSettings: Sendable, Equatable {
    /// `password_hash`: a `doorbell hash-password` output (`pbkdf2_sha256$…`); never the password.
    public var passwordHash: String?
    /// `session_idle`: a session unused this long ends (default 12 h).
    public var sessionIdle: Double
    /// `session_max`: a session ends this long after sign-in however busy (default 7 days).
    public var sessionMax: Double

    public init(passwordHash: String? = nil, sessionIdle: Double = 12 * 3600, sessionMax: Double = 7 * 86400) {
        self.passwordHash = passwordHash
        self.sessionIdle = sessionIdle
        self.sessionMax = sessionMax
    }
}

extension ConfigLoader {
    static func readDashboard(_ node: Node, _ reader: NodeReader) -> DashboardSettings? {
        guard let keys = reader.mapping(node, at: "dashboard", allowed: ["password_hash", "session_idle", "session_max"]) else { return nil }
        var settings = DashboardSettings()
        if let hash = keys["password_hash"], let text = reader.nonEmptyString(hash, at: "dashboard.password_hash") {
            // The shape only; DoorbellVerification.PasswordHash reads it whole at start.
            let parts = text.split(separator: "$", omittingEmptySubsequences: false)
            if parts.count == 4, parts[0] == "pbkdf2_sha256", Int(parts[1]) != nil {
                settings.passwordHash = text
            } else {
                reader.error("dashboard.password_hash", "expected the output of `doorbell hash-password` (pbkdf2_sha256$…), not a password", hash)
            }
        }
        for (key, keyPath) in [("session_idle", \DashboardSettings.sessionIdle), ("session_max", \DashboardSettings.sessionMax)] {
            guard let value = keys[key], let text = reader.string(value, at: "dashboard.\(key)") else { continue }
            if let seconds = Units.parseDuration(text), seconds >= 60 {
                settings[keyPath: keyPath] = seconds
            } else {
                reader.error("dashboard.\(key)", "expected a duration of at least 1m such as 12h, found '\(reader.written(value))'", value)
            }
        }
        return settings
    }
}
