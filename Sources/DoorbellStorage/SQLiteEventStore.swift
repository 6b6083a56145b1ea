import DoorbellCore
import Foundation
import GRDB
import Logging
import ServiceLifecycle
import Synchronization

/// The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so a commit is on
/// disk when it returns. Ingests and the worker's transitions are group-committed together: SQLite
/// has one writer, so one batcher feeding it means one fsync for everything that is waiting. A batch
/// that fails is tried again with a savepoint per item, so one bad item fails alone and the rest
/// commit. The server's store watches its file (`DatabaseFileWatch`) and acknowledges nothing once
/// the file was deleted, replaced, truncated or overwritten in place.
///
/// Nothing checkpoints on its own (`wal_autocheckpoint = 0`, in the server and in the commands that
/// write beside it): the server checkpoints itself, at most every `checkpointInterval`, started by
/// a group commit (or a prune batch) and run beside later commits (`CheckpointPacing`), and then
/// takes the main file's new header as its own. So any other change of that header means someone
/// else wrote the file.
public final class SQLiteEventStore: EventStore, RunStore {
    let pool: DatabasePool
    /// The database file.
    let path: String
    let access: StoreAccess
    private let writes: GroupCommit<StoreWrite, StoreWriteResult>
    /// Events stored recently by this process with runs, so the worker does not read back what it was just given.
    let recent = Mutex(RecentEvents())
    let monitor: StoreMonitor
    let logger: Logger
    /// The clock for everything the store stamps or paces (tests pass their own).
    let now: @Sendable () -> Date
    /// The copies of a lost file under way; `close()` waits for them.
    private let rescues: RescueTasks
    /// Batches retried with a savepoint per item (observable for tests and logs).
    let savepointRetries: SavepointRetryLog
    /// When `/readyz` last tried a probe write, and how many it tried.
    private let probes = Mutex(Probes())
    /// When the server last checkpointed.
    private let checkpoints: CheckpointPacing
    /// In-process: only this process's writes signal it; other processes' (the CLI) reach the
    /// worker through its fallback poll.
    public let wakeUps = WakeUpChannel()

    /// `/readyz` tries at most one probe write per this many seconds: it is unauthenticated, and each
    /// probe is a commit (an fsync).
    static let probeInterval: TimeInterval = 1
    /// Bytes the readiness probe writes: room for an event, not just for one small row. On a full
    /// disk the WAL's unused tail can still take a few pages, so a one-row probe passed while every
    /// real event was refused, and `/readyz` said ready to a node answering 503.
    static let probeRoom = 64 << 10
    /// The server checkpoints the WAL into the database file at most this often, so each copies
    /// little. (When checkpoints still held the writer, 2 s of full ingest gave p99 108 ms, 100 ms 11 ms.)
    static let checkpointInterval: TimeInterval = 0.1

