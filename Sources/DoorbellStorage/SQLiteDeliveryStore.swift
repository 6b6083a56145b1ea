import DoorbellCore
import Foundation
import GRDB
import Logging

/// Endpoints and attempts on SQLite.
extension SQLiteEventStore: DeliveryStore {
    public func endpoints() async throws -> [Endpoint] {
        reportDamage(try await pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM endpoints ORDER BY id").map(Self.decodeEndpoint) })
    }

    public func endpoint(id: String) async throws -> Endpoint? {
        try await pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM endpoints WHERE id = ?", arguments: [id]).map(Self.endpoint) }
    }

    public func saveEndpoint(_ endpoint: Endpoint, now: Date) async throws {
        try await pool.write { db in try Self.upsert(endpoint, now: now, db) }
    }

    public func syncConfigured(_ endpoints: [Endpoint], overlap: Double, now: Date) async throws {
        try await pool.write { db in
            // An endpoint taken out of the file is gone; what still waited for it is parked, and
            // sent if the endpoint comes back.
            let declared = Set(endpoints.map(\.id))
            for id in try String.fetchAll(db, sql: "SELECT id FROM endpoints WHERE from_config = 1") where !declared.contains(id) {
                try Self.pauseWaiting(endpoint: id, now: now, db)
                try db.execute(sql: "DELETE FROM endpoints WHERE id = ?", arguments: [id])
            }
            for var endpoint in endpoints {
                let stored = try Row.fetchOne(db, sql: "SELECT * FROM endpoints WHERE id = ?", arguments: [endpoint.id]).map(Self.endpoint)
                if var stored {
                    // A damaged secret is never carried over next to the file's own.
                    if !endpoint.secrets.isEmpty { stored.secrets.removeAll { !EndpointSecret.looksValid($0.secret) } }
                    let current = stored.secrets.first { $0.expiresAt == nil }
                    if endpoint.secrets.isEmpty {
                        endpoint.secrets = stored.secrets  // generated earlier: keep it
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
                try Self.upsert(endpoint, now: now, db)
                if endpoint.enabled {
                    // Enabled again in the file: what waited goes out.
                    try Self.resumePaused(endpoint: endpoint.id, now: now, db)
                } else {
                    try Self.pauseWaiting(endpoint: endpoint.id, now: now, db)
                }
            }
        }
    }

    public func deleteEndpoint(id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM endpoints WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }

    public func setEndpoint(id: String, enabled: Bool, reason: String?, now: Date) async throws -> Bool {
        let changed = try await pool.write { db in
            try db.execute(sql: """
                UPDATE endpoints SET enabled = ?, disabled_reason = ?, failing_since = CASE WHEN ? THEN NULL ELSE failing_since END, updated_at = ?
                WHERE id = ?
                """, arguments: [enabled, enabled ? nil : reason, enabled, now.millis, id])
            guard db.changesCount > 0 else { return false }
            if enabled {
                try Self.resumePaused(endpoint: id, now: now, db)
            } else {
                try Self.pauseWaiting(endpoint: id, now: now, db)
            }
            return true
        }
        // Its paused deliveries are due again, under the endpoint's new state.
        if changed && enabled { wakeUps.signal([.runsDue, .endpointsChanged]) }
        return changed
    }

    public func disableIfEnabled(id: String, reason: String, now: Date) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "UPDATE endpoints SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ? AND enabled = 1", arguments: [reason, now.millis, id])
            guard db.changesCount > 0 else { return false }
            try Self.pauseWaiting(endpoint: id, now: now, db)
            return true
        }
    }

