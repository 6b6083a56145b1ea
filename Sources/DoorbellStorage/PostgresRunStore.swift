import DoorbellCore
import Foundation
import Logging
import PostgresNIO

/// The run queue on PostgreSQL, shared by every node.
///
/// A claim is one transaction: it takes a transaction-scoped advisory lock (`claimLock`), so claims
/// from all nodes see each other's results and a concurrency key never has more than its limit
/// running, then picks due rows with `FOR UPDATE SKIP LOCKED` (a row a transition is writing is
/// passed over, not waited for), ordered by due time and sequence, and leases them with a new
/// fencing token. The lock is held for that one statement per batch; everything else — steps,
/// attempts, renewals — runs without it, fenced by the token.
extension PostgresStore {
    public func claimDueRuns(owner: String, limit: Int, now: Date, leaseUntil: Date, excluding: Set<String>) async throws -> [RunRecord] {
        var binds = PostgresBindings()
        binds.append(now.millis)  // $1
        binds.append(Int64(limit))  // $2
        binds.append(owner)  // $3
        binds.append(leaseUntil.millis)  // $4
        binds.append(excluding.sorted())  // $5: the caller's in-flight runs
        let claim = PostgresQuery(unsafeSQL: Self.claimSQL, binds: binds)
        let logger = logger
        let claimed = try await transaction { connection in
            try await connection.drain("SELECT pg_advisory_xact_lock(\(PostgresSchema.claimLock))", logger: logger)
            var rows: [PostgresRandomAccessRow] = []
            for try await row in try await connection.query(claim, logger: logger) { rows.append(row.makeRandomAccess()) }
            return rows
        }
        return try claimed
            .map { (record: try Self.runRecord($0), due: try $0["claim_due"].decode(Int64.self), seq: try $0["seq"].decode(Int64.self)) }
            .sorted { ($0.due, $0.seq) < ($1.due, $1.seq) }
            .map(\.record)
    }

    /// One branch per status, each walking its index in order and stopping at the limit, as on
    /// SQLite. Parameters: $1 now, $2 limit, $3 owner, $4 lease until, $5 the caller's in-flight ids.
    static let claimSQL: String = {
        // Claimable: not in the caller's hands already, and for a run with a concurrency key,
        // nothing earlier of its key still waiting and fewer than its limit running — a lapsed lease
        // included: that run is taken over through the expired branch, never overtaken.
        let claimable = """
            NOT (r.id = ANY($5::text[]))
            AND (r.concurrency_key IS NULL OR (
                NOT EXISTS (
                    SELECT 1 FROM runs e
                    WHERE e.automation = r.automation AND e.concurrency_key = r.concurrency_key
                      AND e.seq < r.seq AND e.status IN ('pending', 'waiting_retry'))
                AND (SELECT COUNT(*) FROM runs x
                     WHERE x.automation = r.automation AND x.concurrency_key = r.concurrency_key
                       AND x.status = 'running' AND x.id <> r.id) < r.concurrency_limit))
            """
        let branch = { (name: String, status: String, due: String) in
            """
            \(name) AS (
                SELECT r.id, \(due) AS due, r.seq FROM runs r
                WHERE r.status = '\(status)' AND \(due) <= $1 AND \(claimable)
                ORDER BY \(due), r.seq LIMIT $2 FOR UPDATE SKIP LOCKED)
            """
        }
        return """
            WITH \(branch("pending", "pending", "r.due_at")),
            \(branch("retrying", "waiting_retry", "r.due_at")),
            \(branch("expired", "running", "r.lease_until")),
            picked AS (
                SELECT id, due, seq FROM (SELECT * FROM pending UNION ALL SELECT * FROM retrying UNION ALL SELECT * FROM expired) c
                ORDER BY due, seq LIMIT $2)
            UPDATE runs SET status = 'running', lease_owner = $3, lease_token = runs.lease_token + 1, lease_until = $4, updated_at = $1
            FROM picked WHERE runs.id = picked.id
            RETURNING runs.*, picked.due AS claim_due
            """
    }()

    public func nextDueDate() async throws -> Date? {
        try await rows("""
            SELECT LEAST((SELECT MIN(due_at) FROM runs WHERE status IN ('pending', 'waiting_retry')),
                         (SELECT MIN(lease_until) FROM runs WHERE status = 'running')) AS due
            """).first.flatMap { try $0["due"].decode(Int64?.self) }.map(Date.init(millis:))
    }

    public func stepOutputs(runID: String) async throws -> [String: String] {
        var outputs: [String: String] = [:]
        for row in try await rows("SELECT step_id, output FROM step_results WHERE run_id = \(runID)") {
            outputs[try row["step_id"].decode(String.self)] = try row["output"].decode(String.self)
        }
        return outputs
    }

