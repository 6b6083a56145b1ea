import DoorbellCore
import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The shared backend: one PostgreSQL database that several `doorbell serve` nodes (and the
/// commands) use at once. The same contract as SQLite's (`RunStore`'s fencing, per-key order,
/// dedupe), held across processes by the database: claims take `FOR UPDATE SKIP LOCKED` rows under
/// one short advisory lock, every transition names its claim's token, and wake-ups travel by
/// `LISTEN/NOTIFY` so a write on one node wakes the workers of all.
///
/// Every operation has a deadline (`operationTimeout`): while PostgreSQL is unreachable the pool
/// keeps reconnecting on its own and each ingest answers `StoreError.unavailable` (503) in bounded
/// time — never a 2xx for an event that is not committed.
public final class PostgresStore: EventStore, RunStore, Sendable {
    let client: PostgresClient
    private let clientTask: Task<Void, Never>
    let settings: PostgresSettings
    let access: StoreAccess
    let logger: Logger
    let now: @Sendable () -> Date
    private let writes: GroupCommit<NewEvent, IngestOutcome>
    /// Events stored recently by this node with runs, so its worker does not read back what it was just given.
    let recent = Mutex(RecentEvents())
    public let wakeUps: WakeUpChannel
    /// `LISTEN` on its own connection; nil for commands (they only notify).
    let listener: WakeUpListener?

    /// How long one store operation may take before it is answered unavailable.
    static let operationTimeout: Duration = .seconds(5)
    /// The notification channel every node listens on and every waking write notifies.
    static let wakeChannel = "doorbell_wake"

    /// Connects, migrates (once across nodes) and, for the server, starts listening. The server waits
    /// for an unreachable database (logging every few seconds), so a node started before its
    /// database comes up without a supervisor's restart loop; commands fail at once with the reason.
    public static func open(_ settings: PostgresSettings, logger: Logger, access: StoreAccess, now: @escaping @Sendable () -> Date = { Date() }) async throws -> PostgresStore {
        let client = PostgresClient(configuration: settings.clientConfiguration(), backgroundLogger: Logger(label: "doorbell.postgres", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task { await client.run() }
        var waitingSince: ContinuousClock.Instant?
        var lastLog = ContinuousClock.now
        while true {
            do {
                // Reachable at all? Answered within seconds, so a command fails fast and the
                // server says it is waiting.
                try await withDeadline(.seconds(5)) {
                    for try await _ in try await client.query("SELECT 1", logger: logger) {}
                }
                // Long: a later migration may rewrite a large table (the server-side statement
                // timeout is lifted inside it).
                try await withDeadline(.seconds(600)) {
                    try await PostgresSchema.migrate(client, readOnly: access == .readOnly, where: settings.safeDescription, logger: logger)
                }
                break
            } catch where (cause(error) as? StoreError)?.kind == .incompatibleSchema {
                task.cancel()
                throw cause(error)
            } catch {
                let reason = describe(error)
                guard access == .server, !Task.isCancelled else {
                    task.cancel()
                    throw StoreError.unavailable("\(settings.safeDescription): \(reason)", summary: "database unreachable")
                }
                if waitingSince == nil || ContinuousClock.now - lastLog > .seconds(5) {
                    logger.warning("waiting for PostgreSQL", metadata: ["database": "\(settings.safeDescription)", "error": "\(reason)"])
                    lastLog = .now
                }
                waitingSince = waitingSince ?? .now
                try await Task.sleep(for: .seconds(1))
            }
        }
        return PostgresStore(client: client, clientTask: task, settings: settings, access: access, logger: logger, now: now)
    }

    private init(client: PostgresClient, clientTask: Task<Void, Never>, settings: PostgresSettings, access: StoreAccess, logger: Logger, now: @escaping @Sendable () -> Date) {
        self.client = client
        self.clientTask = clientTask
        self.settings = settings
        self.access = access
        self.logger = logger
        self.now = now
        let wakeUps = WakeUpChannel()
        self.wakeUps = wakeUps
        self.listener = access == .server ? WakeUpListener(client: client, channel: Self.wakeChannel, wakeUps: wakeUps, logger: logger) : nil
        self.writes = GroupCommit { events in
            do {
                do {
                    return try await withDeadline(Self.operationTimeout) {
                        try await client.withTransaction(logger: logger) { connection in try await Self.insert(events, connection, savepoints: false, logger: logger) }
                    }
                } catch where Self.isItemFault(error) {
                    // One event the database refused (a NUL byte in a header, say) failed the whole
                    // statement: again with a savepoint per event, so only that one fails.
                    return try await withDeadline(Self.operationTimeout) {
                        try await client.withTransaction(logger: logger) { connection in try await Self.insert(events, connection, savepoints: true, logger: logger) }
                    }
                }
            } catch {
                throw Self.storeError(error)
            }
        }
        listener?.start()
    }

    // MARK: events

    public func ingest(_ event: NewEvent) async throws -> IngestOutcome {
        let outcome = try await writes.submit(event)
        // Kept only for this node's worker, which reads an event only for its runs.
        if !outcome.duplicate && !event.automations.isEmpty {
            var stored = event
            stored.automations = []
            // The sequence is only used for paging the API, which reads from the database.
            recent.withLock { $0.add(StoredEvent(sequence: 0, event: stored)) }
            // This node's worker at once; the others by the NOTIFY committed with the event.
            wakeUps.signal()
        }
        return outcome
    }

    /// Inserts a batch in the caller's transaction: one multi-row statement for the events (`ON
    /// CONFLICT DO NOTHING` on the dedupe key) and one for their runs. A provider id seen before, in
    /// the database, among pruned keys or earlier in this batch, yields the earlier event.
    static func insert(_ events: [NewEvent], _ connection: PostgresConnection, savepoints: Bool, logger: Logger) async throws -> [Result<IngestOutcome, any Error>] {
        guard savepoints else { return try await insertBatch(events, connection, logger: logger).map { .success($0) } }
        var results: [Result<IngestOutcome, any Error>] = []
        for event in events {
            try await connection.query("SAVEPOINT item", logger: logger)
            do {
                let outcome = try await insertBatch([event], connection, logger: logger)[0]
                try await connection.query("RELEASE SAVEPOINT item", logger: logger)
                results.append(.success(outcome))
            } catch where isItemFault(error) {
                try await connection.query("ROLLBACK TO SAVEPOINT item", logger: logger)
                results.append(.failure(StoreError.rejected(describe(error))))
            }
        }
        return results
    }

    private static func insertBatch(_ events: [NewEvent], _ connection: PostgresConnection, logger: Logger) async throws -> [IngestOutcome] {
        // Within a batch the first event of a dedupe key is the one inserted; later ones are its duplicates.
        var firstOfKey: [DedupeKey: Int] = [:]
        var candidates: [Int] = []
        for (index, event) in events.enumerated() {
            if let providerID = event.providerID {
                let key = DedupeKey(source: event.source, providerID: providerID)
                if firstOfKey[key] != nil { continue }
                firstOfKey[key] = index
            }
            candidates.append(index)
        }
        let batch = candidates.map { events[$0] }
        let inserted = try await connection.query("""
            INSERT INTO events (id, source, type, provider_id, received_at, headers, body, depth)
            SELECT t.id, t.source, t.type, CASE WHEN t.has_pid THEN t.pid END, t.received_at, t.headers, t.body, t.depth
            FROM unnest(\(batch.map(\.id)), \(batch.map(\.source)), \(batch.map(\.type.postgresText)), \(batch.map { $0.providerID != nil }),
                        \(batch.map { $0.providerID?.postgresText ?? "" }), \(batch.map { $0.receivedAt.millis }), \(batch.map { HeaderCoding.encode($0.headers).postgresText }),
                        \(batch.map { ByteBuffer(bytes: $0.body) }), \(batch.map { Int64($0.depth) }))
                 WITH ORDINALITY AS t(id, source, type, has_pid, pid, received_at, headers, body, depth, position)
            WHERE NOT t.has_pid OR NOT EXISTS (SELECT 1 FROM dedupe_keys d WHERE d.source = t.source AND d.provider_id = t.pid)
            ORDER BY t.position
            ON CONFLICT (source, provider_id) DO NOTHING
            RETURNING id
            """, logger: logger)
        var stored: Set<String> = []
        for try await id in inserted.decode(String.self) { stored.insert(id) }

        var outcomes: [IngestOutcome?] = Array(repeating: nil, count: events.count)
        var planned: [(NewEvent, PlannedRun)] = []
        for index in candidates where stored.contains(events[index].id) {
            outcomes[index] = IngestOutcome(id: events[index].id, duplicate: false)
            planned += events[index].automations.map { (events[index], $0) }
        }
        for (index, event) in events.enumerated() where outcomes[index] == nil {
            guard let providerID = event.providerID else { continue }
            let key = DedupeKey(source: event.source, providerID: providerID)
            if let first = firstOfKey[key], first != index, let firstOutcome = outcomes[first] {
                outcomes[index] = IngestOutcome(id: firstOutcome.id, duplicate: true)
                continue
            }
            let stored = providerID.postgresText
            let earlier = try await connection.query("""
                SELECT id FROM events WHERE source = \(event.source) AND provider_id = \(stored)
                UNION ALL SELECT event_id FROM dedupe_keys WHERE source = \(event.source) AND provider_id = \(stored)
                LIMIT 1
                """, logger: logger)
            for try await id in earlier.decode(String.self) { outcomes[index] = IngestOutcome(id: id, duplicate: true) }
            if let outcome = outcomes[index], let first = firstOfKey[key] { outcomes[first] = outcomes[first] ?? outcome }
        }
        // The event's runs commit with it: an acknowledged event never lacks its runs.
        if try await insertRuns(planned.map { (run: $0.1, eventID: $0.0.id, at: $0.0.receivedAt) }, connection, logger: logger) > 0 {
            try await notify(.runsDue, connection, logger: logger)
        }
        return try outcomes.enumerated().map { index, outcome in
            guard let outcome else { throw StoreError.unavailable("event \(events[index].id) was neither stored nor found as a duplicate") }
            return outcome
        }
    }

    /// Creates planned runs (or deliveries); one that exists for the same event and automation is
    /// left alone. Returns how many were created.
    static func insertRuns(_ runs: [(run: PlannedRun, eventID: String, at: Date)], _ connection: PostgresConnection, logger: Logger) async throws -> Int {
        guard !runs.isEmpty else { return 0 }
        let created = try await connection.query("""
            INSERT INTO runs (id, event_id, automation, status, due_at, created_at, updated_at, concurrency_key, concurrency_limit, endpoint)
            SELECT t.id, t.event_id, t.automation, t.status, t.at, t.at, t.at, CASE WHEN t.has_key THEN t.key END, t.lim, CASE WHEN t.has_endpoint THEN t.endpoint END
            FROM unnest(\(runs.map { EventID.generate(prefix: $0.run.endpoint == nil ? "run_" : "dlv_", now: $0.at) }), \(runs.map(\.eventID)),
                        \(runs.map(\.run.automation)), \(runs.map { ($0.run.paused ? RunStatus.paused : .pending).rawValue }), \(runs.map(\.at.millis)),
                        \(runs.map { $0.run.concurrencyKey != nil }), \(runs.map { $0.run.concurrencyKey?.postgresText ?? "" }), \(runs.map { Int64($0.run.concurrencyLimit) }),
                        \(runs.map { $0.run.endpoint != nil }), \(runs.map { $0.run.endpoint ?? "" }))
                 WITH ORDINALITY AS t(id, event_id, automation, status, at, has_key, key, lim, has_endpoint, endpoint, position)
            ORDER BY t.position
            ON CONFLICT (event_id, automation) DO NOTHING
            RETURNING id
            """, logger: logger)
        var count = 0
        for try await _ in created.decode(String.self) { count += 1 }
        return count
    }

    public var commitObserver: CommitObserver? { writes.observer }

    public func event(id: String) async throws -> StoredEvent? {
        // Only a young event from the cache: another node's retention may have pruned an old one,
        // and only the pruning node forgets it.
        if let event = recent.withLock({ $0.events[id] }), now().timeIntervalSince(event.event.receivedAt) < 60 { return event }
        return try await rows("SELECT * FROM events WHERE id = \(id)").first.map(Self.storedEvent)
    }

    public func events(ids: [String]) async throws -> [String: StoredEvent] {
        var found: [String: StoredEvent] = [:]
        let now = now()
        recent.withLock { recent in
            for id in ids {
                if let event = recent.events[id], now.timeIntervalSince(event.event.receivedAt) < 60 { found[id] = event }
            }
        }
        let missing = ids.filter { found[$0] == nil }
        guard !missing.isEmpty else { return found }
        for row in try await rows("SELECT * FROM events WHERE id = ANY(\(missing))") {
            let stored = try Self.storedEvent(row)
            found[stored.event.id] = stored
        }
        return found
    }

    public func events(matching query: EventQuery) async throws -> [StoredEvent] {
        let (clause, binds) = try Self.filter(query)
        var all = binds
        all.append(Int64(query.limit))
        return try await rows(PostgresQuery(unsafeSQL: "SELECT * FROM events \(clause) ORDER BY seq DESC LIMIT $\(all.count)", binds: all)).map(Self.storedEvent)
    }

    public func searchFloor(matching query: EventQuery, window: Int) async throws -> EventPosition? {
        let (clause, binds) = try Self.filter(query)
        var all = binds
        all.append(Int64(max(0, window - 1)))
        // Two rows: the floor, and proof that an older one exists (else the window holds them all).
        let found = try await rows(PostgresQuery(unsafeSQL: "SELECT seq, received_at FROM events \(clause) ORDER BY seq DESC LIMIT 2 OFFSET $\(all.count)", binds: all))
        guard found.count == 2 else { return nil }
        return EventPosition(sequence: try found[0]["seq"].decode(Int64.self), receivedAt: Date(millis: try found[0]["received_at"].decode(Int64.self)))
    }

    public func countEvents(matching query: EventQuery) async throws -> Int {
        let (clause, binds) = try Self.filter(query)
        return try await rows(PostgresQuery(unsafeSQL: "SELECT COUNT(*) AS n FROM events \(clause)", binds: binds)).first.map { try $0["n"].decode(Int.self) } ?? 0
    }

    /// Ready when a query answers within the deadline. The listener's state is a note, not a
    /// failure: without it the node polls, and works.
    public func checkReady() async throws {
        _ = try await rows("SELECT 1 AS one", deadline: Self.readinessTimeout)
    }

    /// `/readyz` answers within this (a load balancer's health check should not hang on it).
    static let readinessTimeout: Duration = .seconds(2)

    public var readinessNotes: [String: String] {
        guard let listener else { return [:] }
        return ["wake_ups": listener.isListening ? "listening" : "polling (the LISTEN connection is down; reconnecting)"]
    }

    /// Runs while the server runs (the first service of its group, so stopped last); closes the
    /// store on graceful shutdown.
    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
        logger.info("store closed")
    }

    /// Finishes queued commits (each bounded by its deadline), then stops listening and closes the
    /// pool. The waits are bounded too: a connection stuck across a database restart must not keep
    /// a node from shutting down.
    public func close() async throws {
        await writes.close()
        let listener = listener
        try? await withDeadline(.seconds(2)) { await listener?.stop() }
        clientTask.cancel()
        let client = clientTask
        try? await withDeadline(.seconds(2)) { await client.value }
    }

    // MARK: helpers shared by the PostgreSQL files

    /// Runs a query with the store's deadline and collects its rows; failures become `StoreError`.
    func rows(_ query: PostgresQuery, deadline: Duration = operationTimeout) async throws -> [PostgresRandomAccessRow] {
        try await guarded(deadline: deadline) {
            var rows: [PostgresRandomAccessRow] = []
            for try await row in try await self.client.query(query, logger: self.logger) { rows.append(row.makeRandomAccess()) }
            return rows
        }
    }

    /// One transaction with the store's deadline; failures become `StoreError`.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await guarded {
            try await self.client.withTransaction(logger: self.logger) { connection in try await body(connection) }
        }
    }

    func guarded<T: Sendable>(deadline: Duration = operationTimeout, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await withDeadline(deadline, body)
        } catch let error as StoreError {
            throw error
        } catch {
            throw Self.storeError(error)
        }
    }

    /// postgres-nio wraps whatever failed inside `withTransaction`; the cause is what matters.
    static func cause(_ error: any Error) -> any Error {
        guard let wrapped = error as? PostgresTransactionError else { return error }
        return wrapped.closureError ?? wrapped.commitError ?? wrapped.beginError ?? wrapped.rollbackError ?? error
    }

    static func storeError(_ error: any Error) -> StoreError {
        let error = cause(error)
        if let error = error as? StoreError { return error }
        if isItemFault(error) { return .rejected(describe(error)) }
        return .unavailable(describe(error), summary: "database unreachable")
    }

    /// Wakes every node's worker when this transaction commits (a NOTIFY is delivered at commit,
    /// and not at all on rollback).
    static func notify(_ kinds: WakeUp, _ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.drain("SELECT pg_notify(\(wakeChannel), \(String(kinds.rawValue)))", logger: logger)
    }

    /// The database refused this one write (a constraint, bad data, a value too large) rather than
    /// failing as a whole: SQLSTATE classes 22, 23 and 54.
    static func isItemFault(_ error: any Error) -> Bool {
        guard let error = cause(error) as? PSQLError, error.code == .server, let state = error.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23") || state.hasPrefix("54")
    }

    /// An error in words for logs and `StoreError.reason`: PostgreSQL's code and message, never the
    /// query's values or the connection's credentials.
    static func describe(_ error: any Error) -> String {
        let error = cause(error)
        if let error = error as? StoreError { return error.reason }
        if let error = error as? DeadlineExceeded { return error.description }
        guard let error = error as? PSQLError else { return String(describing: type(of: error)) }
        if error.code == .server, let info = error.serverInfo {
            return "PostgreSQL \(info[.sqlState] ?? "?"): \(info[.message] ?? "error")"
        }
        return "PostgreSQL connection: \(error.code)"
    }

    private static func filter(_ query: EventQuery) throws -> (String, PostgresBindings) {
        var clauses: [String] = []
        var binds = PostgresBindings()
        // Text as stored: a NUL was written as U+FFFD, so a filter holding one matches the same way.
        if let source = query.source { binds.append(source.postgresText); clauses.append("source = $\(binds.count)") }
        if let type = query.type { binds.append(type.postgresText); clauses.append("type = $\(binds.count)") }
        if !query.statuses.isEmpty {
            let list = query.statuses.map { status -> String in binds.append(status.rawValue); return "$\(binds.count)" }.joined(separator: ", ")
            clauses.append("EXISTS (SELECT 1 FROM runs WHERE runs.event_id = events.id AND runs.status IN (\(list)))")
        }
        if let since = query.since { binds.append(since.millis); clauses.append("received_at >= $\(binds.count)") }
        if let until = query.until { binds.append(until.millis); clauses.append("received_at < $\(binds.count)") }
        if let text = query.bodyContains { clauses.append(Self.bodyContains("body", text, &binds)) }
        if let before = query.beforeSequence { binds.append(before); clauses.append("seq < $\(binds.count)") }
        if let floor = query.floorSequence { binds.append(floor); clauses.append("seq >= $\(binds.count)") }
        return (clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND "), binds)
    }

    /// `column` (BYTEA) contains the text's UTF-8 bytes: `position` over bytea compares bytes, so the
    /// text is never a pattern (no `LIKE` wildcards to escape) and may hold any byte, NUL included.
    static func bodyContains(_ column: String, _ text: String, _ binds: inout PostgresBindings) -> String {
        binds.append(ByteBuffer(bytes: Array(text.utf8)))
        return "position($\(binds.count)::bytea IN \(column)) > 0"
    }

    static func storedEvent(_ row: PostgresRandomAccessRow) throws -> StoredEvent {
        let body = try row["body"].decode(ByteBuffer.self)
        return StoredEvent(
            sequence: try row["seq"].decode(Int64.self),
            event: NewEvent(
                id: try row["id"].decode(String.self), source: try row["source"].decode(String.self), type: try row["type"].decode(String.self),
                providerID: try row["provider_id"].decode(String?.self),
                receivedAt: Date(millis: try row["received_at"].decode(Int64.self)),
                headers: HeaderCoding.decode(try row["headers"].decode(String.self)), body: Array(body.readableBytesView), depth: try row["depth"].decode(Int.self)
            )
        )
    }
}

