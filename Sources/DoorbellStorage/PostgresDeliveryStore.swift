import DoorbellCore
import Foundation
import Logging
import PostgresNIO

/// Endpoints and attempts on PostgreSQL: SQLite's semantics, held across nodes. Every endpoint
/// change notifies `endpointsChanged` in its own transaction, so each node's deliverer reads the
/// endpoints again once the change is committed (and not at all when it rolls back); a read that
/// decides a write (`syncConfigured`, `rotateSecret`) locks the row first, so a concurrent change
/// is read, never overwritten.
extension PostgresStore: DeliveryStore {
    public func endpoints() async throws -> [Endpoint] {
        // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
        StoredEndpointRow.reportDamage(try await rows(#"SELECT * FROM endpoints ORDER BY id COLLATE "C""#).map(Self.decodeEndpoint), logger: logger)
    }

    public func endpoint(id: String) async throws -> Endpoint? {
        try await rows("SELECT * FROM endpoints WHERE id = \(id)").first.map { Self.decodeEndpoint($0).endpoint }
    }

    public func saveEndpoint(_ endpoint: Endpoint, now: Date) async throws {
        let logger = logger
        try await transaction { connection in
            try await Self.upsert(endpoint, now: now, connection, logger: logger)
            try await Self.notify(.endpointsChanged, connection, logger: logger)
        }
    }

    /// One transaction under `PostgresSchema.endpointLock`: nodes starting together apply the file
    /// one after another, so the first generates an endpoint's secret and the others find it.
    public func syncConfigured(_ endpoints: [Endpoint], overlap: Double, now: Date) async throws {
        let logger = logger
        try await transaction { connection in
            try await Self.execute("SELECT pg_advisory_xact_lock(\(PostgresSchema.endpointLock))", connection, logger: logger)
            // An endpoint taken out of the file is gone; what still waited for it is parked, and
            // sent if the endpoint comes back.
            let removed = try await Self.execute("""
                SELECT id FROM endpoints WHERE from_config AND NOT (id = ANY(\(endpoints.map(\.id)))) ORDER BY id FOR UPDATE
                """, connection, logger: logger)
            for row in removed {
                let id = try row["id"].decode(String.self)
                try await Self.pauseWaiting(endpoint: id, now: now, connection, logger: logger)
                try await Self.execute("DELETE FROM endpoints WHERE id = \(id)", connection, logger: logger)
            }
            var resumed = 0
            for var endpoint in endpoints {
                if var stored = try await Self.lockedEndpoint(id: endpoint.id, connection, logger: logger) {
                    // A damaged secret is never carried over next to the file's own.
                    if !endpoint.secrets.isEmpty { stored.secrets.removeAll { !EndpointSecret.looksValid($0.secret) } }
                    let current = stored.secrets.first { $0.expiresAt == nil }
                    if endpoint.secrets.isEmpty {
                        endpoint.secrets = stored.secrets  // generated earlier (maybe by another node): keep it
                    } else if let current, !endpoint.secrets.contains(where: { $0.secret == current.secret }) {
                        // The file's secret changed: the old one keeps signing for the overlap window.
                        endpoint.secrets.append(EndpointSecret(secret: current.secret, expiresAt: now.addingTimeInterval(overlap)))
                    }
                    endpoint.secrets += stored.secrets.filter { old in old.expiresAt.map { $0 > now } == true && !endpoint.secrets.contains { $0.secret == old.secret } }
                    // A disable decided at runtime (410, failing for days, a person) outlives the restart.
                    if !stored.enabled && stored.disabledReason != nil {
                        endpoint.enabled = false
                        endpoint.disabledReason = stored.disabledReason
                    }
                } else if endpoint.secrets.isEmpty {
                    endpoint.secrets = [EndpointSecret.generate()]
                }
                try await Self.upsert(endpoint, now: now, connection, logger: logger)
                if endpoint.enabled {
                    // Enabled again in the file: what waited goes out.
                    resumed += try await Self.resumePaused(endpoint: endpoint.id, now: now, connection, logger: logger)
                } else {
                    try await Self.pauseWaiting(endpoint: endpoint.id, now: now, connection, logger: logger)
                }
            }
            try await Self.notify(resumed > 0 ? [.endpointsChanged, .runsDue] : .endpointsChanged, connection, logger: logger)
        }
    }

    public func deleteEndpoint(id: String) async throws -> Bool {
        let logger = logger
        return try await transaction { connection in
            guard try await !Self.execute("DELETE FROM endpoints WHERE id = \(id) RETURNING id", connection, logger: logger).isEmpty else { return false }
            try await Self.notify(.endpointsChanged, connection, logger: logger)
            return true
        }
    }

    public func setEndpoint(id: String, enabled: Bool, reason: String?, now: Date) async throws -> Bool {
        let logger = logger
        let changed = try await transaction { connection in
            let updated = try await Self.execute("""
                UPDATE endpoints SET enabled = \(enabled), disabled_reason = \(enabled ? nil : reason),
                    failing_since = CASE WHEN \(enabled) THEN NULL ELSE failing_since END, updated_at = \(now.millis)
                WHERE id = \(id) RETURNING id
                """, connection, logger: logger)
            guard !updated.isEmpty else { return false }
            var wake: WakeUp = .endpointsChanged
            if enabled {
                if try await Self.resumePaused(endpoint: id, now: now, connection, logger: logger) > 0 { wake.insert(.runsDue) }
            } else {
                try await Self.pauseWaiting(endpoint: id, now: now, connection, logger: logger)
            }
            try await Self.notify(wake, connection, logger: logger)
            return true
        }
        // Its paused deliveries are due again, under the endpoint's new state.
        if changed && enabled { wakeUps.signal([.runsDue, .endpointsChanged]) }
        return changed
    }

    /// `WHERE enabled` is evaluated again on the row's newest version once a concurrent disable
    /// commits, so of several nodes disabling at once exactly one gets true.
    public func disableIfEnabled(id: String, reason: String, now: Date) async throws -> Bool {
        let logger = logger
        return try await transaction { connection in
            let updated = try await Self.execute("""
                UPDATE endpoints SET enabled = false, disabled_reason = \(reason), updated_at = \(now.millis) WHERE id = \(id) AND enabled RETURNING id
                """, connection, logger: logger)
            guard !updated.isEmpty else { return false }
            try await Self.pauseWaiting(endpoint: id, now: now, connection, logger: logger)
            try await Self.notify(.endpointsChanged, connection, logger: logger)
            return true
        }
    }

    public func rotateSecret(endpointID: String, to secret: EndpointSecret, overlap: Double, now: Date) async throws -> Endpoint? {
        let logger = logger
        return try await transaction { connection in
            guard var endpoint = try await Self.lockedEndpoint(id: endpointID, connection, logger: logger) else { return nil }
            endpoint.rotate(to: secret, overlap: overlap, now: now)
            try await Self.upsert(endpoint, now: now, connection, logger: logger)
            try await Self.notify(.endpointsChanged, connection, logger: logger)
            return endpoint
        }
    }

    public func finishAttempt(_ attempt: AttemptRecord, outcome: AttemptOutcome, lease: Lease) async throws -> AttemptWrite {
        try await queueWrite(.finishAttempt(attempt, outcome, lease: lease))
    }

    public func deferRun(runID: String, lease: Lease, until: Date) async throws -> Transition {
        try await queueWrite(.deferRun(runID: runID, lease: lease, until: until)).transition
    }

    public func pauseRun(runID: String, lease: Lease, reason: String) async throws -> Transition {
        try await queueWrite(.pauseRun(runID: runID, lease: lease, reason: reason)).transition
    }

    public func attempts(runID: String) async throws -> [AttemptRecord] {
        try await rows("SELECT * FROM attempts WHERE run_id = \(runID) ORDER BY number").map { row in
            AttemptRecord(
                runID: try row["run_id"].decode(String.self), number: try row["number"].decode(Int.self), endpoint: try row["endpoint"].decode(String.self),
                startedAt: Date(millis: try row["started_at"].decode(Int64.self)), status: try row["status"].decode(Int?.self),
                latencyMillis: try row["latency_ms"].decode(Int.self), response: try row["response"].decode(String?.self), error: try row["error"].decode(String?.self)
            )
        }
    }

    public func attemptTimes(endpoint: String, since: Date) async throws -> [Date] {
        try await rows("SELECT started_at FROM attempts WHERE endpoint = \(endpoint) AND started_at >= \(since.millis) ORDER BY started_at")
            .map { Date(millis: try $0["started_at"].decode(Int64.self)) }
    }

    public func plan(_ runs: [PlannedRun], eventID: String, now: Date) async throws -> Int {
        let logger = logger
        let created = try await transaction { connection in
            let created = try await Self.insertRuns(runs.map { (run: $0, eventID: eventID, at: now) }, connection, logger: logger)
            if created > 0 { try await Self.notify(.runsDue, connection, logger: logger) }
            return created
        }
        if created > 0 { wakeUps.signal() }
        return created
    }

    // MARK: statements inside a transaction

    /// Runs one statement on the transaction's connection and collects its rows (none for most).
    @discardableResult
    static func execute(_ query: PostgresQuery, _ connection: PostgresConnection, logger: Logger) async throws -> [PostgresRandomAccessRow] {
        var rows: [PostgresRandomAccessRow] = []
        for try await row in try await connection.query(query, logger: logger) { rows.append(row.makeRandomAccess()) }
        return rows
    }

    /// The endpoint, its row locked until the transaction ends: the caller writes it back from
    /// what it read, and a concurrent change waits instead of being overwritten.
    private static func lockedEndpoint(id: String, _ connection: PostgresConnection, logger: Logger) async throws -> Endpoint? {
        try await execute("SELECT * FROM endpoints WHERE id = \(id) FOR UPDATE", connection, logger: logger).first.map { decodeEndpoint($0).endpoint }
    }

    /// Paused deliveries of the endpoint become due now; returns how many.
    private static func resumePaused(endpoint: String, now: Date, _ connection: PostgresConnection, logger: Logger) async throws -> Int {
        try await execute("""
            WITH resumed AS (
                UPDATE runs SET status = 'pending', due_at = \(now.millis), attempt = 0, updated_at = \(now.millis)
                WHERE endpoint = \(endpoint) AND status = 'paused' RETURNING 1)
            SELECT COUNT(*) AS n FROM resumed
            """, connection, logger: logger).first.map { try $0["n"].decode(Int.self) } ?? 0
    }

    private static func pauseWaiting(endpoint: String, now: Date, _ connection: PostgresConnection, logger: Logger) async throws {
        try await execute("""
            UPDATE runs SET status = 'paused', updated_at = \(now.millis) WHERE endpoint = \(endpoint) AND status IN ('pending', 'waiting_retry')
            """, connection, logger: logger)
    }

    private static func upsert(_ endpoint: Endpoint, now: Date, _ connection: PostgresConnection, logger: Logger) async throws {
        let row = try StoredEndpointRow(encoding: endpoint)
        try await execute("""
            INSERT INTO endpoints (id, url, events, secrets, rate_limit, headers, enabled, disabled_reason, from_config, description, retry, created_at, updated_at)
            VALUES (\(row.id), \(row.url), \(row.events), \(row.secrets), \(row.rateLimit), \(row.headers), \(row.enabled), \(row.disabledReason),
                    \(row.fromConfig), \(row.description), \(row.retry), \(now.millis), \(now.millis))
            ON CONFLICT (id) DO UPDATE SET url = excluded.url, events = excluded.events, secrets = excluded.secrets,
                rate_limit = excluded.rate_limit, headers = excluded.headers, enabled = excluded.enabled,
                disabled_reason = excluded.disabled_reason, from_config = excluded.from_config,
                description = excluded.description, retry = excluded.retry, updated_at = excluded.updated_at
            """, connection, logger: logger)
    }

    /// Reads an endpoint row without trusting it (see `StoredEndpointRow.decode`): a column that is
    /// NULL or does not decode as its type reaches the check as nil.
    static func decodeEndpoint(_ row: PostgresRandomAccessRow) -> (endpoint: Endpoint, damage: [String]) {
        func text(_ column: String) -> String? { (try? row[column].decode(String?.self)) ?? nil }
        func flag(_ column: String) -> Bool? { (try? row[column].decode(Bool?.self)) ?? nil }
        return StoredEndpointRow(
            id: text("id"), url: text("url"), events: text("events"), secrets: text("secrets"), rateLimit: text("rate_limit"),
            headers: text("headers"), enabled: flag("enabled"), disabledReason: text("disabled_reason"), fromConfig: flag("from_config"),
            description: text("description"), retry: text("retry")
        ).decode()
    }
}
