import DoorbellCore
import Foundation
import GRDB

/// The run queue on SQLite. SQLite has one writer, so a claim is an UPDATE … RETURNING over the
/// due rows; on PostgreSQL the same shape becomes `FOR UPDATE SKIP LOCKED`.
extension SQLiteEventStore {
    public func claimDueRuns(owner: String, limit: Int, now: Date, leaseUntil: Date, excluding: Set<String>) async throws -> [RunRecord] {
        // With the database file gone a claim would land in the unlinked file, and its steps would
        // run again after every lease: claim nothing.
        try monitor.beforeWrite()
        let inFlight = String(decoding: try JSONEncoder().encode(excluding.sorted()), as: UTF8.self)
        return try await pool.write { db in
            try Row.fetchAll(db.cachedStatement(sql: Self.claimSQL), arguments: [
                "owner": owner, "leaseUntil": leaseUntil.millis, "now": now.millis, "limit": limit, "inFlight": inFlight,
            ])
            .map(Self.claimedRun)
            .sorted { ($0.dueAt, $0.sequence) < ($1.dueAt, $1.sequence) }
        }
    }

    /// One branch per status, each walking the (status, due_at) index in order and stopping at the
    /// limit: a large backlog of due runs is never collected and sorted just to take a few. The text
    /// is constant (named parameters; the caller's in-flight ids as one JSON list), so the statement
    /// is prepared once per connection. Each claim increments the run's `lease_token`: the fence.
    static let claimSQL: String = {
        let ordering = """
            r.id NOT IN (SELECT value FROM json_each(:inFlight))
            AND (r.concurrency_key IS NULL OR (
                -- Sequence order: nothing earlier with the same key still waits to start…
                NOT EXISTS (
                    SELECT 1 FROM runs e
                    WHERE e.automation = r.automation AND e.concurrency_key = r.concurrency_key
                      AND e.seq < r.seq AND e.status IN ('pending', 'waiting_retry'))
                -- …and fewer than `limit` with the same key are running, their lease live or not: a
                -- lapsed one is taken over through the expired branch, never overtaken by a later run.
                AND (SELECT COUNT(*) FROM runs x
                     WHERE x.automation = r.automation AND x.concurrency_key = r.concurrency_key
                       AND x.status = 'running' AND x.id != r.id) < r.concurrency_limit))
            """
        let branch = { (status: String, due: String) in
            "SELECT * FROM (SELECT r.id, \(due) AS due, r.seq FROM runs r WHERE r.status = '\(status)' AND \(due) <= :now AND \(ordering) ORDER BY \(due), r.seq LIMIT :limit)"
        }
        let candidates = [branch("pending", "r.due_at"), branch("waiting_retry", "r.due_at"), branch("running", "r.lease_until")].joined(separator: " UNION ALL ")
        return """
            UPDATE runs SET status = 'running', lease_owner = :owner, lease_token = lease_token + 1, lease_until = :leaseUntil, updated_at = :now
            WHERE id IN (SELECT id FROM (\(candidates)) ORDER BY due, seq LIMIT :limit)
            RETURNING id, event_id, automation, next_step, attempt, due_at, last_error, endpoint, lease_owner, lease_token, seq, created_at, updated_at
            """
    }()

    /// A row of `claimSQL`'s RETURNING list, read by position (keep the two in step): looking each
    /// column up by name was about a quarter of a claim's CPU, and every delivery and run is claimed.
    static func claimedRun(_ row: Row) -> RunRecord {
        RunRecord(
            id: row[0], eventID: row[1], automation: row[2], status: .running, nextStep: row[3], attempt: row[4],
            dueAt: Date(timeIntervalSince1970: Double(row[5] as Int64) / 1000), lastError: row[6], endpoint: row[7],
            lease: (row[8] as String?).map { Lease(owner: $0, token: row[9]) },
            sequence: row[10], createdAt: Date(timeIntervalSince1970: Double(row[11] as Int64) / 1000),
            updatedAt: Date(timeIntervalSince1970: Double(row[12] as Int64) / 1000)
        )
    }