/// A source and provider id: the dedupe key.
struct DedupeKey: Hashable {
    var source: String
    var providerID: String
}

extension Date {
    init(millis: Int64) { self.init(timeIntervalSince1970: Double(millis) / 1000) }
}

/// An operation that did not finish within its deadline (PostgreSQL unreachable or stalled).
struct DeadlineExceeded: Error, CustomStringConvertible {
    var limit: Duration
    var description: String { "no answer from PostgreSQL within \(limit)" }
}

/// Runs `body` and returns its result, or throws `DeadlineExceeded` once `limit` has passed — then,
/// not when `body` gets round to noticing its cancellation: a driver call that ignores cancellation
/// (a connection half-dead across a database restart) must not hold an ingest, the group commit
/// behind it or a shutdown. `body` is cancelled and left to end on its own.
func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = FirstOutcome<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            outcome.install(continuation)
            let work = Task {
                do { outcome.finish(.success(try await body())) } catch { outcome.finish(.failure(error)) }
            }
            let timer = Task {
                try? await Task.sleep(for: limit)
                if outcome.finish(.failure(DeadlineExceeded(limit: limit))) { work.cancel() }
            }
            outcome.onFinish { timer.cancel() }
            outcome.onCancel { work.cancel() }
        }
    } onCancel: {
        outcome.cancel()
    }
}