    /// Opens the database at `path`. `.server` and `.readWrite` create it if needed and bring its
    /// schema up to date; `.readOnly` (list, show, check, backup) never writes or migrates. Each
    /// refuses a database whose schema is newer than this build, and read-only also one that is
    /// older, with a message that says which.
    public init(path: String, logger: Logger = Logger(label: "doorbell.storage"), access: StoreAccess = .server, now: @escaping @Sendable () -> Date = { Date() }) throws {
        try Self.refuseEmptiedDatabase(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "doorbell"
        switch access {
        case .server, .readWrite:
            configuration.prepareDatabase { db in
                // For every connection (the checkpointer's included); the pool's writer is set again
                // after GRDB's WAL set-up, which resets it (see below).
                try db.execute(sql: "PRAGMA synchronous = FULL")
                // The WAL never shrinks while we run (whatever the build's default), so the file
                // watch can read a smaller WAL as truncation by someone else.
                try db.execute(sql: "PRAGMA journal_size_limit = -1")
                // Only the server checkpoints, at known moments (`checkpointIfDue`): a checkpoint
                // rewrites the main file's header, which the server's watch compares.
                try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
            }
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        case .readOnly:
            configuration.readonly = true
            guard FileManager.default.fileExists(atPath: path) else {
                throw StoreError.unavailable("no database at \(path) yet (doorbell serve creates it)")
            }
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        do {
            // GRDB puts a pool's writer in WAL mode *after* `prepareDatabase`, and sets it to
            // `synchronous = NORMAL` there: commits would not be fsynced, and a power loss could take
            // events already answered 2xx. Set again on the writer, where it counts.
            if access != .readOnly { try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") } }
            let schema = try pool.read { db in try SQLiteSchema.Version.read(db) }
            if let problem = schema.problem(access: access, path: path) { throw StoreError.incompatibleSchema(problem) }
            if access != .readOnly { try SQLiteSchema.migrator.migrate(pool) }
            // Nothing checkpoints on its own: fold the migrations' WAL into the file now, before the
            // file watch takes the header as ours (and before a small disk fills with it).
            // Best effort: on a full disk the server still opens (and answers 503 until there is room).
            if access == .server { try? pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) } }
        } catch {
            try? pool.close()
            throw error
        }
        self.pool = pool
        self.path = path
        self.access = access
        self.logger = logger
        self.now = now
        let rescues = RescueTasks()
        self.rescues = rescues
        let monitor = StoreMonitor(watch: access == .server ? DatabaseFileWatch(path: path, companions: [path + "-wal"]) : nil, logger: logger) { [pool, logger] loss in
            guard loss.rescuable else { return }
            rescues.start { await SQLiteEventStore.rescue(pool, path: path, at: now(), logger: logger) }
        }
        self.monitor = monitor
        let checkpoints: CheckpointPacing
        do {
            checkpoints = try CheckpointPacing(enabled: access == .server, path: path, configuration: configuration, now: now)
        } catch {
            try? pool.close()
            throw error
        }
        self.checkpoints = checkpoints
        let savepointRetries = SavepointRetryLog()
        self.savepointRetries = savepointRetries
        self.writes = GroupCommit { items in
            // Never commit into a file that is no longer the one at the path: nobody would find it.
            try monitor.beforeWrite()
            let results: [Result<StoreWriteResult, any Error>]
            let at = now()
            do {
                do {
                    // Usually nothing fails: one plain transaction, no savepoint statements.
                    results = try await pool.write { db in try SQLiteEventStore.applyBatch(items, db, savepoints: false, now: at) }
                } catch {
                    // Something did (and all of it was rolled back): again with a savepoint per item,
                    // so a bad item fails alone and the others commit.
                    savepointRetries.record(batch: items.count)
                    results = try await pool.write { db in try SQLiteEventStore.applyBatch(items, db, savepoints: true, now: at) }
                }
            } catch {
                monitor.writeFailed(String(describing: error))
                throw StoreError.unavailable(String(describing: error), summary: StoreMonitor.writeFailedSummary)
            }
            // Deleted during the commit: what it wrote is in an unlinked inode, not stored; no 2xx.
            try monitor.afterCommit()
            checkpoints.startIfDue(pool, monitor: monitor, logger: logger)
            return results
        }
    }

    public func ingest(_ event: NewEvent) async throws -> IngestOutcome {
        guard case .ingested(let outcome, let sequence) = try await write(.ingest(event)) else { preconditionFailure("an ingest answers with its outcome") }
        // Kept only for this process's worker, which reads an event only for its runs: an event
        // without any is not kept (the cache's dictionary and evictions were ~3 % of ingest CPU).
        if let sequence, !event.automations.isEmpty {
            var stored = event
            stored.automations = []
            recent.withLock { $0.add(StoredEvent(sequence: sequence, event: stored)) }
        }
        if !outcome.duplicate && !event.automations.isEmpty { wakeUps.signal() }
        return outcome
    }

    func queueWrite(_ write: QueueWrite) async throws -> AttemptWrite {
        guard case .queued(let result) = try await self.write(.queue(write)) else { preconditionFailure("a queue write answers with its result") }
        if result.transition == .applied && write.schedulesRun { wakeUps.signal() }
        return result
    }

    /// Runs while the server runs (the first service of its group, so stopped last): on graceful
    /// shutdown — after the HTTP server and the worker have finished — it closes the store.
    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
        logger.info("store closed")
    }