    public func completeStep(runID: String, stepID: String, position: Int, output: String, finished: Bool, lease: Lease, leaseUntil: Date) async throws -> Transition {
        try await queueWrite(.completeStep(runID: runID, stepID: stepID, position: position, output: output, finished: finished, lease: lease, leaseUntil: leaseUntil)).transition
    }

    public func failStep(runID: String, attempt: Int, error: String, dueAt: Date?, lease: Lease) async throws -> Transition {
        try await queueWrite(.failStep(runID: runID, attempt: attempt, error: error, dueAt: dueAt, lease: lease)).transition
    }

    public func renewLeases(_ leases: [String: Lease], until: Date) async throws -> Set<String> {
        guard !leases.isEmpty else { return [] }
        let claims = Array(leases)
        let renewed = try await rows("""
            UPDATE runs SET lease_until = \(until.millis)
            FROM unnest(\(claims.map(\.key)), \(claims.map(\.value.owner)), \(claims.map(\.value.token))) AS c(id, owner, token)
            WHERE runs.id = c.id AND runs.lease_owner = c.owner AND runs.lease_token = c.token AND runs.status = 'running'
            RETURNING runs.id
            """)
        return Set(try renewed.map { try $0["id"].decode(String.self) })
    }

    public func runs(eventID: String?, limit: Int) async throws -> [RunRecord] {
        if let eventID {
            return try await rows(#"SELECT * FROM runs WHERE event_id = \#(eventID) ORDER BY created_at, automation COLLATE "C""#).map(Self.runRecord)
        }
        return try await rows("SELECT * FROM runs ORDER BY created_at DESC, seq DESC LIMIT \(Int64(limit))").map(Self.runRecord)
    }

    public func runs(matching query: RunQuery) async throws -> [RunRecord] {
        var binds = PostgresBindings()
        let clause = Self.filter(query, &binds)
        binds.append(Int64(query.limit))
        return try await rows(PostgresQuery(unsafeSQL: "SELECT runs.* FROM runs JOIN events ON events.id = runs.event_id \(clause) ORDER BY runs.created_at DESC, runs.seq DESC LIMIT $\(binds.count)", binds: binds)).map(Self.runRecord)
    }

    public func searchFloor(matching query: RunQuery, window: Int) async throws -> RunCursor? {
        var binds = PostgresBindings()
        let clause = Self.filter(query, &binds)
        binds.append(Int64(max(0, window - 1)))
        // The events join only when a filter needs it: otherwise this is a walk of the runs index alone.
        let join = query.readsEvents ? "JOIN events ON events.id = runs.event_id" : ""
        let found = try await rows(PostgresQuery(unsafeSQL: "SELECT runs.created_at, runs.seq FROM runs \(join) \(clause) ORDER BY runs.created_at DESC, runs.seq DESC LIMIT 2 OFFSET $\(binds.count)", binds: binds))
        guard found.count == 2 else { return nil }
        return RunCursor(createdAtMillis: try found[0]["created_at"].decode(Int64.self), sequence: try found[0]["seq"].decode(Int64.self))
    }

    public func run(id: String) async throws -> RunRecord? {
        try await rows("SELECT * FROM runs WHERE id = \(id)").first.map(Self.runRecord)
    }

    public func replay(matching query: RunQuery, fromStart: Bool, now: Date) async throws -> Int {
        var query = query
        if query.statuses.isEmpty { query.statuses = fromStart ? [.dead, .succeeded] : [.dead] }
        // Never touch a run a worker holds or one already waiting to run. The outer status check
        // matters: under READ COMMITTED a row a concurrent replay or claim changed is re-checked
        // against the UPDATE's own WHERE, not against the subquery's snapshot.
        query.statuses = query.statuses.filter { $0 == .dead || $0 == .succeeded }
        guard !query.statuses.isEmpty else { return 0 }
        var binds = PostgresBindings()
        binds.append(now.millis)
        let clause = Self.filter(query, &binds)
        let restart = fromStart ? ", next_step = 0" : ""
        let sql = """
            UPDATE runs SET status = 'pending', attempt = 0, last_error = NULL, due_at = $1, lease_owner = NULL,
                lease_until = NULL, updated_at = $1\(restart)
            WHERE id IN (SELECT runs.id FROM runs JOIN events ON events.id = runs.event_id \(clause))
                AND status IN ('dead', 'succeeded')
            RETURNING id
            """
        let logger = logger
        let replay = PostgresQuery(unsafeSQL: sql, binds: binds)
        let count = try await transaction { connection in
            var count = 0
            for try await _ in try await connection.query(replay, logger: logger) { count += 1 }
            if count > 0 { try await Self.notify(.runsDue, connection, logger: logger) }
            return count
        }
        if count > 0 { wakeUps.signal() }
        return count
    }

    public func startRun(eventID: String, automation: String, now: Date) async throws -> Bool {
        let logger = logger
        let id = EventID.generate(prefix: "run_", now: now)
        let started = try await transaction { connection in
            var created = false
            for try await _ in try await connection.query("""
                INSERT INTO runs (id, event_id, automation, status, due_at, created_at, updated_at)
                SELECT \(id), id, \(automation), 'pending', \(now.millis), \(now.millis), \(now.millis) FROM events WHERE id = \(eventID)
                ON CONFLICT (event_id, automation) DO NOTHING
                RETURNING id
                """, logger: logger) { created = true }
            if created { try await Self.notify(.runsDue, connection, logger: logger) }
            return created
        }
        if started { wakeUps.signal() }
        return started
    }

    /// Applies one fenced transition in its own transaction (see `QueueWrite`): the run moves only
    /// where it is still `running` under the named claim, and its rows (step output, attempt,
    /// endpoint streak) are written only then. A write that makes a run due again notifies.
    func queueWrite(_ write: QueueWrite) async throws -> AttemptWrite {
        let logger = logger
        let at = now().millis
        let result = try await transaction { connection in
            let result = try await Self.apply(write, connection, now: at, logger: logger)
            if result.transition == .applied && write.schedulesRun { try await Self.notify(.runsDue, connection, logger: logger) }
            return result
        }
        if result.transition == .applied && write.schedulesRun { wakeUps.signal() }
        return result
    }

    private static func apply(_ write: QueueWrite, _ connection: PostgresConnection, now: Int64, logger: Logger) async throws -> AttemptWrite {
        /// Runs an UPDATE … RETURNING id; true when it matched the run under its claim.
        func moved(_ query: PostgresQuery) async throws -> Bool {
            var matched = false
            for try await _ in try await connection.query(query, logger: logger) { matched = true }
            return matched
        }
        func answered(_ applied: Bool) -> AttemptWrite { AttemptWrite(transition: applied ? .applied : .leaseLost, failingSince: nil) }
        switch write {
        case .completeStep(let runID, let stepID, let position, let output, let finished, let lease, let leaseUntil):
            let status = (finished ? RunStatus.succeeded : .running).rawValue
            guard try await moved("""
                UPDATE runs SET next_step = \(Int64(position + 1)), attempt = 0, last_error = NULL, status = \(status), lease_until = \(leaseUntil.millis), updated_at = \(now)
                WHERE id = \(runID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token) AND status = 'running' RETURNING id
                """) else { return answered(false) }
            try await connection.query("""
                INSERT INTO step_results (run_id, step_id, position, output, completed_at) VALUES (\(runID), \(stepID), \(Int64(position)), \(output.postgresText), \(now))
                ON CONFLICT (run_id, step_id) DO UPDATE SET output = excluded.output, completed_at = excluded.completed_at
                """, logger: logger)
            return answered(true)
        case .failStep(let runID, let attempt, let error, let dueAt, let lease):
            let status = (dueAt == nil ? RunStatus.dead : .waitingRetry).rawValue
            return answered(try await moved("""
                UPDATE runs SET attempt = \(Int64(attempt)), last_error = \(String(error.prefix(2000)).postgresText), status = \(status), due_at = COALESCE(\(dueAt?.millis), due_at),
                    lease_owner = NULL, lease_until = NULL, updated_at = \(now)
                WHERE id = \(runID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token) AND status = 'running' RETURNING id
                """))
        case .deferRun(let runID, let lease, let until):
            return answered(try await moved("""
                UPDATE runs SET status = 'waiting_retry', due_at = \(until.millis), lease_owner = NULL, lease_until = NULL, updated_at = \(now)
                WHERE id = \(runID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token) AND status = 'running' RETURNING id
                """))
        case .pauseRun(let runID, let lease, let reason):
            return answered(try await moved("""
                UPDATE runs SET status = 'paused', last_error = \(reason.postgresText), lease_owner = NULL, lease_until = NULL, updated_at = \(now)
                WHERE id = \(runID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token) AND status = 'running' RETURNING id
                """))
        case .finishAttempt(let attempt, let outcome, let lease):
            let error = attempt.error.map { String($0.prefix(2000)).postgresText }
            let (status, failures, dueAt): (RunStatus, Int64?, Int64?) = switch outcome {
            case .delivered: (.succeeded, nil, nil)
            case .retry(let at, let failures): (.waitingRetry, Int64(failures), at.millis)
            case .dead(let failures): (.dead, Int64(failures), nil)
            case .paused: (.paused, nil, nil)
            }
            let nextStep: Int64? = outcome == .delivered ? 1 : nil
            // Taken over: the attempt is not recorded and the endpoint's streak is not touched.
            guard try await moved("""
                UPDATE runs SET status = \(status.rawValue), next_step = COALESCE(\(nextStep), next_step),
                    attempt = COALESCE(\(failures), attempt), last_error = \(outcome == .delivered ? nil : error), due_at = COALESCE(\(dueAt), due_at),
                    lease_owner = NULL, lease_until = NULL, updated_at = \(now)
                WHERE id = \(attempt.runID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token) AND status = 'running' RETURNING id
                """) else { return answered(false) }
            try await connection.query("""
                INSERT INTO attempts (run_id, number, endpoint, started_at, status, latency_ms, response, error)
                VALUES (\(attempt.runID), (SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE run_id = \(attempt.runID)), \(attempt.endpoint),
                        \(attempt.startedAt.millis), \(attempt.status.map(Int64.init)), \(Int64(attempt.latencyMillis)), \(attempt.response.map { String($0.prefix(1024)).postgresText }), \(error))
                """, logger: logger)
            if outcome == .delivered {
                try await connection.query("UPDATE endpoints SET failing_since = NULL WHERE id = \(attempt.endpoint) AND failing_since IS NOT NULL", logger: logger)
                return AttemptWrite(transition: .applied, failingSince: nil)
            }
            var since: Int64?
            for try await value in try await connection.query("""
                UPDATE endpoints SET failing_since = COALESCE(failing_since, \(attempt.startedAt.millis)) WHERE id = \(attempt.endpoint) RETURNING failing_since
                """, logger: logger).decode(Int64?.self) { since = value }
            return AttemptWrite(transition: .applied, failingSince: since.map(Date.init(millis:)))
        }
    }

    static func filter(_ query: RunQuery, _ binds: inout PostgresBindings) -> String {
        var clauses: [String] = []
        // Text as stored: a NUL was written as U+FFFD (PostgreSQL text cannot hold it), so a filter matches it the same way.
        func bind(_ value: String) -> String { binds.append(value.postgresText); return "$\(binds.count)" }
        func bind(_ value: Int64) -> String { binds.append(value); return "$\(binds.count)" }
        if let eventID = query.eventID { clauses.append("runs.event_id = \(bind(eventID))") }
        if let automation = query.automation { clauses.append("runs.automation = \(bind(automation))") }
        if let source = query.source { clauses.append("events.source = \(bind(source))") }
        if let type = query.type { clauses.append("events.type = \(bind(type))") }
        if !query.statuses.isEmpty {
            clauses.append("runs.status IN (\(query.statuses.map { bind($0.rawValue) }.joined(separator: ", ")))")
        }
        if let since = query.since { clauses.append("events.received_at >= \(bind(since.millis))") }
        if let until = query.until { clauses.append("events.received_at < \(bind(until.millis))") }
        if let endpoint = query.endpoint { clauses.append("runs.endpoint = \(bind(endpoint))") }
        if let deliveries = query.deliveries { clauses.append(deliveries ? "runs.endpoint IS NOT NULL" : "runs.endpoint IS NULL") }
        if let text = query.bodyContains { clauses.append(bodyContains("events.body", text, &binds)) }
        if let after = query.after {
            let created = bind(after.createdAtMillis)
            clauses.append("(runs.created_at < \(created) OR (runs.created_at = \(created) AND runs.seq < \(bind(after.sequence))))")
        }
        if let floor = query.floor {
            let created = bind(floor.createdAtMillis)
            clauses.append("(runs.created_at > \(created) OR (runs.created_at = \(created) AND runs.seq >= \(bind(floor.sequence))))")
        }
        return clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
    }

    static func runRecord(_ row: PostgresRandomAccessRow) throws -> RunRecord {
        RunRecord(
            id: try row["id"].decode(String.self), eventID: try row["event_id"].decode(String.self), automation: try row["automation"].decode(String.self),
            status: RunStatus(rawValue: try row["status"].decode(String.self)) ?? .pending, nextStep: try row["next_step"].decode(Int.self),
            attempt: try row["attempt"].decode(Int.self), dueAt: Date(millis: try row["due_at"].decode(Int64.self)), lastError: try row["last_error"].decode(String?.self),
            endpoint: try row["endpoint"].decode(String?.self),
            lease: try row["lease_owner"].decode(String?.self).map { Lease(owner: $0, token: try row["lease_token"].decode(Int64.self)) },
            sequence: try row["seq"].decode(Int64.self), createdAt: Date(millis: try row["created_at"].decode(Int64.self)),
            updatedAt: Date(millis: try row["updated_at"].decode(Int64.self))
        )
    }

    public func countRuns(matching query: RunQuery) async throws -> Int {
        var binds = PostgresBindings()
        let clause = Self.filter(query, &binds)
        return try await rows(PostgresQuery(unsafeSQL: "SELECT COUNT(*) AS n FROM runs JOIN events ON events.id = runs.event_id \(clause)", binds: binds)).first.map { try $0["n"].decode(Int.self) } ?? 0
    }
}