/// The first of the body's result, the deadline or the caller's cancellation resumes the caller;
/// the others are ignored.
final class FirstOutcome<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var done = false
        var finishHandlers: [@Sendable () -> Void] = []
        var cancelHandlers: [@Sendable () -> Void] = []
    }

    private let state = Mutex(State())

    func install(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            if let early = state.early { state.early = nil; return early }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    /// Resumes the caller with `result` if nothing has yet; true when this was the first.
    @discardableResult
    func finish(_ result: Result<T, any Error>) -> Bool {
        let (first, continuation, handlers) = state.withLock { state -> (Bool, CheckedContinuation<T, any Error>?, [@Sendable () -> Void]) in
            guard !state.done else { return (false, nil, []) }
            state.done = true
            let continuation = state.continuation
            state.continuation = nil
            if continuation == nil { state.early = result }
            return (true, continuation, state.finishHandlers)
        }
        continuation?.resume(with: result)
        if first { handlers.forEach { $0() } }
        return first
    }

    func onFinish(_ handler: @escaping @Sendable () -> Void) {
        let run = state.withLock { state -> Bool in
            if state.done { return true }
            state.finishHandlers.append(handler)
            return false
        }
        if run { handler() }
    }

    func onCancel(_ handler: @escaping @Sendable () -> Void) {
        state.withLock { $0.cancelHandlers.append(handler) }
    }

    /// The caller was cancelled: it stops waiting with `CancellationError`, and the work is cancelled.
    func cancel() {
        let handlers = state.withLock { $0.cancelHandlers }
        if finish(.failure(CancellationError())) { handlers.forEach { $0() } }
    }
}

