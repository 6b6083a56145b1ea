import DoorbellCore
import Foundation
import GRDB

/// Retention, size and backups on SQLite.
///
/// Pruning walks each table in rowid order (arrival order, so the old rows come first) in batches of
/// `batchSize`, one short write transaction per batch, and stops at the first batch with nothing old
/// in it: no index on ages is needed, so ingest pays nothing for retention. Between batches the
/// writer is handed back, so a waiting group commit waits for at most one batch.
extension SQLiteEventStore: MaintenanceStore {
    /// Runs in these states are finished: their rows may go.
    static let finishedStatuses = "('succeeded', 'dead')"

    public func prune(_ policy: RetentionPolicy, now: Date, dryRun: Bool, batchSize: Int = 500) async throws -> PruneCounts {
        let cutoffs = Cutoffs(policy, now: now)
        if dryRun { return try await pool.read { db in try Self.countPrunable(cutoffs, db) } }
        if let events = policy.events { recent.withLock { $0.forget(receivedBefore: now.addingTimeInterval(-events)) } }
        let limit = max(1, batchSize)
        var counts = PruneCounts()
        if let runs = cutoffs.runs {
            counts += try await inBatches { cursor, db in try Self.pruneRuns(after: cursor, cutoff: runs, limit: limit, db) }
        }
        if let attempts = cutoffs.attempts {
            counts += try await inBatches { cursor, db in try Self.pruneAttempts(after: cursor, cutoff: attempts, limit: limit, db) }
        }
        if let events = cutoffs.events {
            counts += try await inBatches { cursor, db in try Self.pruneEvents(after: cursor, cutoff: events, dedupeCutoff: cutoffs.dedupe, limit: limit, db) }
        }
        counts += try await inBatches { _, db in try Self.pruneDedupeKeys(cutoff: cutoffs.dedupe, limit: limit, db) }
        return counts
    }

