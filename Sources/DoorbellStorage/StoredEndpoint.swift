import DoorbellCore
import Foundation
import Logging
import Synchronization

/// An `endpoints` row as its columns hold it, before anything is trusted: each backend reads its
/// row into this (nil where a column is NULL or not of its type) and decodes it here, so SQLite and
/// PostgreSQL read a damaged row the same way.
struct StoredEndpointRow: Sendable, Equatable {
    var id: String?
    var url: String?
    /// JSON list of event-type patterns.
    var events: String?
    /// JSON list of `StoredSecret`.
    var secrets: String?
    /// `N/s`, `N/m` or `N/h`.
    var rateLimit: String?
    /// JSON object of header names to values.
    var headers: String?
    var enabled: Bool?
    var disabledReason: String?
    var fromConfig: Bool?
    var description: String?
    /// JSON `StoredRetry`.
    var retry: String?

    init(
        id: String?, url: String?, events: String?, secrets: String?, rateLimit: String?, headers: String?,
        enabled: Bool?, disabledReason: String?, fromConfig: Bool?, description: String?, retry: String?
    ) {
        self.id = id
        self.url = url
        self.events = events
        self.secrets = secrets
        self.rateLimit = rateLimit
        self.headers = headers
        self.enabled = enabled
        self.disabledReason = disabledReason
        self.fromConfig = fromConfig
        self.description = description
        self.retry = retry
    }

    /// The column values an upsert writes for `endpoint` (JSON with sorted keys, so equal settings
    /// store equal text).
    init(encoding endpoint: Endpoint) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func json(_ value: some Encodable) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        self.init(
            id: endpoint.id, url: endpoint.url, events: try json(endpoint.events),
            secrets: try json(endpoint.secrets.map { StoredSecret(secret: $0.secret, expires_at: $0.expiresAt?.millis) }),
            rateLimit: endpoint.rateLimit?.description, headers: try json(endpoint.headers), enabled: endpoint.enabled,
            disabledReason: endpoint.disabledReason, fromConfig: endpoint.fromConfig, description: endpoint.description,
            retry: try endpoint.retry.map { try json(StoredRetry(schedule: $0.schedule, jitter: $0.jitter)) }
        )
    }

    /// An endpoint's own retry schedule, as stored in `retry`.
    struct StoredRetry: Codable {
        var schedule: [Double]
        var jitter: Double
    }

    /// One signing secret, as stored in `secrets` (expiry in milliseconds since 1970).
    struct StoredSecret: Codable {
        var secret: String
        var expires_at: Int64?
    }

    /// Reads the row without trusting it: a field that does not decode (bad `events` JSON, a secret
    /// that is not a signing key, headers that could split a request, …) is never given a
    /// permissive default — `*`, unsigned, no headers — that would deliver what the row did not
    /// say. Such an endpoint is read as disabled, with a reason naming every damaged field, and
    /// nothing is delivered to it until it is repaired (PATCH the field or rotate the secret, then
    /// enable it). `damage` lists the fields as `field: what is wrong`.
    func decode() -> (endpoint: Endpoint, damage: [String]) {
        var damage: [String] = []
        let decoder = JSONDecoder()
        func json<T: Decodable>(_ type: T.Type, _ stored: String?, _ column: String, _ what: String) -> T? {
            guard let stored else {
                damage.append("\(column): missing")
                return nil
            }
            guard let value = try? decoder.decode(type, from: Data(stored.utf8)) else {
                damage.append("\(column): not \(what)")
                return nil
            }
            return value
        }
        let events = json([String].self, self.events, "events", "a JSON list of strings") ?? []
        let storedSecrets = json([StoredSecret].self, secrets, "secrets", "a JSON list of secrets")
        if storedSecrets?.isEmpty == true { damage.append("secrets: none stored (deliveries would go unsigned)") }
        // Each header name and value is checked below, by `problems()` (EventLimits' rules).
        let headers = json([String: String].self, self.headers, "headers", "a JSON object of strings") ?? [:]
        var rateLimit: RateLimit?
        if let stored = self.rateLimit {
            rateLimit = RateLimit(stored)
            if rateLimit == nil { damage.append("rate_limit: not N/s, N/m or N/h") }
        }
        var retry: RetryPolicy?
        if self.retry != nil {
            retry = json(StoredRetry.self, self.retry, "retry", "a JSON retry schedule").map { RetryPolicy(schedule: $0.schedule, jitter: $0.jitter) }
        }
        // Only SQLite can hold a value here that is not a boolean (PostgreSQL's column is BOOLEAN NOT NULL).
        if enabled == nil { damage.append("enabled: not 0 or 1") }
        var endpoint = Endpoint(
            id: id ?? "", url: url ?? "", events: events,
            secrets: (storedSecrets ?? []).map { EndpointSecret(secret: $0.secret, expiresAt: $0.expires_at.map { Date(timeIntervalSince1970: Double($0) / 1000) }) },
            rateLimit: rateLimit, headers: headers, enabled: enabled ?? false, disabledReason: disabledReason,
            fromConfig: fromConfig ?? false, description: description, retry: retry
        )
        // The row's own values checked as the API and the config check them (a secret that is not a
        // whsec_/whsk_ key, an empty filter, a URL that is not http(s), a header that could split a request).
        damage += endpoint.problems().filter { problem in !damage.contains { $0.hasPrefix(problem.field) } }.map { "\($0.field): \($0.message)" }
        if !damage.isEmpty {
            endpoint.enabled = false
            endpoint.disabledReason = "stored row damaged (\(damage.joined(separator: "; "))): not delivered to until repaired"
        }
        return (endpoint, damage)
    }

    /// Damage already logged by this process, as endpoint id and damage: each is logged once.
    private static let reportedDamage = Mutex<Set<String>>([])

    /// The endpoints of `decoded`, after logging each damaged row at error once per process and
    /// damage (endpoints are read again on every change; the log should not repeat itself).
    static func reportDamage(_ decoded: [(endpoint: Endpoint, damage: [String])], logger: Logger) -> [Endpoint] {
        for (endpoint, damage) in decoded where !damage.isEmpty {
            let key = "\(endpoint.id)\u{0}\(damage.joined(separator: ";"))"
            guard reportedDamage.withLock({ $0.insert(key).inserted }) else { continue }
            logger.error("endpoint row damaged: nothing is delivered to it until it is repaired", metadata: [
                "endpoint": "\(endpoint.id)", "damage": "\(damage.joined(separator: "; "))",
            ])
        }
        return decoded.map(\.endpoint)
    }
}

extension Endpoint {
    /// Makes `secret` current; every older one keeps signing until `overlap` from now at most.
    /// (Both backends rotate this way.)
    mutating func rotate(to secret: EndpointSecret, overlap: Double, now: Date) {
        let expiry = now.addingTimeInterval(overlap)
        let kept = secrets.compactMap { old -> EndpointSecret? in
            let expires = old.expiresAt.map { min($0, expiry) } ?? expiry
            return expires > now ? EndpointSecret(secret: old.secret, expiresAt: expires) : nil
        }
        secrets = [secret] + kept
    }
}