/// `LISTEN` on one dedicated connection; every notification signals the store's wake-up channel.
/// When the connection drops the node polls (a wake-up every second, so the worker looks at the
/// queue as if notified), says so (a warning, `isListening`, `/readyz`'s note) and listens again
/// as soon as it can.
final class WakeUpListener: Sendable {
    private let client: PostgresClient
    private let channel: String
    private let wakeUps: WakeUpChannel
    private let logger: Logger
    private let listening = Atomic<Bool>(false)
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// How often a polling node looks at the queue while it cannot listen.
    static let pollInterval: Duration = .seconds(1)

    init(client: PostgresClient, channel: String, wakeUps: WakeUpChannel, logger: Logger) {
        self.client = client
        self.channel = channel
        self.wakeUps = wakeUps
        self.logger = logger
    }

    var isListening: Bool { listening.load(ordering: .relaxed) }

    func start() {
        task.withLock { $0 = Task { await self.run() } }
    }

    func stop() async {
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
    }

    private func run() async {
        var everListened = false
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: self.channel) { notifications in
                        self.listening.store(true, ordering: .relaxed)
                        if everListened { self.logger.notice("listening for wake-ups again", metadata: ["channel": "\(self.channel)"]) }
                        everListened = true
                        // Whatever was notified while nobody listened: look at everything once.
                        self.wakeUps.signal([.runsDue, .endpointsChanged])
                        for try await notification in notifications {
                            self.wakeUps.signal(Int(notification.payload).map(WakeUp.init(rawValue:)) ?? [.runsDue, .endpointsChanged])
                        }
                    }
                }
            } catch {
                if Task.isCancelled { break }
                if listening.exchange(false, ordering: .relaxed) || !everListened {
                    logger.warning("wake-ups by LISTEN lost; polling the queue every second until the connection is back", metadata: ["error": "\(PostgresStore.describe(error))"])
                }
            }
            listening.store(false, ordering: .relaxed)
            // Poll while the connection is down; try to listen again after each tick.
            wakeUps.signal([.runsDue, .endpointsChanged])
            try? await Task.sleep(for: Self.pollInterval)
        }
        listening.store(false, ordering: .relaxed)
    }
}

extension PostgresConnection {
    /// Runs a statement whose rows nobody needs (a lock, a notify) and reads them to the end, so
    /// the connection is free for the next statement whatever the driver buffers.
    func drain(_ query: PostgresQuery, logger: Logger) async throws {
        for try await _ in try await self.query(query, logger: logger) {}
    }
}

extension String {
    /// PostgreSQL's text refuses the NUL character, which a webhook's JSON (`"\u0000"`) or a
    /// receiver's binary answer can carry; SQLite stores it. Replaced with U+FFFD so the same hostile
    /// value is stored on both backends instead of failing the write (and, for an attempt, retrying it forever).
    var postgresText: String {
        contains("\u{0}") ? replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : self
    }
}
