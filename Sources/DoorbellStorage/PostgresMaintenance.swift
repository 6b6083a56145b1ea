import DoorbellCore
import Foundation
import Logging
import PostgresNIO

/// Retention and size on PostgreSQL; backups are PostgreSQL's own (`pg_dump`).
///
/// Pruning follows SQLite's rules and batches: runs and events are walked in `seq` order (arrival,
/// so the old rows come first) `batchSize` at a time, one short transaction per batch, stopping at
/// the first batch with nothing old in it. Other nodes keep writing meanwhile, so each batch locks
/// what it deletes and deletes it only if it still qualifies: a run replayed, or given a new run
/// by `startRun`, while the prune looks at it is kept.
extension PostgresStore: MaintenanceStore {
    public func prune(_ policy: RetentionPolicy, now: Date, dryRun: Bool, batchSize: Int = 500) async throws -> PruneCounts {
        let cutoffs = SQLiteEventStore.Cutoffs(policy, now: now)
        if dryRun { return try await countPrunable(cutoffs) }
        // A pruned event must not be served from this node's cache of recent ones.
        if let events = policy.events { recent.withLock { $0.forget(receivedBefore: now.addingTimeInterval(-events)) } }
        let limit = Int64(max(1, batchSize))
        var counts = PruneCounts()
        if let runs = cutoffs.runs {
            counts += try await inBatches(from: Int64(0)) { cursor, connection, logger in
                try await Self.pruneRuns(after: cursor, cutoff: runs, limit: limit, connection, logger: logger)
            }
        }
        if let attempts = cutoffs.attempts {
            counts += try await inBatches(from: AttemptCursor.start) { cursor, connection, logger in
                try await Self.pruneAttempts(after: cursor, cutoff: attempts, limit: limit, connection, logger: logger)
            }
        }
        if let events = cutoffs.events {
            counts += try await inBatches(from: Int64(0)) { cursor, connection, logger in
                try await Self.pruneEvents(after: cursor, cutoff: events, dedupeCutoff: cutoffs.dedupe, limit: limit, connection, logger: logger)
            }
        }
        counts += try await inBatches(from: Int64(0)) { _, connection, logger in
            try await Self.pruneDedupeKeys(cutoff: cutoffs.dedupe, limit: limit, connection, logger: logger)
        }
        return counts
    }

    /// The database's size as PostgreSQL reports it (`pg_database_size`: every table, index and
    /// TOAST file of this database). PostgreSQL has no single file, WAL of its own or free-page
    /// count to report: `walBytes` and `freePages` are 0, and the pages are the bytes over
    /// PostgreSQL's default block size (8 KiB).
    public func storageSize() async throws -> StorageSize {
        let bytes = try await rows("SELECT pg_database_size(current_database()) AS bytes").first.map { try $0["bytes"].decode(Int64.self) } ?? 0
        let pageSize = 8192
        return StorageSize(fileBytes: bytes, walBytes: 0, pageSize: pageSize, pageCount: Int(bytes / Int64(pageSize)), freePages: 0)
    }

    /// PostgreSQL is backed up by its own tools, which copy a consistent snapshot while the nodes
    /// keep writing; doorbell does not reimplement them.
    public func backup(to file: String) async throws {
        throw StoreError.unavailable("""
            \(settings.safeDescription) is backed up with pg_dump, not by doorbell: \
            pg_dump --format=custom --file=\(file) --host=\(settings.host) --port=\(settings.port) --username=USER \(settings.database) \
            (the password from PGPASSWORD or ~/.pgpass); restore with pg_restore
            """)
    }

    /// Where the attempts walk is: attempts have no arrival number, so they are walked by start
    /// time (their index), ties broken by the primary key.
    struct AttemptCursor: Sendable {
        var startedAt: Int64
        var runID: String
        var number: Int64

        static let start = AttemptCursor(startedAt: .min, runID: "", number: .min)
    }

    /// Runs `step` in one transaction per batch until it returns no next cursor or the task is
    /// cancelled (shutdown). Unlike SQLite's single writer, nothing waits for a batch but the rows
    /// it locks, so batches follow one another without a pause.
    private func inBatches<Cursor: Sendable>(
        from start: Cursor, _ step: @escaping @Sendable (Cursor, PostgresConnection, Logger) async throws -> (PruneCounts, Cursor?)
    ) async throws -> PruneCounts {
        var total = PruneCounts()
        var cursor = start
        let logger = logger
        while !Task.isCancelled {
            let from = cursor
            let (counts, next) = try await transaction { connection in try await step(from, connection, logger) }
            total += counts
            guard let next else { break }
            cursor = next
        }
        return total
    }