    private func write(_ item: StoreWrite) async throws -> StoreWriteResult {
        do {
            return try await writes.submit(item)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.unavailable(String(describing: error))
        }
    }

    /// Applies a batch in the caller's transaction. With `savepoints`, each item runs inside its own
    /// savepoint: an item that fails on its own (a constraint) is rolled back alone and answered
    /// with `StoreError.rejected`. When SQLite has rolled back the whole transaction (disk full, I/O
    /// error) the batch fails. Without, the first error fails the batch.
    static func applyBatch(_ items: [StoreWrite], _ db: Database, savepoints: Bool, now: Date) throws -> [Result<StoreWriteResult, any Error>] {
        guard savepoints else { return try items.map { .success(try apply(item: $0, db, now: now)) } }
        var results: [Result<StoreWriteResult, any Error>] = []
        results.reserveCapacity(items.count)
        for item in items {
            var result: StoreWriteResult?
            do {
                try db.inSavepoint {
                    result = try apply(item: item, db, now: now)
                    return .commit
                }
                results.append(.success(result!))
            } catch {
                // A disk or file fault (read-only, full, I/O) fails the batch and marks the store
                // unready, even where SQLite kept the transaction open.
                guard db.isInsideTransaction, Self.isItemFault(error) else { throw error }
                // The store works (the rest of the batch commits): this one write was refused.
                results.append(.failure(StoreError.rejected(String(describing: error))))
            }
        }
        return results
    }

