import DoorbellCore
import Foundation
import GRDB
import Logging
import Synchronization

/// The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so a commit is on
/// disk when it returns. Ingests and the worker's transitions are group-committed together: SQLite
/// has one writer, so one batcher feeding it means one fsync for everything that is waiting.
public final class SQLiteEventStore: EventStore, RunStore {
    let pool: DatabasePool
    private let writes: GroupCommit<StoreWrite, StoreWriteResult>
    /// Events stored recently by this process, so the worker does not read back what it was just given.
    private let recent = Mutex(RecentEvents())
    private let logger: Logger

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    public init(path: String, logger: Logger = Logger(label: "doorbell.storage")) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "doorbell"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pool = try DatabasePool(path: path, configuration: configuration)
        try SQLiteSchema.migrator.migrate(pool)
        self.pool = pool
        self.logger = logger
        self.writes = GroupCommit { items in
            try await pool.write { db in
                let events = items.compactMap { item -> NewEvent? in
                    if case .ingest(let event) = item { return event }
                    return nil
                }
                var outcomes = try SQLiteEventStore.insert(events, db).makeIterator()
                return try items.map { item in
                    switch item {
                    case .ingest:
                        let (outcome, sequence) = outcomes.next()!
                        return .ingested(outcome, sequence: sequence)
                    case .queue(let write):
                        return .queued(try SQLiteEventStore.apply(write, db))
                    }
                }
            }
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

    func queueWrite(_ write: QueueWrite) async throws -> Date? {
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

    /// Inserts a batch in the caller's transaction; a provider id seen before yields the earlier event.
    /// Each outcome comes with the new row's sequence number (nil for a duplicate).
    static func insert(_ events: [NewEvent], _ db: Database) throws -> [(IngestOutcome, Int64?)] {
        let insert = try db.cachedStatement(sql: """
            INSERT INTO events (id, source, type, provider_id, received_at, headers, body, depth)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (source, provider_id) DO NOTHING
            """)
        let findDuplicate = try db.cachedStatement(sql: "SELECT id FROM events WHERE source = ? AND provider_id = ?")
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
            INSERT INTO runs (id, event_id, automation, status, due_at, created_at, updated_at, concurrency_key, concurrency_limit, endpoint)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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

    public func checkReady() async throws {
        do {
            try await pool.read { db in try db.execute(sql: "SELECT 1 FROM events LIMIT 1") }
        } catch {
            throw StoreError.unavailable(String(describing: error))
        }
    }

    public func close() async throws {
        await writes.close()
        try pool.close()
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
}

enum StoreWriteResult: Sendable {
    case ingested(IngestOutcome, sequence: Int64?)
    case queued(Date?)
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
