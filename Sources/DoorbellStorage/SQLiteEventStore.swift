import DoorbellCore
import Foundation
import GRDB
import Logging
import Synchronization

/// The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so a commit is on
/// disk when it returns. Ingests and the worker's transitions are group-committed together: SQLite
/// has one writer, so one batcher feeding it means one fsync for everything that is waiting. A batch
/// that fails is tried again with a savepoint per item, so one bad item fails alone and the rest
/// commit. The server's store watches its file (`DatabaseFileWatch`) and acknowledges nothing once
/// the file was deleted, replaced or truncated.
public final class SQLiteEventStore: EventStore, RunStore {
    let pool: DatabasePool
    /// The database file.
    let path: String
    let access: StoreAccess
    private let writes: GroupCommit<StoreWrite, StoreWriteResult>
    /// Events stored recently by this process, so the worker does not read back what it was just given.
    private let recent = Mutex(RecentEvents())
    let monitor: StoreMonitor
    let logger: Logger

    /// Opens the database at `path`. `.server` and `.readWrite` create it if needed and bring its
    /// schema up to date; `.readOnly` (list, show, check, backup) never writes or migrates. Each
    /// refuses a database whose schema is newer than this build, and read-only also one that is
    /// older, with a message that says which.
    public init(path: String, logger: Logger = Logger(label: "doorbell.storage"), access: StoreAccess = .server) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "doorbell"
        switch access {
        case .server, .readWrite:
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                // The WAL never shrinks while we run (whatever the build's default), so the file
                // watch can read a smaller WAL as truncation by someone else.
                try db.execute(sql: "PRAGMA journal_size_limit = -1")
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
            let schema = try pool.read { db in try SQLiteSchema.Version.read(db) }
            if let problem = schema.problem(access: access, path: path) { throw StoreError.incompatibleSchema(problem) }
            if access != .readOnly { try SQLiteSchema.migrator.migrate(pool) }
        } catch {
            try? pool.close()
            throw error
        }
        self.pool = pool
        self.path = path
        self.access = access
        self.logger = logger
        let monitor = StoreMonitor(watch: access == .server ? DatabaseFileWatch(path: path, companions: [path + "-wal"]) : nil, logger: logger) { [pool, logger] loss in
            guard loss.rescuable else { return }
            Task { await SQLiteEventStore.rescue(pool, path: path, logger: logger) }
        }
        self.monitor = monitor
        self.writes = GroupCommit { items in
            // Never commit into a file that is no longer the one at the path: nobody would find it.
            try monitor.beforeWrite()
            let results: [Result<StoreWriteResult, any Error>]
            do {
                do {
                    // Usually nothing fails: one plain transaction, no savepoint statements.
                    results = try await pool.write { db in try SQLiteEventStore.applyBatch(items, db, savepoints: false) }
                } catch {
                    // Something did (and all of it was rolled back): again with a savepoint per item,
                    // so a bad item fails alone and the others commit.
                    results = try await pool.write { db in try SQLiteEventStore.applyBatch(items, db, savepoints: true) }
                }
            } catch {
                monitor.writeFailed(String(describing: error))
                throw StoreError.unavailable(String(describing: error))
            }
            // Deleted during the commit: what it wrote is in an unlinked inode, not stored; no 2xx.
            try monitor.afterCommit()
            return results
        }
    }

    public func ingest(_ event: NewEvent) async throws -> IngestOutcome {
        guard case .ingested(let outcome, let sequence) = try await write(.ingest(event)) else { preconditionFailure("an ingest answers with its outcome") }
        if let sequence {
            var stored = event
            stored.automations = []
            recent.withLock { $0.add(StoredEvent(sequence: sequence, event: stored)) }
        }
        return outcome
    }

    func queueWrite(_ write: QueueWrite) async throws -> AttemptWrite {
        guard case .queued(let result) = try await self.write(.queue(write)) else { preconditionFailure("a queue write answers with its result") }
        return result
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
    /// savepoint: an item that fails (a constraint, a run that is gone) is rolled back alone and
    /// answered with its error. When SQLite has rolled back the whole transaction (disk full, I/O
    /// error) the batch fails. Without, the first error fails the batch.
    static func applyBatch(_ items: [StoreWrite], _ db: Database, savepoints: Bool) throws -> [Result<StoreWriteResult, any Error>] {
        guard savepoints else { return try items.map { .success(try apply(item: $0, db)) } }
        var results: [Result<StoreWriteResult, any Error>] = []
        results.reserveCapacity(items.count)
        for item in items {
            var result: StoreWriteResult?
            do {
                try db.inSavepoint {
                    result = try apply(item: item, db)
                    return .commit
                }
                results.append(.success(result!))
            } catch {
                guard db.isInsideTransaction else { throw error }
                results.append(.failure(StoreError.unavailable(String(describing: error))))
            }
        }
        return results
    }

    private static func apply(item: StoreWrite, _ db: Database) throws -> StoreWriteResult {
        switch item {
        case .ingest(let event):
            let (outcome, sequence) = try insert([event], db)[0]
            return .ingested(outcome, sequence: sequence)
        case .queue(let write):
            return .queued(try apply(write, db))
        case .probe(let at):
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO store_probe (id, written_at) VALUES (1, ?)").execute(arguments: [at.millis])
            return .probed
        }
    }

    /// Inserts a batch in the caller's transaction; a provider id seen before yields the earlier event.
    /// Each outcome comes with the new row's sequence number (nil for a duplicate).
    static func insert(_ events: [NewEvent], _ db: Database) throws -> [(IngestOutcome, Int64?)] {
        let insert = try db.cachedStatement(sql: """
            INSERT INTO events (id, source, type, provider_id, received_at, headers, body, depth)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (source, provider_id) DO NOTHING
            """)
        let findDuplicate = try db.cachedStatement(sql: "SELECT id FROM events WHERE source = ? AND provider_id = ?")
        // A key whose event retention already pruned still dedupes for `retention.dedupe_window`.
        let findPruned = try db.cachedStatement(sql: "SELECT event_id FROM dedupe_keys WHERE source = ? AND provider_id = ?")
        var outcomes: [(IngestOutcome, Int64?)] = []
        outcomes.reserveCapacity(events.count)
        for event in events {
            if let providerID = event.providerID, let earlier = try String.fetchOne(findPruned, arguments: [event.source, providerID]) {
                outcomes.append((IngestOutcome(id: earlier, duplicate: true), nil))
                continue
            }
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

    public func event(id: String) async throws -> StoredEvent? {
        if let event = recent.withLock({ $0.events[id] }) { return event }
        return try await pool.read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM events WHERE id = ?"), arguments: [id]).map(Self.storedEvent)
        }
    }

    public func events(matching query: EventQuery) async throws -> [StoredEvent] {
        try await pool.read { db in
            let (whereClause, arguments) = Self.filter(query)
            var all = arguments
            all += [query.limit]
            return try Row.fetchAll(db, sql: "SELECT * FROM events \(whereClause) ORDER BY seq DESC LIMIT ?", arguments: all)
                .map(Self.storedEvent)
        }
    }

    public func countEvents(matching query: EventQuery) async throws -> Int {
        try await pool.read { db in
            let (whereClause, arguments) = Self.filter(query)
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events \(whereClause)", arguments: arguments) ?? 0
        }
    }

    /// Ready when the database file is still the one opened and the last write committed. After a
    /// failed write this tries a small write of its own, so an idle server becomes ready again as
    /// soon as the disk takes writes (no restart, no waiting for traffic).
    public func checkReady() async throws {
        switch monitor.readiness() {
        case .ready:
            break
        case .fileLost(let reason):
            throw StoreError.unavailable(reason)
        case .lastWriteFailed(let reason):
            do {
                _ = try await write(.probe(at: Date()))
            } catch {
                throw StoreError.unavailable(reason)
            }
        }
        do {
            try await pool.read { db in try db.execute(sql: "SELECT 1 FROM events LIMIT 1") }
        } catch {
            throw StoreError.unavailable(String(describing: error))
        }
    }

    /// Finishes queued commits; the server then checkpoints the WAL into the database file and
    /// truncates it, so after a clean shutdown the `.db` file alone is a complete copy. (A command
    /// next to a running server leaves the WAL alone: truncating it under the server would look like
    /// a truncated file to its watch.)
    public func close() async throws {
        await writes.close()
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
    static func rescue(_ pool: DatabasePool, path: String, logger: Logger) async {
        let target = "\(path).rescued-\(Date().millis)"
        do {
            try await pool.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [target + ".partial"]) }
            try FileManager.default.moveItem(atPath: target + ".partial", toPath: target)
            logger.critical("copied everything the lost database held to \(target): stop doorbell, put that file at \(path) and start doorbell again")
        } catch {
            logger.critical("could not copy the lost database to \(target): \(error)")
        }
    }

    private static func filter(_ query: EventQuery) -> (String, StatementArguments) {
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
        if let before = query.beforeSequence {
            clauses.append("seq < ?")
            arguments += [before]
        }
        return (clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND "), arguments)
    }

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

/// What one batched write carries, and what it answers.
enum StoreWrite: Sendable {
    case ingest(NewEvent)
    case queue(QueueWrite)
    /// A one-row write that proves the disk takes writes again (readiness after a failure).
    case probe(at: Date)
}

enum StoreWriteResult: Sendable {
    case ingested(IngestOutcome, sequence: Int64?)
    case queued(AttemptWrite)
    case probed
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