    public func nextDueDate() async throws -> Date? {
        try await pool.read { db in
            // One index seek per status: a MIN over a CASE read every queued run (4 ms at 16,000).
            let millis = try Int64.fetchOne(db.cachedStatement(sql: """
                SELECT MIN(due) FROM (
                    SELECT MIN(due_at) AS due FROM runs WHERE status = 'pending'
                    UNION ALL SELECT MIN(due_at) FROM runs WHERE status = 'waiting_retry'
                    UNION ALL SELECT MIN(lease_until) FROM runs WHERE status = 'running')
                """))
            return millis.map { Date(timeIntervalSince1970: Double($0) / 1000) }
        }
    }

    public func stepOutputs(runID: String) async throws -> [String: String] {
        try await pool.read { db in
            var outputs: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT step_id, output FROM step_results WHERE run_id = ?", arguments: [runID]) {
                outputs[row["step_id"]] = row["output"]
            }
            return outputs
        }
    }

    public func completeStep(runID: String, stepID: String, position: Int, output: String, finished: Bool, lease: Lease, leaseUntil: Date) async throws -> Transition {
        try await queueWrite(.completeStep(runID: runID, stepID: stepID, position: position, output: output, finished: finished, lease: lease, leaseUntil: leaseUntil)).transition
    }

    public func failStep(runID: String, attempt: Int, error: String, dueAt: Date?, lease: Lease) async throws -> Transition {
        try await queueWrite(.failStep(runID: runID, attempt: attempt, error: error, dueAt: dueAt, lease: lease)).transition
    }

    /// One statement for every claim the worker holds; a claim taken over (another token) is not
    /// extended, and its id is missing from the answer.
    public func renewLeases(_ leases: [String: Lease], until: Date) async throws -> Set<String> {
        try monitor.beforeWrite()
        guard !leases.isEmpty else { return [] }
        let claims = String(decoding: try JSONEncoder().encode(leases.map { [$0.key, $0.value.owner, String($0.value.token)] }), as: UTF8.self)
        return try await pool.write { db in
            Set(try String.fetchAll(db.cachedStatement(sql: """
                UPDATE runs SET lease_until = :until
                WHERE status = 'running' AND id IN (SELECT value ->> 0 FROM json_each(:claims))
                  AND (id, lease_owner, lease_token) IN (SELECT value ->> 0, value ->> 1, CAST(value ->> 2 AS INTEGER) FROM json_each(:claims))
                RETURNING id
                """), arguments: ["until": until.millis, "claims": claims]))
        }
    }

    public func runs(eventID: String?, limit: Int) async throws -> [RunRecord] {
        try await pool.read { db in
            if let eventID {
                return try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE event_id = ? ORDER BY created_at, automation", arguments: [eventID]).map(Self.runRecord)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", arguments: [limit]).map(Self.runRecord)
        }
    }

    public func runs(matching query: RunQuery) async throws -> [RunRecord] {
        try await pool.read { db in
            let (clause, arguments) = Self.filter(query)
            var all = arguments
            all += [query.limit]
            return try Row.fetchAll(db, sql: "SELECT runs.* FROM runs JOIN events ON events.id = runs.event_id \(clause) ORDER BY runs.created_at DESC, runs.seq DESC LIMIT ?", arguments: all).map(Self.runRecord)
        }
    }

    public func searchFloor(matching query: RunQuery, window: Int) async throws -> RunCursor? {
        let (clause, arguments) = Self.filter(query)
        var bound = arguments
        bound += [max(0, window - 1)]
        let all = bound
        // The events join only when a filter needs it: otherwise this is a walk of the runs index alone.
        let join = query.readsEvents ? "JOIN events ON events.id = runs.event_id" : ""
        let statement = "SELECT runs.created_at, runs.seq FROM runs \(join) \(clause) ORDER BY runs.created_at DESC, runs.seq DESC LIMIT 2 OFFSET ?"
        return try await pool.read { db in
            let rows = try Row.fetchAll(db, sql: statement, arguments: all)
            guard rows.count == 2 else { return nil }
            return RunCursor(createdAtMillis: rows[0][0], sequence: rows[0][1])
        }
    }

    public func run(id: String) async throws -> RunRecord? {
        try await pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [id]).map(Self.runRecord) }
    }

    public func replay(matching query: RunQuery, fromStart: Bool, now: Date) async throws -> Int {
        var query = query
        if query.statuses.isEmpty { query.statuses = fromStart ? [.dead, .succeeded] : [.dead] }
        // Never touch a run a worker holds or one already waiting to run.
        query.statuses = query.statuses.filter { $0 == .dead || $0 == .succeeded }
        guard !query.statuses.isEmpty else { return 0 }
        let (clause, arguments) = Self.filter(query)
        var combined: StatementArguments = [now.millis, now.millis]
        combined += arguments
        let all = combined
        let restart = fromStart ? ", next_step = 0" : ""
        let count = try await pool.write { db in
            try db.execute(sql: """
                UPDATE runs SET status = 'pending', attempt = 0, last_error = NULL, due_at = ?, lease_owner = NULL,
                    lease_until = NULL, updated_at = ?\(restart)
                WHERE id IN (SELECT runs.id FROM runs JOIN events ON events.id = runs.event_id \(clause))
                """, arguments: all)
            return db.changesCount
        }
        if count > 0 { wakeUps.signal() }
        return count
    }

    public func startRun(eventID: String, automation: String, now: Date) async throws -> Bool {
        let started = try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO runs (id, event_id, automation, status, due_at, created_at, updated_at, seq)
                SELECT ?, id, ?, 'pending', ?, ?, ?, \(SQLiteSchema.nextRunSequence) FROM events WHERE id = ?
                ON CONFLICT (event_id, automation) DO NOTHING
                """, arguments: [EventID.generate(prefix: "run_", now: now), automation, now.millis, now.millis, now.millis, eventID])
            return db.changesCount > 0
        }
        if started { wakeUps.signal() }
        return started
    }

    private static func filter(_ query: RunQuery) -> (String, StatementArguments) {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        if let eventID = query.eventID { clauses.append("runs.event_id = ?"); arguments += [eventID] }
        if let automation = query.automation { clauses.append("runs.automation = ?"); arguments += [automation] }
        if let source = query.source { clauses.append("events.source = ?"); arguments += [source] }
        if let type = query.type { clauses.append("events.type = ?"); arguments += [type] }
        if !query.statuses.isEmpty {
            clauses.append("runs.status IN (\(query.statuses.map { _ in "?" }.joined(separator: ", ")))")
            for status in query.statuses { arguments += [status.rawValue] }
        }
        if let since = query.since { clauses.append("events.received_at >= ?"); arguments += [since.millis] }
        if let until = query.until { clauses.append("events.received_at < ?"); arguments += [until.millis] }
        if let endpoint = query.endpoint { clauses.append("runs.endpoint = ?"); arguments += [endpoint] }
        if let deliveries = query.deliveries { clauses.append(deliveries ? "runs.endpoint IS NOT NULL" : "runs.endpoint IS NULL") }
        if let text = query.bodyContains { clauses.append(Self.bodyContains("events.body")); arguments += [Data(text.utf8)] }
        if let after = query.after {
            clauses.append("(runs.created_at < ? OR (runs.created_at = ? AND runs.seq < ?))")
            arguments += [after.createdAtMillis, after.createdAtMillis, after.sequence]
        }
        if let floor = query.floor {
            clauses.append("(runs.created_at > ? OR (runs.created_at = ? AND runs.seq >= ?))")
            arguments += [floor.createdAtMillis, floor.createdAtMillis, floor.sequence]
        }
        return (clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND "), arguments)
    }

    static func runRecord(_ row: Row) -> RunRecord {
        RunRecord(
            id: row["id"], eventID: row["event_id"], automation: row["automation"],
            status: RunStatus(rawValue: row["status"]) ?? .pending, nextStep: row["next_step"], attempt: row["attempt"],
            dueAt: Date(timeIntervalSince1970: Double(row["due_at"] as Int64) / 1000), lastError: row["last_error"],
            endpoint: row["endpoint"],
            lease: (row["lease_owner"] as String?).map { Lease(owner: $0, token: row["lease_token"]) },
            sequence: row["seq"] ?? 0, createdAt: Date(timeIntervalSince1970: Double(row["created_at"] as Int64? ?? 0) / 1000),
            updatedAt: Date(timeIntervalSince1970: Double(row["updated_at"] as Int64? ?? 0) / 1000)
        )
    }

    public func countRuns(matching query: RunQuery) async throws -> Int {
        try await pool.read { db in
            let (clause, arguments) = Self.filter(query)
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM runs JOIN events ON events.id = runs.event_id \(clause)", arguments: arguments) ?? 0
        }
    }
}

extension Date {
    /// Milliseconds since 1970, saturating: a far date (a peer's huge Retry-After, a mistyped
    /// duration) must never trap the process in `Int64(_:)`.
    var millis: Int64 { Timestamp.saturatingMillis(self) }
}