    public func storageSize() async throws -> StorageSize {
        let (pageSize, pageCount, freePages) = try await pool.read { db in
            (try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 0, try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0, try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0)
        }
        func bytes(_ file: String) -> Int64 {
            ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? NSNumber)?.int64Value ?? 0
        }
        return StorageSize(fileBytes: bytes(path), walBytes: bytes(path + "-wal"), pageSize: pageSize, pageCount: pageCount, freePages: freePages)
    }

    /// `VACUUM INTO` from a reader: one read transaction, so the copy is a consistent snapshot, and
    /// the server's writes go on meanwhile (WAL).
    public func backup(to file: String) async throws {
        guard !FileManager.default.fileExists(atPath: file) else {
            throw StoreError.unavailable("\(file) exists; a backup never overwrites a file")
        }
        try await pool.unsafeRead { db in try db.execute(sql: "VACUUM INTO ?", arguments: [file]) }
    }

    /// Ages as stored (milliseconds since 1970); nil where the policy keeps rows forever.
    struct Cutoffs: Sendable {
        var events: Int64?
        var runs: Int64?
        var attempts: Int64?
        var dedupe: Int64

        init(_ policy: RetentionPolicy, now: Date) {
            events = policy.events.map { now.addingTimeInterval(-$0).millis }
            runs = policy.runs.map { now.addingTimeInterval(-$0).millis }
            attempts = policy.attempts.map { now.addingTimeInterval(-$0).millis }
            dedupe = now.addingTimeInterval(-policy.dedupeWindow).millis
        }
    }

    /// Runs `step` in one write transaction per batch until it returns no next cursor or the task
    /// is cancelled (shutdown). After each batch it waits as long as the batch took: the writer is
    /// handed to whatever queued meanwhile (GRDB's writer is first come, first served) and pruning
    /// takes at most half of the writer's time and a core, however large the backlog.
    private func inBatches(_ step: @escaping @Sendable (Int64, Database) throws -> (PruneCounts, Int64?)) async throws -> PruneCounts {
        var total = PruneCounts()
        var cursor: Int64 = 0
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let from = cursor
            let started = clock.now
            let (counts, next) = try await pool.write { db in try step(from, db) }
            // Nothing checkpoints on its own: a long prune on an idle server would grow the WAL.
            checkpointIfDue()
            total += counts
            guard let next else { break }
            cursor = next
            try? await Task.sleep(for: max(.milliseconds(1), clock.now - started))
        }
        return total
    }

    /// Finished runs (and deliveries) last updated before `cutoff`, with their outputs and attempts.
    static func pruneRuns(after cursor: Int64, cutoff: Int64, limit: Int, _ db: Database) throws -> (PruneCounts, Int64?) {
        let rows = try Row.fetchAll(db, sql: "SELECT rowid, id, status, created_at, updated_at FROM runs WHERE rowid > ? ORDER BY rowid LIMIT ?", arguments: [cursor, limit])
        guard let last = rows.last, rows.contains(where: { ($0["created_at"] as Int64) < cutoff }) else { return (PruneCounts(), nil) }
        let ids: [String] = rows.filter { ["succeeded", "dead"].contains($0["status"] as String) && ($0["updated_at"] as Int64) < cutoff }.map { $0["id"] }
        var counts = PruneCounts()
        try deleteRuns(ids, &counts, db)
        return (counts, last["rowid"])
    }

    /// Attempts started before `cutoff`, of deliveries that are finished.
    static func pruneAttempts(after cursor: Int64, cutoff: Int64, limit: Int, _ db: Database) throws -> (PruneCounts, Int64?) {
        let rows = try Row.fetchAll(db, sql: "SELECT rowid, started_at FROM attempts WHERE rowid > ? ORDER BY rowid LIMIT ?", arguments: [cursor, limit])
        let old: [Int64] = rows.filter { ($0["started_at"] as Int64) < cutoff }.map { $0["rowid"] }
        guard let last = rows.last, !old.isEmpty else { return (PruneCounts(), nil) }
        var counts = PruneCounts()
        try db.execute(sql: "DELETE FROM attempts WHERE rowid IN \(placeholders(old.count)) AND run_id IN (SELECT id FROM runs WHERE status IN \(finishedStatuses))", arguments: StatementArguments(old))
        counts.attempts = db.changesCount
        return (counts, last["rowid"])
    }

    /// Events received before `cutoff` with no unfinished run, with their runs, outputs and
    /// attempts. A provider id younger than the dedupe window moves to `dedupe_keys`, so a late
    /// retry of the event is still answered as a duplicate.
    static func pruneEvents(after cursor: Int64, cutoff: Int64, dedupeCutoff: Int64, limit: Int, _ db: Database) throws -> (PruneCounts, Int64?) {
        let rows = try Row.fetchAll(db, sql: "SELECT seq, received_at FROM events WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [cursor, limit])
        let old: [Int64] = rows.filter { ($0["received_at"] as Int64) < cutoff }.map { $0["seq"] }
        guard let last = rows.last, !old.isEmpty else { return (PruneCounts(), nil) }
        let ids = try String.fetchAll(db, sql: """
            SELECT id FROM events WHERE seq IN \(placeholders(old.count)) AND NOT EXISTS (
                SELECT 1 FROM runs WHERE runs.event_id = events.id AND runs.status NOT IN \(finishedStatuses))
            """, arguments: StatementArguments(old))
        var counts = PruneCounts()
        guard !ids.isEmpty else { return (counts, last["seq"]) }
        let list = placeholders(ids.count)
        let runIDs = try String.fetchAll(db, sql: "SELECT id FROM runs WHERE event_id IN \(list)", arguments: StatementArguments(ids))
        try deleteRuns(runIDs, &counts, db)
        var arguments = StatementArguments(ids)
        arguments += [dedupeCutoff]
        try db.execute(sql: """
            INSERT OR IGNORE INTO dedupe_keys (source, provider_id, event_id, received_at)
            SELECT source, provider_id, id, received_at FROM events WHERE id IN \(list) AND provider_id IS NOT NULL AND received_at >= ?
            """, arguments: arguments)
        counts.dedupeKeysKept = db.changesCount
        try db.execute(sql: "DELETE FROM events WHERE id IN \(list)", arguments: StatementArguments(ids))
        counts.events = db.changesCount
        return (counts, last["seq"])
    }

    /// Dedupe keys older than the window.
    static func pruneDedupeKeys(cutoff: Int64, limit: Int, _ db: Database) throws -> (PruneCounts, Int64?) {
        try db.execute(sql: "DELETE FROM dedupe_keys WHERE rowid IN (SELECT rowid FROM dedupe_keys WHERE received_at < ? LIMIT ?)", arguments: [cutoff, limit])
        var counts = PruneCounts()
        counts.dedupeKeysExpired = db.changesCount
        return (counts, counts.dedupeKeysExpired == limit ? 0 : nil)
    }

    private static func deleteRuns(_ ids: [String], _ counts: inout PruneCounts, _ db: Database) throws {
        guard !ids.isEmpty else { return }
        let list = placeholders(ids.count)
        let arguments = StatementArguments(ids)
        try db.execute(sql: "DELETE FROM attempts WHERE run_id IN \(list)", arguments: arguments)
        counts.attempts += db.changesCount
        try db.execute(sql: "DELETE FROM step_results WHERE run_id IN \(list)", arguments: arguments)
        counts.stepOutputs += db.changesCount
        try db.execute(sql: "DELETE FROM runs WHERE id IN \(list)", arguments: arguments)
        counts.runs += db.changesCount
    }

    /// What a prune would delete now, from one snapshot (the same rules as the batches above).
    static func countPrunable(_ cutoffs: Cutoffs, _ db: Database) throws -> PruneCounts {
        let never = Int64.min
        let row = try Row.fetchOne(db, sql: """
            WITH e AS (SELECT id, provider_id, received_at FROM events WHERE received_at < :events AND NOT EXISTS (
                         SELECT 1 FROM runs WHERE runs.event_id = events.id AND runs.status NOT IN \(finishedStatuses))),
                 r AS (SELECT id FROM runs WHERE event_id IN (SELECT id FROM e) OR (status IN \(finishedStatuses) AND updated_at < :runs))
            SELECT (SELECT COUNT(*) FROM e) AS events, (SELECT COUNT(*) FROM r) AS runs,
                   (SELECT COUNT(*) FROM step_results WHERE run_id IN (SELECT id FROM r)) AS outputs,
                   (SELECT COUNT(*) FROM attempts WHERE run_id IN (SELECT id FROM r) OR (started_at < :attempts
                        AND run_id IN (SELECT id FROM runs WHERE status IN \(finishedStatuses)))) AS attempts,
                   (SELECT COUNT(*) FROM e WHERE provider_id IS NOT NULL AND received_at >= :dedupe) AS kept,
                   (SELECT COUNT(*) FROM dedupe_keys WHERE received_at < :dedupe) AS expired
            """, arguments: ["events": cutoffs.events ?? never, "runs": cutoffs.runs ?? never, "attempts": cutoffs.attempts ?? never, "dedupe": cutoffs.dedupe])
        var counts = PruneCounts()
        guard let row else { return counts }
        counts.events = row["events"]
        counts.runs = row["runs"]
        counts.stepOutputs = row["outputs"]
        counts.attempts = row["attempts"]
        counts.dedupeKeysKept = row["kept"]
        counts.dedupeKeysExpired = row["expired"]
        return counts
    }

    private static func placeholders(_ count: Int) -> String {
        "(" + Array(repeating: "?", count: count).joined(separator: ", ") + ")"
    }
}

extension PruneCounts {
    static func += (left: inout PruneCounts, right: PruneCounts) {
        left.events += right.events
        left.runs += right.runs
        left.stepOutputs += right.stepOutputs
        left.attempts += right.attempts
        left.dedupeKeysKept += right.dedupeKeysKept
        left.dedupeKeysExpired += right.dedupeKeysExpired
    }
}