    /// Whether `error` is this item's own (a constraint, a value too big or of the wrong type) rather
    /// than the database's.
    static func isItemFault(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return true }
        return error.resultCode == .SQLITE_CONSTRAINT || error.resultCode == .SQLITE_TOOBIG || error.resultCode == .SQLITE_MISMATCH
    }

    private static func apply(item: StoreWrite, _ db: Database, now: Date) throws -> StoreWriteResult {
        switch item {
        case .ingest(let event):
            let (outcome, sequence) = try insert([event], db)[0]
            return .ingested(outcome, sequence: sequence)
        case .queue(let write):
            return .queued(try apply(write, db, now: now))
        }
    }

    /// Inserts a batch in the caller's transaction; a provider id seen before yields the earlier event.
    /// Each outcome comes with the new row's sequence number (nil for a duplicate).
    static func insert(_ events: [NewEvent], _ db: Database) throws -> [(IngestOutcome, Int64?)] {
        // A key whose event retention already pruned still dedupes for `retention.dedupe_window`:
        // checked inside the insert (one statement for a new event, no extra lookup on the hot path).
        let insert = try db.cachedStatement(sql: """
            INSERT INTO events (id, source, type, provider_id, received_at, headers, body, depth)
            SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
            WHERE ?4 IS NULL OR NOT EXISTS (SELECT 1 FROM dedupe_keys WHERE source = ?2 AND provider_id = ?4)
            ON CONFLICT (source, provider_id) DO NOTHING
            """)
        let findDuplicate = try db.cachedStatement(sql: """
            SELECT id FROM events WHERE source = ?1 AND provider_id = ?2
            UNION ALL SELECT event_id FROM dedupe_keys WHERE source = ?1 AND provider_id = ?2
            LIMIT 1
            """)
        var outcomes: [(IngestOutcome, Int64?)] = []
        outcomes.reserveCapacity(events.count)
        for event in events {
            try insert.execute(arguments: [
                event.id, event.source, event.type, event.providerID,
                event.receivedAt.millis,
                HeaderCoding.encode(event.headers), Data(event.body), event.depth,
            ])
            if db.changesCount == 0, let providerID = event.providerID,
                let earlier = try String.fetchOne(findDuplicate, arguments: [event.source, providerID])
            {
                outcomes.append((IngestOutcome(id: earlier, duplicate: true), nil))
            } else {
                let sequence = db.lastInsertedRowID
                // The event's runs commit with it: an acknowledged event never lacks its runs.
                for run in event.automations {
                    try insertRun(run, eventID: event.id, at: event.receivedAt, db)
                }
                outcomes.append((IngestOutcome(id: event.id, duplicate: false), sequence))
            }
        }
        return outcomes
    }

    /// Creates a planned run (or delivery) of an event; an existing one of the same automation or
    /// endpoint is left alone. Returns whether a run was created.
    @discardableResult
    static func insertRun(_ run: PlannedRun, eventID: String, at time: Date, _ db: Database) throws -> Bool {
        try db.cachedStatement(sql: """
            INSERT INTO runs (id, event_id, automation, status, due_at, created_at, updated_at, concurrency_key, concurrency_limit, endpoint, seq)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \(SQLiteSchema.nextRunSequence))
            ON CONFLICT (event_id, automation) DO NOTHING
            """).execute(arguments: [
                EventID.generate(prefix: run.endpoint == nil ? "run_" : "dlv_", now: time), eventID, run.automation,
                run.paused ? RunStatus.paused.rawValue : RunStatus.pending.rawValue, time.millis, time.millis, time.millis,
                run.concurrencyKey, run.concurrencyLimit, run.endpoint,
            ])
        return db.changesCount > 0
    }

    public var commitObserver: CommitObserver? { writes.observer }

    public func event(id: String) async throws -> StoredEvent? {
        if let event = recent.withLock({ $0.events[id] }) { return event }
        return try await pool.read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM events WHERE id = ?"), arguments: [id]).map(Self.storedEvent)
        }
    }

    public func events(ids: [String]) async throws -> [String: StoredEvent] {
        var found: [String: StoredEvent] = [:]
        recent.withLock { recent in
            for id in ids { if let event = recent.events[id] { found[id] = event } }
        }
        let missing = ids.filter { found[$0] == nil }
        guard !missing.isEmpty else { return found }
        let list = String(decoding: try JSONEncoder().encode(missing), as: UTF8.self)
        let rows = try await pool.read { db in
            try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM events WHERE id IN (SELECT value FROM json_each(?))"), arguments: [list]).map(Self.storedEvent)
        }
        for stored in rows { found[stored.event.id] = stored }
        return found
    }

    public func events(matching query: EventQuery) async throws -> [StoredEvent] {
        let limit = Self.fewRunsLimit
        return try await pool.read { db in
            let (whereClause, arguments) = Self.filter(query, fewRuns: try Self.fewRuns(db, query, limit: limit))
            var all = arguments
            all += [query.limit]
            return try Row.fetchAll(db, sql: "SELECT * FROM events \(whereClause) ORDER BY seq DESC LIMIT ?", arguments: all)
                .map(Self.storedEvent)
        }
    }

    public func searchFloor(matching query: EventQuery, window: Int) async throws -> EventPosition? {
        let limit = Self.fewRunsLimit
        return try await pool.read { db in
            let (whereClause, arguments) = Self.filter(query, fewRuns: try Self.fewRuns(db, query, limit: limit))
            var all = arguments
            all += [max(0, window - 1)]
            // Two rows: the floor, and proof that an older one exists (else the window holds them all).
            let rows = try Row.fetchAll(db, sql: "SELECT seq, received_at FROM events \(whereClause) ORDER BY seq DESC LIMIT 2 OFFSET ?", arguments: all)
            guard rows.count == 2 else { return nil }
            return EventPosition(sequence: rows[0]["seq"], receivedAt: Date(millis: rows[0]["received_at"]))
        }
    }

    public func countEvents(matching query: EventQuery) async throws -> Int {
        let limit = Self.fewRunsLimit
        return try await pool.read { db in
            let (whereClause, arguments) = Self.filter(query, fewRuns: try Self.fewRuns(db, query, limit: limit))
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events \(whereClause)", arguments: arguments) ?? 0
        }
    }

    /// Ready when the database file is still the one opened and the last write committed. After a
    /// failed write this tries a write of its own (with room for an event: `probeRoom`), so an idle
    /// server becomes ready again as soon as the disk takes writes (no restart, no waiting for traffic).
    /// The probe is tried at most once per `probeInterval` (anyone may call `/readyz`, and each probe
    /// is a commit); in between, the last failure stands. The error's `summary` says which of the
    /// two it is, in a few words; its `reason` (paths, SQLite's message) is for the log.
    public func checkReady() async throws {
        switch monitor.readiness() {
        case .ready:
            break
        case .fileLost(let reason):
            throw StoreError.unavailable(reason, summary: StoreMonitor.fileLostSummary)
        case .lastWriteFailed(let reason):
            let at = now()
            let due = probes.withLock { $0.start(at: at, interval: Self.probeInterval) }
            guard due else { throw StoreError.unavailable(reason, summary: StoreMonitor.writeFailedSummary) }
            do {
                try await probeWrite(at: at)
            } catch let error as StoreError where error.kind == .unavailable {
                throw error
            } catch {
                throw StoreError.unavailable(reason, summary: StoreMonitor.writeFailedSummary)
            }
        }
        do {
            try await pool.read { db in try db.execute(sql: "SELECT 1 FROM events LIMIT 1") }
        } catch {
            throw StoreError.unavailable(String(describing: error), summary: "database unreadable")
        }
    }

    /// The readiness probe: a transaction of its own, never in a group commit, where a probe that
    /// does not fit (on a disk with room for small events only) would fail the events beside it.
    private func probeWrite(at: Date) async throws {
        try monitor.beforeWrite()
        let failures = monitor.failures
        do {
            try await pool.write { db in
                try db.cachedStatement(sql: "INSERT OR REPLACE INTO store_probe (id, written_at, room) VALUES (1, ?, zeroblob(?))")
                    .execute(arguments: [at.millis, Self.probeRoom])
            }
        } catch {
            monitor.writeFailed(String(describing: error))
            throw StoreError.unavailable(String(describing: error), summary: StoreMonitor.writeFailedSummary)
        }
        try monitor.afterCommit(failuresBefore: failures)
    }

    /// How many probe writes `/readyz` has tried.
    var probeCount: Int { probes.withLock { $0.count } }

    /// Starts a checkpoint when one is due (server only); for writers outside the group commit (pruning).
    func checkpointIfDue() {
        checkpoints.startIfDue(pool, monitor: monitor, logger: logger)
    }

    /// Waits for the background checkpoint under way, if any (tests that look at the main file).
    func checkpointSettled() async {
        await checkpoints.settled()
    }

    /// Finishes queued commits; the server then checkpoints the WAL into the database file and
    /// truncates it, so after a clean shutdown the `.db` file alone is a complete copy. (A command
    /// next to a running server leaves the WAL alone: truncating it under the server would look like
    /// a truncated file to its watch.)
    public func close() async throws {
        await writes.close()
        // The last checkpoint may be what finds the file lost, and start its rescue.
        await checkpoints.finish()
        // A copy of a lost file still being written needs the connection: finish it first (no
        // `.partial` file left behind, no close failing under it).
        await rescues.finish()
        if access == .server, monitor.fileIntact {
            do {
                try await pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
            } catch {
                logger.warning("WAL checkpoint at shutdown failed; the -wal file must be kept with the database", metadata: ["error": "\(error)"])
            }
        }
        try pool.close()
        monitor.stop()
    }

    /// After the database file was deleted or replaced, the open connection still reads the old
    /// one: copy it (`VACUUM INTO`, a consistent snapshot of everything committed, so every event
    /// ever acknowledged) to `<path>.rescued-<milliseconds>` beside it, for the operator to put back.
    static func rescue(_ pool: DatabasePool, path: String, at time: Date, logger: Logger) async {
        let target = "\(path).rescued-\(time.millis)"
        do {
            try await pool.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [target + ".partial"]) }
            try FileManager.default.moveItem(atPath: target + ".partial", toPath: target)
            logger.critical("copied everything the lost database held to \(target): stop doorbell, put that file at \(path) and start doorbell again")
        } catch {
            logger.critical("could not copy the lost database to \(target): \(error)")
        }
    }

    /// Up to this many runs in the statuses filtered on, the status filter starts from those runs.
    /// (Task-local so a test can lower it and exercise both forms on a small database.)
    @TaskLocal static var fewRunsLimit = 10_000

    /// Whether at most `fewRunsLimit` runs are in the query's statuses (a walk of the status index
    /// that stops there); false without a status filter.
    private static func fewRuns(_ db: Database, _ query: EventQuery, limit fewRunsLimit: Int) throws -> Bool {
        guard !query.statuses.isEmpty else { return false }
        var arguments = StatementArguments(query.statuses.map(\.rawValue))
        arguments += [fewRunsLimit + 1]
        let marks = query.statuses.map { _ in "?" }.joined(separator: ", ")
        let found = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE status IN (\(marks)) LIMIT ?)", arguments: arguments) ?? 0
        return found <= fewRunsLimit
    }

    /// `fewRuns`: the status filter starts from the runs in those statuses (few: pending, running,
    /// usually dead; about 10 ms per 1,000 of them at a million events), else it walks events newest first probing each one's runs (many: succeeded).
    /// Either way the answer is the same; only the cost differs (a status no run is in walked every
    /// event the second way: seconds at a million).
    private static func filter(_ query: EventQuery, fewRuns: Bool) -> (String, StatementArguments) {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        if let source = query.source {
            clauses.append("source = ?")
            arguments += [source]
        }
        if let type = query.type {
            clauses.append("type = ?")
            arguments += [type]
        }
        if !query.statuses.isEmpty {
            let marks = query.statuses.map { _ in "?" }.joined(separator: ", ")
            clauses.append(fewRuns
                ? "seq IN (SELECT e.seq FROM runs JOIN events e ON e.id = runs.event_id WHERE runs.status IN (\(marks)))"
                : "EXISTS (SELECT 1 FROM runs WHERE runs.event_id = events.id AND runs.status IN (\(marks)))")
            for status in query.statuses { arguments += [status.rawValue] }
        }
        if let since = query.since { clauses.append("received_at >= ?"); arguments += [since.millis] }
        if let until = query.until { clauses.append("received_at < ?"); arguments += [until.millis] }
        if let text = query.bodyContains { clauses.append(Self.bodyContains("body")); arguments += [Data(text.utf8)] }
        if let before = query.beforeSequence {
            clauses.append("seq < ?")
            arguments += [before]
        }
        if let floor = query.floorSequence {
            clauses.append("seq >= ?")
            arguments += [floor]
        }
        return (clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND "), arguments)
    }

    /// `column` (a BLOB) contains the bound bytes: `instr` over two BLOBs compares bytes, so the text
    /// searched for is never a pattern (no `LIKE` wildcards to escape) and may hold any byte.
    static func bodyContains(_ column: String) -> String { "instr(\(column), ?) > 0" }

    private static func storedEvent(_ row: Row) -> StoredEvent {
        let millis: Int64 = row["received_at"]
        let body: Data = row["body"] ?? Data()
        return StoredEvent(
            sequence: row["seq"],
            event: NewEvent(
                id: row["id"], source: row["source"], type: row["type"], providerID: row["provider_id"],
                receivedAt: Date(timeIntervalSince1970: Double(millis) / 1000),
                headers: HeaderCoding.decode(row["headers"] ?? ""), body: [UInt8](body), depth: row["depth"] ?? 0
            )
        )
    }
}