    /// Finished runs (and deliveries) last updated before `cutoff`, with their outputs and attempts.
    static func pruneRuns(after cursor: Int64, cutoff: Int64, limit: Int64, _ connection: PostgresConnection, logger: Logger) async throws -> (PruneCounts, Int64?) {
        let batch = try await execute("SELECT seq, created_at FROM runs WHERE seq > \(cursor) ORDER BY seq LIMIT \(limit)", connection, logger: logger)
        guard let last = batch.last, try batch.contains(where: { try $0["created_at"].decode(Int64.self) < cutoff }) else { return (PruneCounts(), nil) }
        let first = try batch[0]["seq"].decode(Int64.self)
        let end = try last["seq"].decode(Int64.self)
        // Locked and checked again: a run replayed meanwhile is no longer finished and stays.
        let ids = try await execute("""
            SELECT id FROM runs WHERE seq BETWEEN \(first) AND \(end) AND status IN \(unescaped: finishedStatuses) AND updated_at < \(cutoff) FOR UPDATE
            """, connection, logger: logger).map { try $0["id"].decode(String.self) }
        var counts = PruneCounts()
        try await deleteRuns(ids, &counts, connection, logger: logger)
        return (counts, end)
    }

    /// Attempts started before `cutoff`, of deliveries that are finished.
    static func pruneAttempts(after cursor: AttemptCursor, cutoff: Int64, limit: Int64, _ connection: PostgresConnection, logger: Logger) async throws -> (PruneCounts, AttemptCursor?) {
        let batch = try await execute("""
            SELECT run_id, number, started_at FROM attempts
            WHERE started_at < \(cutoff) AND (started_at, run_id, number) > (\(cursor.startedAt), \(cursor.runID), \(cursor.number))
            ORDER BY started_at, run_id, number LIMIT \(limit)
            """, connection, logger: logger)
        guard let last = batch.last else { return (PruneCounts(), nil) }
        let keys = try batch.map { (runID: try $0["run_id"].decode(String.self), number: try $0["number"].decode(Int64.self)) }
        var counts = PruneCounts()
        counts.attempts = try await execute("""
            WITH gone AS (
                DELETE FROM attempts a USING unnest(\(keys.map(\.runID)), \(keys.map(\.number))) AS k(run_id, number), runs r
                WHERE a.run_id = k.run_id AND a.number = k.number AND r.id = a.run_id AND r.status IN \(unescaped: finishedStatuses)
                RETURNING 1)
            SELECT COUNT(*) AS n FROM gone
            """, connection, logger: logger).first.map { try $0["n"].decode(Int.self) } ?? 0
        let next = AttemptCursor(startedAt: try last["started_at"].decode(Int64.self), runID: keys[keys.count - 1].runID, number: keys[keys.count - 1].number)
        return (counts, next)
    }

    /// Events received before `cutoff` with no unfinished run, with their runs, outputs and
    /// attempts. A provider id younger than the dedupe window moves to `dedupe_keys`, so a late
    /// retry of the event is still answered as a duplicate.
    static func pruneEvents(after cursor: Int64, cutoff: Int64, dedupeCutoff: Int64, limit: Int64, _ connection: PostgresConnection, logger: Logger) async throws -> (PruneCounts, Int64?) {
        let batch = try await execute("SELECT seq, received_at FROM events WHERE seq > \(cursor) ORDER BY seq LIMIT \(limit)", connection, logger: logger)
        let old = try batch.filter { try $0["received_at"].decode(Int64.self) < cutoff }.map { try $0["seq"].decode(Int64.self) }
        guard let last = batch.last, !old.isEmpty else { return (PruneCounts(), nil) }
        let end = try last["seq"].decode(Int64.self)
        // The events' rows locked: no run can be added to them (its foreign key waits) until commit.
        let ids = try await execute("""
            SELECT id FROM events WHERE seq = ANY(\(old)) AND NOT EXISTS (
                SELECT 1 FROM runs WHERE runs.event_id = events.id AND runs.status NOT IN \(unescaped: finishedStatuses))
            ORDER BY seq FOR UPDATE
            """, connection, logger: logger).map { try $0["id"].decode(String.self) }
        var counts = PruneCounts()
        guard !ids.isEmpty else { return (counts, end) }
        let runIDs = try await execute("""
            SELECT id FROM runs WHERE event_id = ANY(\(ids)) AND status IN \(unescaped: finishedStatuses) FOR UPDATE
            """, connection, logger: logger).map { try $0["id"].decode(String.self) }
        try await deleteRuns(runIDs, &counts, connection, logger: logger)
        // An event one of whose runs was replayed meanwhile keeps that run, and so stays.
        let row = try await execute("""
            WITH gone AS (
                DELETE FROM events WHERE id = ANY(\(ids)) AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.event_id = events.id)
                RETURNING id, source, provider_id, received_at),
            kept AS (
                INSERT INTO dedupe_keys (source, provider_id, event_id, received_at)
                SELECT source, provider_id, id, received_at FROM gone WHERE provider_id IS NOT NULL AND received_at >= \(dedupeCutoff)
                ON CONFLICT DO NOTHING
                RETURNING 1)
            SELECT (SELECT COUNT(*) FROM gone) AS events, (SELECT COUNT(*) FROM kept) AS kept
            """, connection, logger: logger).first
        counts.events = try row?["events"].decode(Int.self) ?? 0
        counts.dedupeKeysKept = try row?["kept"].decode(Int.self) ?? 0
        return (counts, end)
    }

