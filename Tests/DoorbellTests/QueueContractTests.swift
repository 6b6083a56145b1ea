@testable import DoorbellAutomation
import DoorbellConfig
import DoorbellCore
@testable import DoorbellStorage
import Foundation
import Logging
import Synchronization
import Testing

/// A store backend the queue contract is checked against. Every `@Test(arguments: StoreBackend.all)`
/// below runs once per backend; a new backend joins by one case here.
enum StoreBackend: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case sqlite
    /// A fresh database in the PostgreSQL cluster `scripts/test` starts (`DOORBELL_TEST_POSTGRES_URL`);
    /// without one these tests fail, saying so: they are never skipped.
    case postgres

    static let all: [StoreBackend] = [.sqlite, .postgres]

    var testDescription: String { rawValue }

    /// A fresh, empty store, opened as the server opens it.
    func open() async throws -> any DoorbellStore {
        switch self {
        case .sqlite:
            return try SQLiteEventStore(path: TemporaryFolder.make().appendingPathComponent("doorbell.db").path)
        case .postgres:
            return try await PostgresStore.open(try PostgresSettings(url: try await TestPostgres.freshDatabase()), logger: Logger(label: "test"), access: .server)
        }
    }
}

/// The store contract for the run queue when workers race: claims are fenced (a transition made
/// under a lease that was taken over changes nothing and says so), a worker never gets back a run
/// it has in flight, runs sharing a concurrency key start in sequence order, and the worker treats
/// a storage error after a step as a write to retry, not a failed step.
@Suite("Queue contract", .serialized)
struct QueueContractTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    /// Stores an event with the given planned runs; returns the run ids, in plan order.
    static func enqueue(_ store: any DoorbellStore, _ runs: [PlannedRun], at time: Date = t0) async throws -> [String] {
        let event = NewEvent(source: "open", type: "t", providerID: nil, receivedAt: time, headers: [], body: Array("{}".utf8), automations: runs)
        _ = try await store.ingest(event)
        let stored = try await store.runs(eventID: event.id, limit: 10)
        return runs.compactMap { planned in stored.first { $0.automation == planned.automation }?.id }
    }

    // MARK: lease loss

    @Test("lease loss: A's claim expires, B claims the run; A's transitions report not applied and change nothing, B's apply", arguments: StoreBackend.all)
    func leaseLoss(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let runID = try #require(try await Self.enqueue(store, [PlannedRun(automation: "a")]).first)

        let claimedByA = try await store.claimDueRuns(owner: "node-a", limit: 10, now: Self.t0, leaseUntil: Self.t0 + 30, excluding: [])
        let a = try #require(claimedByA.first?.lease)
        #expect(claimedByA.map(\.id) == [runID])
        #expect(a.owner == "node-a")
        #expect(try await store.claimDueRuns(owner: "node-b", limit: 10, now: Self.t0 + 10, leaseUntil: Self.t0 + 40, excluding: []).isEmpty, "a live lease is not taken")

        // A's lease runs out (A is stuck or partitioned); B claims the run.
        let claimedByB = try await store.claimDueRuns(owner: "node-b", limit: 10, now: Self.t0 + 31, leaseUntil: Self.t0 + 61, excluding: [])
        let b = try #require(claimedByB.first?.lease)
        #expect(claimedByB.map(\.id) == [runID])
        #expect(b.token > a.token, "every claim gets a new fencing token")

        // A comes back and tries every transition: none applies, nothing changes.
        let before = try #require(try await store.run(id: runID))
        #expect(try await store.completeStep(runID: runID, stepID: "s1", position: 0, output: #"{"by":"a"}"#, finished: false, lease: a, leaseUntil: Self.t0 + 90) == .leaseLost)
        #expect(try await store.failStep(runID: runID, attempt: 1, error: "a failed", dueAt: Self.t0 + 100, lease: a) == .leaseLost)
        #expect(try await store.failStep(runID: runID, attempt: 1, error: "a buried it", dueAt: nil, lease: a) == .leaseLost)
        #expect(try await store.renewLeases([runID: a], until: Self.t0 + 120).isEmpty, "A's lease is not renewed")
        #expect(try await store.run(id: runID) == before)
        #expect(try await store.stepOutputs(runID: runID).isEmpty)

        // B's apply.
        #expect(try await store.renewLeases([runID: b], until: Self.t0 + 70) == [runID])
        #expect(try await store.completeStep(runID: runID, stepID: "s1", position: 0, output: #"{"by":"b"}"#, finished: false, lease: b, leaseUntil: Self.t0 + 70) == .applied)
        #expect(try await store.stepOutputs(runID: runID) == ["s1": #"{"by":"b"}"#])
        #expect(try await store.completeStep(runID: runID, stepID: "s2", position: 1, output: "{}", finished: true, lease: b, leaseUntil: Self.t0 + 70) == .applied)
        let done = try #require(try await store.run(id: runID))
        #expect(done.status == .succeeded)
        #expect(done.nextStep == 2)
        // A finished run takes no further transition, not even from its last holder.
        #expect(try await store.failStep(runID: runID, attempt: 1, error: "late", dueAt: nil, lease: b) == .leaseLost)
        #expect(try await store.run(id: runID)?.status == .succeeded)
        try await store.close()
    }

    @Test("lease loss on a delivery: A's attempt, defer and pause report not applied and record nothing; B's attempt applies", arguments: StoreBackend.all)
    func deliveryLeaseLoss(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let runID = try #require(try await Self.enqueue(store, [.delivery(to: "erp")]).first)
        let a = try #require(try await store.claimDueRuns(owner: "node-a", limit: 10, now: Self.t0, leaseUntil: Self.t0 + 30, excluding: []).first?.lease)
        let b = try #require(try await store.claimDueRuns(owner: "node-b", limit: 10, now: Self.t0 + 31, leaseUntil: Self.t0 + 61, excluding: []).first?.lease)

        let attempt = AttemptRecord(runID: runID, endpoint: "erp", startedAt: Self.t0 + 1, status: 200, latencyMillis: 5, response: "ok", error: nil)
        #expect(try await store.finishAttempt(attempt, outcome: .delivered, lease: a) == AttemptWrite(transition: .leaseLost, failingSince: nil))
        #expect(try await store.deferRun(runID: runID, lease: a, until: Self.t0 + 500) == .leaseLost)
        #expect(try await store.pauseRun(runID: runID, lease: a, reason: "disabled") == .leaseLost)
        #expect(try await store.attempts(runID: runID).isEmpty, "a fenced attempt is not recorded")
        #expect(try await store.run(id: runID)?.status == .running)
        #expect(try await store.run(id: runID)?.lease == b)

        let failed = AttemptRecord(runID: runID, endpoint: "erp", startedAt: Self.t0 + 32, status: 500, latencyMillis: 5, response: nil, error: "answered 500")
        #expect(try await store.finishAttempt(failed, outcome: .retry(at: Self.t0 + 40, failures: 1), lease: b).transition == .applied)
        #expect(try await store.attempts(runID: runID).map(\.status) == [500])
        let waiting = try #require(try await store.run(id: runID))
        #expect(waiting.status == .waitingRetry)
        #expect(waiting.lease == nil)
        try await store.close()
    }

    // MARK: in flight

    @Test("a run in flight is not claimed again by the worker that has it, even after its lease lapsed", arguments: StoreBackend.all)
    func inFlightNotClaimedTwice(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let ids = try await Self.enqueue(store, [PlannedRun(automation: "a"), PlannedRun(automation: "b")])
        let first = try await store.claimDueRuns(owner: "node-a", limit: 1, now: Self.t0, leaseUntil: Self.t0 + 30, excluding: [])
        let held = try #require(first.first)
        let other = try #require(ids.first { $0 != held.id })

        // The lease lapsed (renewals failed) while the run is still in flight here.
        let again = try await store.claimDueRuns(owner: "node-a", limit: 10, now: Self.t0 + 31, leaseUntil: Self.t0 + 61, excluding: [held.id])
        #expect(again.map(\.id) == [other], "only the other run; the one in flight is left out")
        #expect(try await store.run(id: held.id)?.lease == held.lease, "its claim is untouched")
        // Another worker may take it over, and is then the one that holds it.
        let taken = try await store.claimDueRuns(owner: "node-b", limit: 10, now: Self.t0 + 31, leaseUntil: Self.t0 + 61, excluding: [])
        #expect(taken.map(\.id) == [held.id])
        try await store.close()
    }

    // MARK: wake-ups

    @Test("wake-ups: an event stored with runs and a queue write that makes a run due signal the store's channel, an endpoint enabled asks for its endpoints to be read again; an event without runs, a duplicate, a claim and a fenced-off write do not", arguments: StoreBackend.all)
    func wakeUps(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let worker = store.wakeUps.subscribe()
        let other = store.wakeUps.subscribe()
        defer {
            store.wakeUps.unsubscribe(worker)
            store.wakeUps.unsubscribe(other)
        }
        /// What a subscriber was woken for by the writes so far. PostgreSQL's wake-ups also arrive by
        /// NOTIFY, after the commit: wait until none has come for a moment.
        func woken(_ signal: WakeSignal) async -> WakeUp {
            guard backend == .postgres else { return signal.take() }
            var kinds = signal.take()
            while true {
                let more = await signal.wait(timeout: .milliseconds(400))
                if more.isEmpty { return kinds }
                kinds.formUnion(more)
            }
        }
        if let postgres = store as? PostgresStore {
            // The listener's first LISTEN wakes everyone once (to catch up on anything missed).
            while postgres.listener?.isListening != true { try await Task.sleep(for: .milliseconds(20)) }
            _ = await woken(worker)
            _ = await woken(other)
        }

        _ = try await Self.enqueue(store, [])
        #expect(await woken(worker).isEmpty, "an event that starts no run wakes nobody")
        let event = NewEvent(source: "open", type: "t", providerID: "p-1", receivedAt: Self.t0, headers: [], body: Array("{}".utf8), automations: [PlannedRun(automation: "a")])
        _ = try await store.ingest(event)
        #expect(await woken(worker) == .runsDue, "an event stored with runs wakes the worker")
        #expect(await woken(other) == .runsDue, "every subscriber is woken")
        let duplicate = NewEvent(source: "open", type: "t", providerID: "p-1", receivedAt: Self.t0, headers: [], body: Array("{}".utf8), automations: [PlannedRun(automation: "a")])
        #expect(try await store.ingest(duplicate).duplicate)
        #expect(await woken(worker).isEmpty, "a duplicate stores no run")

        let runID = try #require(try await store.runs(eventID: event.id, limit: 10).first?.id)
        let lease = try #require(try await store.claimDueRuns(owner: "node-a", limit: 10, now: Self.t0, leaseUntil: Self.t0 + 30, excluding: []).first?.lease)
        #expect(await woken(worker).isEmpty, "a claim makes nothing due")
        #expect(try await store.failStep(runID: runID, attempt: 1, error: "a failed", dueAt: Self.t0 + 5, lease: lease) == .applied)
        #expect(await woken(worker) == .runsDue, "a scheduled retry wakes the worker")
        #expect(try await store.failStep(runID: runID, attempt: 2, error: "stale", dueAt: Self.t0 + 5, lease: lease) == .leaseLost)
        #expect(await woken(worker).isEmpty, "a write under a lost lease changes nothing and wakes nobody")

        let deliveryID = try #require(try await Self.enqueue(store, [.delivery(to: "erp")]).first)
        #expect(await woken(worker) == .runsDue)
        let claimed = try await store.claimDueRuns(owner: "node-a", limit: 10, now: Self.t0 + 1, leaseUntil: Self.t0 + 31, excluding: [])
        let deliveryLease = try #require(claimed.first { $0.id == deliveryID }?.lease)
        #expect(try await store.deferRun(runID: deliveryID, lease: deliveryLease, until: Self.t0 + 2) == .applied)
        #expect(await woken(worker) == .runsDue, "a delivery put back (rate limit, open circuit) wakes the worker")

        // An endpoint enabled: its paused deliveries are due, judged by its new state.
        try await store.saveEndpoint(Endpoint(id: "erp", url: "http://127.0.0.1:9/erp", secrets: [.generate()]), now: Self.t0)
        #expect(try await store.setEndpoint(id: "erp", enabled: false, reason: "test", now: Self.t0))
        #expect(!(await woken(worker)).contains(.runsDue), "disabling makes nothing due (PostgreSQL tells every node's worker to read endpoints again)")
        #expect(try await store.setEndpoint(id: "erp", enabled: true, reason: nil, now: Self.t0))
        #expect(await woken(worker) == [.runsDue, .endpointsChanged], "enabling wakes the worker to read endpoints again")
        try await store.close()
    }

    // MARK: per-key order

    @Test("per-key order with limit 1: runs sharing a key are claimed one at a time, in sequence order", arguments: StoreBackend.all)
    func perKeyOrderLimitOne(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        // Five events for one customer and one for another; later events are due no later than earlier ones.
        var keyed: [String] = []
        for index in 0..<5 {
            keyed += try await Self.enqueue(store, [PlannedRun(automation: "invoice", concurrencyKey: "cus_1", concurrencyLimit: 1)], at: Self.t0 + Double(index) * 0.001)
        }
        let unrelated = try await Self.enqueue(store, [PlannedRun(automation: "invoice", concurrencyKey: "cus_2", concurrencyLimit: 1)], at: Self.t0)
        var order: [String] = []
        var now = Self.t0 + 1
        while order.count < keyed.count {
            let claimed = try await store.claimDueRuns(owner: "node-a", limit: 10, now: now, leaseUntil: now + 30, excluding: [])
            let mine = claimed.filter { keyed.contains($0.id) }
            try #require(mine.count == 1, "exactly one run of the key at a time (claimed \(mine.map(\.id)))")
            if order.isEmpty { #expect(claimed.contains { unrelated.contains($0.id) }, "another key is not held back") }
            order.append(mine[0].id)
            // While it runs, nothing else of the key is handed out.
            #expect(try await store.claimDueRuns(owner: "node-b", limit: 10, now: now, leaseUntil: now + 30, excluding: []).filter { keyed.contains($0.id) }.isEmpty)
            #expect(try await store.completeStep(runID: mine[0].id, stepID: "s", position: 0, output: "{}", finished: true, lease: try #require(mine[0].lease), leaseUntil: now) == .applied)
            now += 1
        }
        #expect(order == keyed)
        try await store.close()
    }

    @Test("per-key order with limit 3: at most three of a key hold a lease, the next starts when one finishes, all in sequence order", arguments: StoreBackend.all)
    func perKeyOrderLimitThree(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        var keyed: [String] = []
        for index in 0..<6 {
            keyed += try await Self.enqueue(store, [PlannedRun(automation: "sync", concurrencyKey: "shop_1", concurrencyLimit: 3)], at: Self.t0 + Double(index) * 0.001)
        }
        let now = Self.t0 + 1
        // A claim starts the earliest waiting run of a key (the next one waits for it to start), so
        // the key's three slots fill over successive claims, in order.
        var running: [RunRecord] = []
        for _ in 0..<3 {
            running += try await store.claimDueRuns(owner: "node-a", limit: 10, now: now, leaseUntil: now + 30, excluding: [])
        }
        #expect(running.map(\.id) == Array(keyed[0..<3]))
        #expect(try await store.claimDueRuns(owner: "node-b", limit: 10, now: now, leaseUntil: now + 30, excluding: []).isEmpty, "three hold a lease: the fourth waits")
        try #require(running.count == 3)
        #expect(try await store.completeStep(runID: running[1].id, stepID: "s", position: 0, output: "{}", finished: true, lease: try #require(running[1].lease), leaseUntil: now) == .applied)
        let next = try await store.claimDueRuns(owner: "node-b", limit: 10, now: now, leaseUntil: now + 30, excluding: [])
        #expect(next.map(\.id) == [keyed[3]])
        #expect(try await store.claimDueRuns(owner: "node-b", limit: 10, now: now, leaseUntil: now + 30, excluding: []).isEmpty)
        try await store.close()
    }

    @Test("per-key order follows the sequence column, not SQLite's rowid")
    func perKeyOrderIgnoresRowid() async throws {
        let folder = try TemporaryFolder.make()
        let path = folder.appendingPathComponent("doorbell.db").path
        let store = try SQLiteEventStore(path: path)
        var keyed: [String] = []
        for index in 0..<4 {
            keyed += try await Self.enqueue(store, [PlannedRun(automation: "invoice", concurrencyKey: "cus_1")], at: Self.t0 + Double(index) * 0.001)
        }
        // Physical order reversed (as a VACUUM or a copy may renumber a table with a text key).
        try await store.pool.write { db in
            try db.execute(sql: "UPDATE runs SET rowid = rowid + 1000")
            try db.execute(sql: "UPDATE runs SET rowid = 2000 - rowid")
        }
        var order: [String] = []
        var now = Self.t0 + 1
        for _ in keyed {
            let claimed = try await store.claimDueRuns(owner: "node-a", limit: 10, now: now, leaseUntil: now + 30, excluding: [])
            let run = try #require(claimed.first)
            #expect(claimed.count == 1)
            order.append(run.id)
            _ = try await store.completeStep(runID: run.id, stepID: "s", position: 0, output: "{}", finished: true, lease: try #require(run.lease), leaseUntil: now)
            now += 1
        }
        #expect(order == keyed)
        try await store.close()
    }

    @Test("a database from before the sequence column migrates: existing runs keep their order and their claims stay fenced")
    func migratesExistingDatabase() async throws {
        let folder = try TemporaryFolder.make()
        let path = folder.appendingPathComponent("doorbell.db").path
        try await SQLiteEventStore(path: path).close()
        // Back to schema v6 as shipped, with queued runs sharing a key, as an older doorbell left them.
        try Python.run("""
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            with db:
                for index in ("runs_created", "runs_event_status", "events_source", "runs_queue"):
                    db.execute(f"DROP INDEX {index}")
                db.execute("CREATE INDEX runs_queue ON runs (status, due_at)")
                db.execute("ALTER TABLE store_probe DROP COLUMN room")
                db.execute("DELETE FROM grdb_migrations WHERE identifier IN ('v11-list-indexes', 'v12-queue-order')")
                db.execute("DROP INDEX runs_seq")
                db.execute("DROP INDEX runs_ordering")
                db.execute("ALTER TABLE runs DROP COLUMN seq")
                db.execute("ALTER TABLE runs DROP COLUMN lease_token")
                db.execute("CREATE INDEX runs_ordering ON runs (automation, concurrency_key, status) WHERE concurrency_key IS NOT NULL")
                db.execute("DELETE FROM grdb_migrations WHERE identifier = 'v7-queue-contract'")
                for i in range(3):
                    db.execute("INSERT INTO events (id, source, type, received_at, headers, body) VALUES (?, 'open', 't', 1, '', X'7B7D')", (f"evt_old_{i}",))
                    db.execute("INSERT INTO runs (id, event_id, automation, status, due_at, created_at, updated_at, concurrency_key, concurrency_limit) "
                               "VALUES (?, ?, 'invoice', 'pending', ?, 1, 1, 'cus_1', 1)", (f"run_old_{i}", f"evt_old_{i}", 3 - i))
            """, [path])
        let store = try SQLiteEventStore(path: path)
        let migrated = try Python.output("""
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            print(" ".join(f"{id}:{token}" for id, token in db.execute("SELECT id, lease_token FROM runs ORDER BY seq")))
            """, [path])
        #expect(migrated == "run_old_0:0 run_old_1:0 run_old_2:0")
        // A run stored after the upgrade comes after them.
        let newer = try #require(try await Self.enqueue(store, [PlannedRun(automation: "invoice", concurrencyKey: "cus_1")], at: Date(timeIntervalSince1970: 0)).first)
        var order: [String] = []
        for step in 0..<4 {
            let now = Self.t0 + Double(step)
            let run = try #require(try await store.claimDueRuns(owner: "node-a", limit: 10, now: now, leaseUntil: now + 30, excluding: []).first)
            #expect(run.lease?.token == 1)
            order.append(run.id)
            #expect(try await store.completeStep(runID: run.id, stepID: "s", position: 0, output: "{}", finished: true, lease: try #require(run.lease), leaseUntil: now) == .applied)
        }
        #expect(order == ["run_old_0", "run_old_1", "run_old_2", newer], "arrival order, although the old runs' due times run backwards")
        try await store.close()
    }

    // MARK: the worker

    static func workerConfig(receiver: String) -> String {
        TestConfigs.standard() + """

        retry: { schedule: [0s, 50ms, 50ms], jitter: 0 }
        automations:
          - id: two-calls
            on: ["open:*"]
            steps:
              - id: first
                http: { method: POST, url: "\(receiver)/first", json: { big: "{{body.big}}" } }
              - id: second
                http: { method: POST, url: "\(receiver)/second", json: { n: 2 } }
        """
    }

    /// A worker on a fresh SQLite store, running until the body returns, its log lines recorded.
    static func withWorker<T>(receiver: Receiver, lease: Double = 60, endpoints: [Endpoint] = [], _ body: (SQLiteEventStore, EventPlanner, RunWorker, LogLines) async throws -> T) async throws -> T {
        let folder = try TemporaryFolder.make()
        let configuration = try ConfigLoader.parse(yaml: workerConfig(receiver: receiver.baseURL), directory: folder.path, environment: [:])
        let store = try SQLiteEventStore(path: folder.appendingPathComponent("doorbell.db").path)
        let lines = LogLines()
        let logger = Logger(label: "queue-contract") { _ in lines.handler() }
        for endpoint in endpoints { try await store.saveEndpoint(endpoint, now: Date()) }
        let planner = EventPlanner(automations: endpoints.isEmpty ? configuration.automations : [], directory: EndpointDirectory(endpoints), sources: configuration.sources)
        let worker = RunWorker(store: store, planner: planner, filesDirectory: folder.appendingPathComponent("files").path, logger: logger, concurrency: 4, lease: lease, outbound: configuration.outbound, retry: configuration.retry)
        let running = Task { try await worker.run() }
        defer { running.cancel() }
        let result = try await body(store, planner, worker, lines)
        running.cancel()
        _ = await running.result
        try await store.close()
        return result
    }

    static func ingest(_ store: SQLiteEventStore, _ planner: EventPlanner, _ worker: RunWorker, body: String = "{}") async throws -> String {
        let event = planner.plan(NewEvent(source: "open", type: "t", providerID: nil, headers: [], body: Array(body.utf8)))
        _ = try await store.ingest(event)
        worker.wake()
        return try #require(try await store.runs(eventID: event.id, limit: 10).first?.id)
    }

    @Test("a worker whose lease was taken over stops the run before its next step and writes nothing more for it")
    func workerAbandonsLostLease() async throws {
        try await Receiver.with { receiver in
            receiver.hold("/first")
            try await Self.withWorker(receiver: receiver) { store, planner, worker, lines in
                let runID = try await Self.ingest(store, planner, worker)
                #expect(try await eventually { receiver.requests("/first").count == 1 })
                // Another node takes the run over once the worker's lease looks expired to it.
                let later = Date().addingTimeInterval(61)
                let other = try #require(try await store.claimDueRuns(owner: "node-b", limit: 10, now: later, leaseUntil: later + 60, excluding: []).first)
                #expect(other.id == runID)
                receiver.release("/first")

                #expect(try await eventually { lines.contains("lease lost for run \(runID), abandoned") })
                #expect(lines.contains("lease lost for run \(runID), abandoned", level: .warning))
                #expect(try await store.stepOutputs(runID: runID).isEmpty, "the worker's result of the first step was not written")
                #expect(receiver.requests("/second").isEmpty, "the worker did not go on to the next step")
                let run = try #require(try await store.run(id: runID))
                #expect(run.lease == other.lease && run.nextStep == 0 && run.status == .running)
                // The node that holds it now carries on.
                #expect(try await store.completeStep(runID: runID, stepID: "first", position: 0, output: "{}", finished: false, lease: try #require(other.lease), leaseUntil: later + 60) == .applied)
            }
        }
    }

    @Test("a delivery whose lease was taken over while it was being sent records no attempt")
    func delivererAbandonsLostLease() async throws {
        try await Receiver.with { receiver in
            receiver.hold("/erp")
            let endpoint = Endpoint(id: "erp", url: receiver.baseURL + "/erp", secrets: [.generate()])
            try await Self.withWorker(receiver: receiver, endpoints: [endpoint]) { store, planner, worker, lines in
                // A received event relayed to the endpoint (as `forward_to` plans it).
                let deliveryID = try #require(try await Self.enqueue(store, [.delivery(to: "erp")], at: Date()).first)
                worker.wake()
                #expect(deliveryID.hasPrefix("dlv_"))
                #expect(try await eventually { receiver.requests("/erp").count == 1 })
                let later = Date().addingTimeInterval(61)
                let other = try #require(try await store.claimDueRuns(owner: "node-b", limit: 10, now: later, leaseUntil: later + 60, excluding: []).first)
                receiver.release("/erp")

                #expect(try await eventually { lines.contains("lease lost for run \(deliveryID), abandoned", level: .warning) })
                #expect(try await store.attempts(runID: deliveryID).isEmpty, "the stale attempt was not recorded")
                #expect(try await store.run(id: deliveryID)?.lease == other.lease)
                let attempt = AttemptRecord(runID: deliveryID, endpoint: "erp", startedAt: later, status: 200, latencyMillis: 1, response: nil, error: nil)
                #expect(try await store.finishAttempt(attempt, outcome: .delivered, lease: try #require(other.lease)).transition == .applied)
                #expect(try await store.run(id: deliveryID)?.status == .succeeded)
            }
        }
    }

    @Test("a storage error while storing a succeeded step is retried as a write: the step is not run again, no attempt is counted")
    func storageErrorAfterStepIsRetriedAsWrite() async throws {
        try await Receiver.with { receiver in
            receiver.hold("/first")
            try await Self.withWorker(receiver: receiver) { store, planner, worker, lines in
                let runID = try await Self.ingest(store, planner, worker)
                #expect(try await eventually { receiver.requests("/first").count == 1 })
                // The database refuses writes (SQLITE_READONLY on the writer connection) just as the step succeeds.
                try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA query_only = 1") }
                receiver.release("/first")
                #expect(try await eventually { lines.count("storing run \(runID) failed; retrying the write") >= 2 }, "the write failed and was retried")
                #expect(try await store.run(id: runID)?.nextStep == 0)
                // Writes work again.
                try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA query_only = 0") }

                #expect(try await eventually { try await store.run(id: runID)?.status == .succeeded })
                let run = try #require(try await store.run(id: runID))
                #expect(run.attempt == 0 && run.lastError == nil, "no failed attempt was counted")
                #expect(receiver.requests("/first").count == 1, "the step was not run again")
                #expect(receiver.requests("/second").count == 1)
                #expect(Set(try await store.stepOutputs(runID: runID).keys) == ["first", "second"])
                #expect(!lines.contains("lease lost"))
            }
        }
    }

    @Test("renewals that keep failing: once the lease lapsed by the worker's clock the run is abandoned unwritten, then claimed again and finished")
    func failedRenewalsAbandonTheRun() async throws {
        try await Receiver.with { receiver in
            receiver.hold("/first")
            // A 3 s lease: on two busy cores a renewal 1 s late must still find the claim unlapsed,
            // or no renewal is even tried and there is no failure to retry.
            try await Self.withWorker(receiver: receiver, lease: 3) { store, planner, worker, lines in
                let runID = try await Self.ingest(store, planner, worker)
                #expect(try await eventually { receiver.requests("/first").count == 1 })
                try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA query_only = 1") }
                #expect(try await eventually(30) { lines.count("lease renewal failed; retrying") >= 2 }, "a failed renewal is retried")
                receiver.release("/first")

                #expect(try await eventually(30) { lines.contains("lease lost for run \(runID), abandoned", level: .warning) })
                #expect(receiver.requests("/second").isEmpty, "no step after the lease lapsed")
                #expect(try await store.stepOutputs(runID: runID).isEmpty, "nothing written for it")
                let abandoned = try #require(try await store.run(id: runID))
                #expect(abandoned.status == .running && abandoned.nextStep == 0)

                // Storage is back: the run's lease has run out, so it is claimed again (a new claim,
                // here by the same worker, which no longer has it in flight) and finishes.
                try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA query_only = 0") }
                #expect(try await eventually { try await store.run(id: runID)?.status == .succeeded })
                #expect(receiver.requests("/first").count == 2, "the abandoned step ran again under the new claim (at least once)")
                #expect(receiver.requests("/second").count == 1)
                #expect(try await store.run(id: runID)?.attempt == 0)
            }
        }
    }

    // MARK: held leases (no I/O)

    @Test("held leases: not renewed by the store means gone for good; lapsed by the worker's clock stops the next step until a fenced write extends it")
    func heldLeases() {
        var held = HeldLeases()
        let a = Lease(owner: "w", token: 1), b = Lease(owner: "w", token: 7)
        held.claimed("run_a", lease: a, until: Self.t0 + 30)
        held.claimed("run_b", lease: b, until: Self.t0 + 30)
        #expect(held.inFlight == ["run_a", "run_b"])
        #expect(held.holds("run_a", now: Self.t0 + 29))
        #expect(!held.holds("run_a", now: Self.t0 + 30), "lapsed locally")
        #expect(!held.isLost("run_a"), "lapsed is not lost: a fenced write may still land")
        #expect(held.renewable(now: Self.t0 + 30).isEmpty, "a lapsed lease is not renewed")
        // A renewal at t0+10 extends run_a; the store left run_b out: lost.
        held.renewed(["run_a": a, "run_b": b], extended: ["run_a"], until: Self.t0 + 70)
        #expect(held.holds("run_a", now: Self.t0 + 60))
        #expect(!held.holds("run_b", now: Self.t0 + 11))
        #expect(held.isLost("run_b"))
        held.extended("run_b", lease: b, until: Self.t0 + 200)
        #expect(!held.holds("run_b", now: Self.t0 + 11), "lost stays lost")
        held.extended("run_a", lease: Lease(owner: "w", token: 2), until: Self.t0 + 200)
        #expect(!held.holds("run_a", now: Self.t0 + 100), "another claim's write does not extend this one")
        held.extended("run_a", lease: a, until: Self.t0 + 200)
        #expect(held.holds("run_a", now: Self.t0 + 100), "a write applied under the claim extended it")
        #expect(held.inFlight == ["run_a", "run_b"], "still in flight until its execution returns")
        held.released("run_b")
        #expect(held.inFlight == ["run_a"])
    }
}

/// Log lines recorded in memory, for checks on what the worker said.
final class LogLines: Sendable {
    private let lines = Mutex<[(Logger.Level, String)]>([])

    func handler() -> some LogHandler { Handler(lines: self) }

    func contains(_ text: String, level: Logger.Level? = nil) -> Bool {
        lines.withLock { $0.contains { $0.1.contains(text) && (level == nil || $0.0 == level) } }
    }

    func count(_ text: String) -> Int { lines.withLock { $0.filter { $0.1.contains(text) }.count } }

    fileprivate func append(_ level: Logger.Level, _ message: String) { lines.withLock { $0.append((level, message)) } }

    private struct Handler: LogHandler {
        let lines: LogLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            lines.append(level, message.description)
        }
    }
}