/// The copies of a lost database file under way. Once `finish` has begun none starts: the
/// connection they read from is about to close.
final class RescueTasks: Sendable {
    private struct State {
        var tasks: [Task<Void, Never>] = []
        var finished = false
    }

    private let state = Mutex(State())

    func start(_ operation: @escaping @Sendable () async -> Void) {
        state.withLock { state in
            guard !state.finished else { return }
            state.tasks.append(Task { await operation() })
        }
    }

    /// Refuses new copies and waits for those under way.
    func finish() async {
        let tasks = state.withLock { state in
            state.finished = true
            return state.tasks
        }
        for task in tasks { await task.value }
    }
}

/// Batches that failed and were written again with a savepoint per item.
struct SavepointRetries: Sendable, Equatable {
    private(set) var batches = 0
    /// The most items one such batch held.
    private(set) var largestBatch = 0

    mutating func record(batch size: Int) {
        batches += 1
        largestBatch = max(largestBatch, size)
    }
}

final class SavepointRetryLog: Sendable {
    private let retries = Mutex(SavepointRetries())
    func record(batch size: Int) { retries.withLock { $0.record(batch: size) } }
    var value: SavepointRetries { retries.withLock { $0 } }
}

/// `/readyz`'s probe writes after a failed write: at most one per interval.
struct Probes: Sendable, Equatable {
    private(set) var last: Date?
    private(set) var count = 0