    /// Dedupe keys older than the window.
    static func pruneDedupeKeys(cutoff: Int64, limit: Int64, _ connection: PostgresConnection, logger: Logger) async throws -> (PruneCounts, Int64?) {
        var counts = PruneCounts()
        counts.dedupeKeysExpired = try await execute("""
            WITH gone AS (
                DELETE FROM dedupe_keys WHERE (source, provider_id) IN (
                    SELECT source, provider_id FROM dedupe_keys WHERE received_at < \(cutoff) LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING 1)
            SELECT COUNT(*) AS n FROM gone
            """, connection, logger: logger).first.map { try $0["n"].decode(Int.self) } ?? 0
        return (counts, Int64(counts.dedupeKeysExpired) == limit ? 0 : nil)
    }

    /// Deletes runs the caller has locked, with their attempts and step outputs (children first:
    /// the foreign keys).
    private static func deleteRuns(_ ids: [String], _ counts: inout PruneCounts, _ connection: PostgresConnection, logger: Logger) async throws {
        guard !ids.isEmpty else { return }
        let row = try await execute("""
            WITH attempts_gone AS (DELETE FROM attempts WHERE run_id = ANY(\(ids)) RETURNING 1),
                 outputs_gone AS (DELETE FROM step_results WHERE run_id = ANY(\(ids)) RETURNING 1)
            SELECT (SELECT COUNT(*) FROM attempts_gone) AS attempts, (SELECT COUNT(*) FROM outputs_gone) AS outputs
            """, connection, logger: logger).first
        counts.attempts += try row?["attempts"].decode(Int.self) ?? 0
        counts.stepOutputs += try row?["outputs"].decode(Int.self) ?? 0
        counts.runs += try await execute("""
            WITH gone AS (DELETE FROM runs WHERE id = ANY(\(ids)) RETURNING 1) SELECT COUNT(*) AS n FROM gone
            """, connection, logger: logger).first.map { try $0["n"].decode(Int.self) } ?? 0
    }

    /// What a prune would delete now, from one statement's snapshot (the same rules as the batches).
    private func countPrunable(_ cutoffs: SQLiteEventStore.Cutoffs) async throws -> PruneCounts {
        let never = Int64.min
        let events = cutoffs.events ?? never, runs = cutoffs.runs ?? never, attempts = cutoffs.attempts ?? never
        let row = try await rows("""
            WITH e AS (SELECT id, provider_id, received_at FROM events WHERE received_at < \(events) AND NOT EXISTS (
                         SELECT 1 FROM runs WHERE runs.event_id = events.id AND runs.status NOT IN \(unescaped: Self.finishedStatuses))),
                 r AS (SELECT id FROM runs WHERE event_id IN (SELECT id FROM e) OR (status IN \(unescaped: Self.finishedStatuses) AND updated_at < \(runs)))
            SELECT (SELECT COUNT(*) FROM e) AS events, (SELECT COUNT(*) FROM r) AS runs,
                   (SELECT COUNT(*) FROM step_results WHERE run_id IN (SELECT id FROM r)) AS outputs,
                   (SELECT COUNT(*) FROM attempts WHERE run_id IN (SELECT id FROM r) OR (started_at < \(attempts)
                        AND run_id IN (SELECT id FROM runs WHERE status IN \(unescaped: Self.finishedStatuses)))) AS attempts,
                   (SELECT COUNT(*) FROM e WHERE provider_id IS NOT NULL AND received_at >= \(cutoffs.dedupe)) AS kept,
                   (SELECT COUNT(*) FROM dedupe_keys WHERE received_at < \(cutoffs.dedupe)) AS expired
            """).first
        var counts = PruneCounts()
        guard let row else { return counts }
        counts.events = try row["events"].decode(Int.self)
        counts.runs = try row["runs"].decode(Int.self)
        counts.stepOutputs = try row["outputs"].decode(Int.self)
        counts.attempts = try row["attempts"].decode(Int.self)
        counts.dedupeKeysKept = try row["kept"].decode(Int.self)
        counts.dedupeKeysExpired = try row["expired"].decode(Int.self)
        return counts
    }

    /// Runs in these states are finished: their rows may go.
    static let finishedStatuses = "('succeeded', 'dead')"
}