    public func rotateSecret(endpointID: String, to secret: EndpointSecret, overlap: Double, now: Date) async throws -> Endpoint? {
        try await pool.write { db in
            guard var endpoint = try Row.fetchOne(db, sql: "SELECT * FROM endpoints WHERE id = ?", arguments: [endpointID]).map(Self.endpoint) else { return nil }
            endpoint.rotate(to: secret, overlap: overlap, now: now)
            try Self.upsert(endpoint, now: now, db)
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
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM attempts WHERE run_id = ? ORDER BY number", arguments: [runID]).map { row in
                AttemptRecord(
                    runID: row["run_id"], number: row["number"], endpoint: row["endpoint"], startedAt: Date(timeIntervalSince1970: Double(row["started_at"] as Int64) / 1000),
                    status: row["status"], latencyMillis: row["latency_ms"], response: row["response"], error: row["error"]
                )
            }
        }
    }

    public func attemptTimes(endpoint: String, since: Date) async throws -> [Date] {
        try await pool.read { db in
            try Int64.fetchAll(db, sql: "SELECT started_at FROM attempts WHERE endpoint = ? AND started_at >= ? ORDER BY started_at", arguments: [endpoint, since.millis])
                .map { Date(timeIntervalSince1970: Double($0) / 1000) }
        }
    }

    public func plan(_ runs: [PlannedRun], eventID: String, now: Date) async throws -> Int {
        let created = try await pool.write { db in
            try runs.filter { try Self.insertRun($0, eventID: eventID, at: now, db) }.count
        }
        if created > 0 { wakeUps.signal() }
        return created
    }

    private static func resumePaused(endpoint: String, now: Date, _ db: Database) throws {
        try db.execute(sql: """
            UPDATE runs SET status = 'pending', due_at = ?, attempt = 0, updated_at = ? WHERE endpoint = ? AND status = 'paused'
            """, arguments: [now.millis, now.millis, endpoint])
    }

    private static func pauseWaiting(endpoint: String, now: Date, _ db: Database) throws {
        try db.execute(sql: """
            UPDATE runs SET status = 'paused', updated_at = ? WHERE endpoint = ? AND status IN ('pending', 'waiting_retry')
            """, arguments: [now.millis, endpoint])
    }

    private static func upsert(_ endpoint: Endpoint, now: Date, _ db: Database) throws {
        let row = try StoredEndpointRow(encoding: endpoint)
        try db.execute(sql: """
            INSERT INTO endpoints (id, url, events, secrets, rate_limit, headers, enabled, disabled_reason, from_config, description, retry, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET url = excluded.url, events = excluded.events, secrets = excluded.secrets,
                rate_limit = excluded.rate_limit, headers = excluded.headers, enabled = excluded.enabled,
                disabled_reason = excluded.disabled_reason, from_config = excluded.from_config,
                description = excluded.description, retry = excluded.retry, updated_at = excluded.updated_at
            """, arguments: [
                row.id, row.url, row.events, row.secrets, row.rateLimit, row.headers, row.enabled, row.disabledReason,
                row.fromConfig, row.description, row.retry, now.millis, now.millis,
            ])
    }

    static func endpoint(_ row: Row) -> Endpoint {
        decodeEndpoint(row).endpoint
    }

    /// Reads an endpoint row without trusting it (see `StoredEndpointRow.decode`): a column that is
    /// NULL or not of its type reaches the check as nil.
    static func decodeEndpoint(_ row: Row) -> (endpoint: Endpoint, damage: [String]) {
        func text(_ column: String) -> String? { String.fromDatabaseValue(row[column] as DatabaseValue) }
        func flag(_ column: String) -> Bool? { Bool.fromDatabaseValue(row[column] as DatabaseValue) }
        return StoredEndpointRow(
            id: text("id"), url: text("url"), events: text("events"), secrets: text("secrets"), rateLimit: text("rate_limit"),
            headers: text("headers"), enabled: flag("enabled"), disabledReason: text("disabled_reason"), fromConfig: flag("from_config"),
            description: text("description"), retry: text("retry")
        ).decode()
    }

    /// Endpoints read for delivery; a damaged row is logged at error once per process and damage.
    func reportDamage(_ decoded: [(endpoint: Endpoint, damage: [String])]) -> [Endpoint] {
        StoredEndpointRow.reportDamage(decoded, logger: logger)
    }
}