    /// True (and counted) when a probe may be tried at `time`. A clock that went backwards allows one.
    mutating func start(at time: Date, interval: TimeInterval) -> Bool {
        if let last, time >= last, time.timeIntervalSince(last) < interval { return false }
        last = time
        count += 1
        return true
    }
}

/// The server's own WAL checkpoints, at most one per `SQLiteEventStore.checkpointInterval`, off the
/// commit path: a commit only starts one (`startIfDue`) and answers at once. Each runs on a
/// connection of its own (`checkpointer`), so a PASSIVE checkpoint copies the WAL into the main file
/// while the writer keeps committing: inside the writer, its copy and the main file's fsync held up
/// every ingest queued behind it (p99 47 ms at full ingest, release, `scripts/bench ingest`).
///
/// A checkpoint that runs beside writes can never reach the WAL's end under steady load, and the WAL
/// restarts from its beginning only after a checkpoint that did: so when the WAL has grown past
/// `walRestartSize`, the rest (what arrived during the background copy, a fraction of it) is copied
/// inside the writer, and the next commit starts the WAL over. Only one checkpoint runs at a time;
/// each is followed by taking the main file's header as ours.
final class CheckpointPacing: Sendable {
    private let enabled: Bool
    private let now: @Sendable () -> Date
    private let last: Mutex<Date>
    /// The checkpoint under way, if any (at most one), and whether new ones may start.
    private let state = Mutex<(running: Task<Void, Never>?, closed: Bool)>((nil, false))
    /// A connection that only checkpoints (the server's; nil for commands, which never checkpoint).
    private let checkpointer: DatabaseQueue?
    /// Past this many bytes of frames the WAL is started over (see the type's comment). The file
    /// itself never shrinks (`journal_size_limit = -1`): the WAL's frame count is what is compared.
    static let walRestartSize = 32 << 20

    init(enabled: Bool, path: String, configuration: Configuration, now: @escaping @Sendable () -> Date) throws {
        self.enabled = enabled
        self.now = now
        last = Mutex(now())
        checkpointer = enabled ? try DatabaseQueue(path: path, configuration: configuration) : nil
    }

    /// Starts a checkpoint when one is due and none is running; never waits for it.
    func startIfDue(_ pool: DatabasePool, monitor: StoreMonitor, logger: Logger) {
        guard enabled, let checkpointer else { return }
        let at = now()
        state.withLock { state in
            guard !state.closed, state.running == nil else { return }
            let due = last.withLock { last in
                guard at < last || at.timeIntervalSince(last) >= SQLiteEventStore.checkpointInterval else { return false }
                last = at
                return true
            }
            guard due else { return }
            state.running = Task {
                await Self.checkpoint(checkpointer, pool, monitor: monitor, logger: logger)
                self.state.withLock { $0.running = nil }
            }
        }
    }

    /// Waits for the checkpoint under way, if any (tests, and `finish`).
    func settled() async {
        await state.withLock { $0.running }?.value
    }

    /// No checkpoint starts any more, and the one under way has ended; the connection is closed.
    func finish() async {
        let running = state.withLock { state in
            state.closed = true
            return state.running
        }
        await running?.value
        try? checkpointer?.close()
    }

    private static func checkpoint(_ checkpointer: DatabaseQueue, _ pool: DatabasePool, monitor: StoreMonitor, logger: Logger) async {
        do {
            let walBytes = try await checkpointer.writeWithoutTransaction { db -> Int in
                let frames = try passive(db, monitor: monitor)
                return frames * ((try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096) + 24)
            }
            guard walBytes >= walRestartSize else { return }
            _ = try await pool.writeWithoutTransaction { db in try passive(db, monitor: monitor) }
        } catch {
            logger.warning("WAL checkpoint failed; the next one tries again", metadata: ["error": "\(error)"])
        }
    }

    /// One PASSIVE checkpoint on `db`'s connection, bracketed for the file watch (never into a file
    /// that is no longer ours). Returns the WAL's frames (0 when none was made).
    private static func passive(_ db: Database, monitor: StoreMonitor) throws -> Int {
        guard monitor.checkpointStarts() else { return 0 }
        defer { monitor.checkpointed() }
        return try db.checkpoint(.passive).walFrameCount
    }
}

/// What one batched write carries, and what it answers.
enum StoreWrite: Sendable {
    case ingest(NewEvent)
    case queue(QueueWrite)
}

enum StoreWriteResult: Sendable {
    case ingested(IngestOutcome, sequence: Int64?)
    case queued(AttemptWrite)
}

/// How a process opens the store.
public enum StoreAccess: Sendable {
    /// `doorbell serve`: watches its database file (deleted, replaced, truncated) and checkpoints
    /// the WAL into it at a clean shutdown.
    case server
    /// Commands that change things (add, replay, prune), possibly next to a running server.
    case readWrite
    /// Commands that only look (list, show, check, backup): no migrations, no writes.
    case readOnly
}

/// The last few thousand stored events (at most 16 MiB of bodies), oldest dropped first.
struct RecentEvents {
    private(set) var events: [String: StoredEvent] = [:]
    private var order: [String] = []
    private var head = 0
    private var bytes = 0
    static let maxCount = 4096
    static let maxBytes = 16 << 20

    mutating func add(_ stored: StoredEvent) {
        events[stored.event.id] = stored
        order.append(stored.event.id)
        bytes += stored.event.body.count
        while order.count - head > Self.maxCount || bytes > Self.maxBytes {
            let oldest = order[head]
            head += 1
            bytes -= events.removeValue(forKey: oldest)?.event.body.count ?? 0
        }
        if head > 4096 {
            order.removeFirst(head)
            head = 0
        }
    }

    /// Forgets events received before `date`: retention may have deleted them, and a pruned event
    /// must not be served from here. (Their ids stay in `order` and fall out with the oldest.)
    mutating func forget(receivedBefore date: Date) {
        for (id, stored) in events where stored.event.receivedAt < date {
            bytes -= stored.event.body.count
            events.removeValue(forKey: id)
        }
    }
}

/// Headers stored as `name: value` lines; HTTP forbids line breaks inside names and values.
enum HeaderCoding {
    static func encode(_ headers: [Header]) -> String {
        headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    }

    static func decode(_ text: String) -> [Header] {
        text.split(separator: "\n").compactMap { line -> Header? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let value = line[line.index(after: colon)...].dropFirst(1)
            return Header(name: String(line[..<colon]), value: String(value))
        }
    }
}

extension SQLiteEventStore {
    /// An empty database file beside a WAL that holds frames is a truncated database, not a new one:
    /// opening it would start empty and reset the WAL, throwing away what the WAL still holds.
    static func refuseEmptiedDatabase(_ path: String) throws {
        let files = FileManager.default
        guard let size = (try? files.attributesOfItem(atPath: path))?[.size] as? Int, size == 0,
              let walSize = (try? files.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int, walSize > 0
        else { return }
        throw StoreError.unavailable("the database file \(path) is empty but its write-ahead log \(path)-wal holds \(walSize) bytes: the database was truncated. Restore it from a backup (or a rescued copy beside it); Doorbell will not start on it, as that would discard the log")
    }
}
