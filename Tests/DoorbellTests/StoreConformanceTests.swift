import DoorbellCore
@testable import DoorbellStorage
import Foundation
import Logging
import Synchronization
import Testing

extension StoreBackend {
    /// `count` stores on one fresh database, as `count` nodes (or a node and the commands beside it)
    /// open it. PostgreSQL: each a server store, as every node is. SQLite has one server per file:
    /// the first store is it, the others open the file read-write, as `doorbell prune` or
    /// `doorbell endpoints add` do next to a running server.
    func openShared(_ count: Int, now: @escaping @Sendable () -> Date = { Date() }) async throws -> [any DoorbellStore] {
        switch self {
        case .sqlite:
            let path = try TemporaryFolder.make().appendingPathComponent("doorbell.db").path
            return try (0..<count).map { index in
                try SQLiteEventStore(path: path, access: index == 0 ? .server : .readWrite, now: now)
            }
        case .postgres:
            let url = try await TestPostgres.freshDatabase()
            var stores: [any DoorbellStore] = []
            for index in 0..<count {
                stores.append(try await PostgresStore.open(try PostgresSettings(url: url), logger: Logger(label: "test.node-\(index)"), access: .server, now: now))
            }
            return stores
        }
    }

    /// One fresh store whose clock (what it stamps on transitions) the test sets.
    func open(clock: StorageTestClock) async throws -> any DoorbellStore {
        try await openShared(1, now: clock.now)[0]
    }
}

/// The store contract beyond the queue's races (`QueueContractTests`): dedupe under concurrent
/// ingest, several nodes on one database, rescue after a crash, retries, replay, deliveries,
/// endpoints and retention. Every test runs against every backend, so SQLite and PostgreSQL keep
/// the same promises.
@Suite("Store conformance", .serialized)
struct StoreConformanceTests {
    static let t0 = QueueContractTests.t0
    static let day: Double = 86400

    /// An event of source `open` with the given provider id and planned runs.
    static func event(_ providerID: String?, source: String = "open", at time: Date = t0, runs: [PlannedRun] = []) -> NewEvent {
        NewEvent(source: source, type: "t", providerID: providerID, receivedAt: time, headers: [], body: Array("{}".utf8), automations: runs)
    }

    /// Stores `runs` with a new event; returns the run ids in plan order.
    static func enqueue(_ store: any DoorbellStore, _ runs: [PlannedRun], at time: Date = t0) async throws -> [String] {
        try await QueueContractTests.enqueue(store, runs, at: time)
    }

    /// Claims everything due at `now` for `owner`, leased for a long time.
    static func claim(_ store: any DoorbellStore, _ owner: String = "node-a", at now: Date, limit: Int = 100, leaseUntil: Date? = nil) async throws -> [RunRecord] {
        try await store.claimDueRuns(owner: owner, limit: limit, now: now, leaseUntil: leaseUntil ?? now + 3600, excluding: [])
    }

    /// A delivery attempt to `endpoint` answered with `status`.
    static func attempt(_ runID: String, _ endpoint: String = "erp", at time: Date, status: Int?) -> AttemptRecord {
        AttemptRecord(runID: runID, endpoint: endpoint, startedAt: time, status: status, latencyMillis: 12, response: status.map { "answered \($0)" },
                      error: status == 200 ? nil : "answered \(status.map(String.init) ?? "nothing")")
    }

    static func closeAll(_ stores: [any DoorbellStore]) async throws {
        for store in stores { try await store.close() }
    }

    // MARK: ingest and dedupe

    @Test("concurrent ingest: 300 ingests of 60 provider ids store 60 events, every duplicate names the stored event, each stored event has its runs once; events without a provider id never collide", arguments: StoreBackend.all)
    func concurrentIngestDedupes(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        /// Provider id i plans: nothing, two automations, or a delivery.
        func planned(_ index: Int) -> [PlannedRun] {
            switch index % 3 {
            case 0: []
            case 1: [PlannedRun(automation: "invoice"), PlannedRun(automation: "alert")]
            default: [.delivery(to: "erp")]
            }
        }
        let sent = (0..<300).map { Self.event("pi_\($0 % 60)", runs: planned($0 % 60)) }
        let answers = try await withThrowingTaskGroup(of: (NewEvent, IngestOutcome).self) { group in
            for event in sent { group.addTask { (event, try await store.ingest(event)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(try await store.countEvents(matching: EventQuery(limit: 1000)) == 60)
        let byProviderID = Dictionary(grouping: answers) { $0.0.providerID! }
        #expect(byProviderID.count == 60)
        var plannedRuns = 0
        for (providerID, tries) in byProviderID {
            let firsts = tries.filter { !$0.1.duplicate }
            try #require(firsts.count == 1, "\(providerID): exactly one ingest stores it (\(firsts.count))")
            let stored = firsts[0].0
            #expect(firsts[0].1.id == stored.id)
            #expect(tries.allSatisfy { $0.1.id == stored.id }, "\(providerID): every duplicate answers the stored event's id")
            #expect(try await store.event(id: stored.id)?.event.providerID == providerID)
            let runs = try await store.runs(eventID: stored.id, limit: 100)
            #expect(runs.map(\.automation).sorted() == stored.automations.map(\.automation).sorted(), "\(providerID): its runs, none twice")
            plannedRuns += stored.automations.count
        }
        #expect(try await store.runs(matching: RunQuery(limit: 10_000)).count == plannedRuns, "duplicates planned no runs")

        // The dedupe key is the provider id within its source; without one every event is new.
        #expect(try await !store.ingest(Self.event("pi_0", source: "other")).duplicate)
        let anonymous = try await withThrowingTaskGroup(of: IngestOutcome.self) { group in
            for _ in 0..<40 { group.addTask { try await store.ingest(Self.event(nil)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(anonymous.allSatisfy { !$0.duplicate })
        #expect(Set(anonymous.map(\.id)).count == 40)
        #expect(try await store.countEvents(matching: EventQuery(limit: 1000)) == 101)
        try await store.close()
    }

    // MARK: several nodes on one database

    @Test("events(ids:) answers every stored event asked for, by id, with its body and headers, whether this store just stored it or another node (or a command) did; ids not stored are left out", arguments: StoreBackend.all)
    func eventsByIDs(_ backend: StoreBackend) async throws {
        let stores = try await backend.openShared(2)
        let (node, other) = (stores[0], stores[1])
        var mine = Self.event("pi_mine", at: Date())
        mine.headers = [Header(name: "content-type", value: "application/json")]
        mine.body = Array(#"{"n":1}"#.utf8)
        var theirs = Self.event("pi_theirs", at: Date())
        theirs.body = Array(#"{"n":2}"#.utf8)
        let mineID = try await node.ingest(mine).id
        let theirsID = try await other.ingest(theirs).id
        let found = try await node.events(ids: [mineID, "evt_not_stored", theirsID, mineID])
        #expect(found.keys.sorted() == [mineID, theirsID].sorted())
        #expect(found[mineID]?.event.body == mine.body)
        #expect(found[mineID]?.event.headers == mine.headers)
        #expect(found[theirsID]?.event.body == theirs.body)
        #expect(found[theirsID]?.event.providerID == "pi_theirs")
        #expect(try await node.events(ids: []).isEmpty)
        try await Self.closeAll(stores)
    }

    @Test("two nodes claiming concurrently never claim the same run; after the leases lapse each run is claimed once more with a larger fencing token", arguments: StoreBackend.all)
    func twoNodesNeverClaimTheSameRun(_ backend: StoreBackend) async throws {
        let nodes = try await backend.openShared(2)
        var all: Set<String> = []
        for index in 0..<40 {
            all.formUnion(try await Self.enqueue(nodes[index % 2], (0..<5).map { PlannedRun(automation: "a\($0)") }))
        }
        try #require(all.count == 200)

        /// Each node claims, three at a time, until nothing is due; returns every claim per node.
        func claimRound(at now: Date) async throws -> [[RunRecord]] {
            try await withThrowingTaskGroup(of: (Int, [RunRecord]).self) { group in
                for (index, node) in nodes.enumerated() {
                    group.addTask {
                        var claimed: [RunRecord] = []
                        while true {
                            let batch = try await node.claimDueRuns(owner: "node-\(index)", limit: 3, now: now, leaseUntil: now + 30, excluding: [])
                            if batch.isEmpty { return (index, claimed) }
                            claimed += batch
                        }
                    }
                }
                var perNode: [[RunRecord]] = [[], []]
                for try await (index, claimed) in group { perNode[index] = claimed }
                return perNode
            }
        }
        let first = try await claimRound(at: Self.t0 + 1)
        let a = first[0].map(\.id), b = first[1].map(\.id)
        #expect(a.count + b.count == 200, "no run handed out twice")
        #expect(Set(a).isDisjoint(with: b), "no run claimed by both nodes")
        #expect(Set(a).union(b) == all, "every run claimed")
        for run in first.joined() {
            #expect(run.lease?.owner == (a.contains(run.id) ? "node-0" : "node-1"))
        }
        // Both nodes see the claim as its holder made it.
        let sample = try #require(first[0].first ?? first[1].first)
        #expect(try await nodes[1].run(id: sample.id)?.lease == sample.lease)
        #expect(try await nodes[0].run(id: sample.id)?.lease == sample.lease)

        // Every lease lapses (both workers died): each run is claimed exactly once more, fenced anew.
        let second = try await claimRound(at: Self.t0 + 100)
        let again = second.joined()
        #expect(again.count == 200)
        #expect(Set(again.map(\.id)) == all)
        let firstTokens = Dictionary(uniqueKeysWithValues: first.joined().map { ($0.id, $0.lease!.token) })
        for run in again {
            let token = try #require(run.lease?.token)
            #expect(token > firstTokens[run.id]!, "\(run.id): a new claim has a new, larger token")
        }
        try await Self.closeAll(nodes)
    }

    @Test("per-key order with limit 1 holds across two nodes claiming concurrently: one run of a key at a time, completed in sequence order", arguments: StoreBackend.all)
    func perKeyOrderAcrossNodes(_ backend: StoreBackend) async throws {
        let nodes = try await backend.openShared(2)
        let keys = ["cus_1", "cus_2", "cus_3"]
        var sequence: [String: [String]] = [:]
        var keyOfRun: [String: String] = [:]
        for index in 0..<24 {
            let key = keys[index % keys.count]
            let id = try #require(try await Self.enqueue(nodes[index % 2], [PlannedRun(automation: "invoice", concurrencyKey: key, concurrencyLimit: 1)], at: Self.t0 + Double(index) * 0.001).first)
            sequence[key, default: []].append(id)
            keyOfRun[id] = key
        }

        /// Per key: the run a node is working on, and the order runs were completed in.
        struct Ledger {
            var running: [String: String] = [:]
            var completed: [String: [String]] = [:]
            var overlaps: [String] = []
            var total = 0
        }
        final class Shared: Sendable { let ledger = Mutex(Ledger()) }
        let shared = Shared()
        let runKeys = keyOfRun
        let now = Self.t0 + 1
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, node) in nodes.enumerated() {
                group.addTask {
                    var idleClaims = 0
                    while shared.ledger.withLock({ $0.total }) < runKeys.count {
                        let claimed = try await node.claimDueRuns(owner: "node-\(index)", limit: 2, now: now, leaseUntil: now + 3600, excluding: [])
                        if claimed.isEmpty {
                            // The other node holds every key's current run; look again shortly.
                            idleClaims += 1
                            guard idleClaims < 20_000 else { throw TestFailure("node-\(index) found nothing to claim for too long") }
                            try await Task.sleep(for: .milliseconds(1))
                            continue
                        }
                        for run in claimed {
                            let key = runKeys[run.id]!
                            shared.ledger.withLock { ledger in
                                if let other = ledger.running[key] { ledger.overlaps.append("\(run.id) claimed while \(other) of \(key) ran") }
                                ledger.running[key] = run.id
                            }
                        }
                        for run in claimed {
                            let key = runKeys[run.id]!
                            // Marked done before the completion commits: the next run of the key can
                            // only be claimed after it has.
                            shared.ledger.withLock { ledger in
                                ledger.running[key] = nil
                                ledger.completed[key, default: []].append(run.id)
                                ledger.total += 1
                            }
                            let done = try await node.completeStep(runID: run.id, stepID: "s", position: 0, output: "{}", finished: true, lease: run.lease!, leaseUntil: now + 3600)
                            guard done == .applied else { throw TestFailure("\(run.id): completion not applied") }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let result = shared.ledger.withLock { $0 }
        #expect(result.overlaps.isEmpty, "at most one run of a key at a time")
        for key in keys {
            #expect(result.completed[key] == sequence[key], "\(key): completed in sequence order")
        }
        try await Self.closeAll(nodes)
    }

    // MARK: rescue after a crash

    @Test("rescue after a crash: A stops renewing, its lease expiry is the next due date, B claims the run after it, resumes at the next step and finishes; A's writes are lease-lost", arguments: StoreBackend.all)
    func rescueAfterCrash(_ backend: StoreBackend) async throws {
        let nodes = try await backend.openShared(2)
        let (a, b) = (nodes[0], nodes[1])
        let runID = try #require(try await Self.enqueue(a, [PlannedRun(automation: "invoice")]).first)
        #expect(try await b.nextDueDate() == Self.t0, "a pending run is due at once")

        let claimedByA = try #require(try await a.claimDueRuns(owner: "node-a", limit: 10, now: Self.t0, leaseUntil: Self.t0 + 30, excluding: []).first)
        let leaseA = try #require(claimedByA.lease)
        #expect(try await b.nextDueDate() == Self.t0 + 30, "a running run is due again when its lease expires")
        #expect(try await a.completeStep(runID: runID, stepID: "render", position: 0, output: #"{"path":"a.html"}"#, finished: false, lease: leaseA, leaseUntil: Self.t0 + 30) == .applied)
        #expect(try await a.renewLeases([runID: leaseA], until: Self.t0 + 50) == [runID])
        #expect(try await b.nextDueDate() == Self.t0 + 50, "a renewal moves the expiry")
        #expect(try await Self.claim(b, "node-b", at: Self.t0 + 49).isEmpty, "a live lease is not taken")

        // A crashes: no more renewals. Past the expiry B takes the run over, at the step after A's last.
        let claimedByB = try await Self.claim(b, "node-b", at: Self.t0 + 51, leaseUntil: Self.t0 + 81)
        #expect(claimedByB.map(\.id) == [runID])
        let rescued = try #require(claimedByB.first)
        let leaseB = try #require(rescued.lease)
        #expect(leaseB.owner == "node-b" && leaseB.token > leaseA.token)
        #expect(rescued.nextStep == 1, "the completed step is not run again")
        #expect(try await b.stepOutputs(runID: runID) == ["render": #"{"path":"a.html"}"#])
        #expect(try await a.nextDueDate() == Self.t0 + 81)

        // A comes back: nothing it does lands.
        #expect(try await a.renewLeases([runID: leaseA], until: Self.t0 + 200).isEmpty)
        #expect(try await a.completeStep(runID: runID, stepID: "mail", position: 1, output: #"{"by":"a"}"#, finished: true, lease: leaseA, leaseUntil: Self.t0 + 200) == .leaseLost)
        #expect(try await a.failStep(runID: runID, attempt: 1, error: "late", dueAt: nil, lease: leaseA) == .leaseLost)

        #expect(try await b.completeStep(runID: runID, stepID: "mail", position: 1, output: #"{"by":"b"}"#, finished: true, lease: leaseB, leaseUntil: Self.t0 + 81) == .applied)
        let done = try #require(try await a.run(id: runID))
        #expect(done.status == .succeeded && done.nextStep == 2)
        #expect(try await a.stepOutputs(runID: runID) == ["render": #"{"path":"a.html"}"#, "mail": #"{"by":"b"}"#])
        #expect(try await a.nextDueDate() == nil, "nothing left to wake for")
        try await Self.closeAll(nodes)
    }

    // MARK: retries and dead runs

    @Test("a failed step waits for its retry (not claimable before its time, claimable at it with its attempt count and step kept); a step failed for good is dead and never claimed", arguments: StoreBackend.all)
    func retriesAndDead(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let ids = try await Self.enqueue(store, [PlannedRun(automation: "retried"), PlannedRun(automation: "buried")])
        let claimed = try await Self.claim(store, at: Self.t0)
        let retried = try #require(claimed.first { $0.id == ids[0] }), buried = try #require(claimed.first { $0.id == ids[1] })

        #expect(try await store.completeStep(runID: retried.id, stepID: "render", position: 0, output: "{}", finished: false, lease: retried.lease!, leaseUntil: Self.t0 + 3600) == .applied)
        #expect(try await store.failStep(runID: retried.id, attempt: 1, error: "CRM answered 503", dueAt: Self.t0 + 300, lease: retried.lease!) == .applied)
        #expect(try await store.failStep(runID: buried.id, attempt: 3, error: "CRM answered 400", dueAt: nil, lease: buried.lease!) == .applied)

        let waiting = try #require(try await store.run(id: retried.id))
        #expect(waiting.status == .waitingRetry)
        #expect(waiting.attempt == 1 && waiting.nextStep == 1 && waiting.dueAt == Self.t0 + 300 && waiting.lastError == "CRM answered 503" && waiting.lease == nil)
        let dead = try #require(try await store.run(id: buried.id))
        #expect(dead.status == .dead && dead.attempt == 3 && dead.lastError == "CRM answered 400" && dead.lease == nil)
        #expect(try await store.nextDueDate() == Self.t0 + 300, "the retry's time, not the dead run")

        #expect(try await Self.claim(store, at: Self.t0 + 299.999).isEmpty, "not before its time")
        let due = try await Self.claim(store, at: Self.t0 + 300)
        #expect(due.map(\.id) == [retried.id], "at its time, and only it")
        #expect(due.first?.attempt == 1 && due.first?.nextStep == 1, "the attempt count and the failed step are kept")

        // Its attempts used up: dead too. Nothing is ever due again.
        #expect(try await store.failStep(runID: retried.id, attempt: 2, error: "CRM answered 503", dueAt: nil, lease: try #require(due.first?.lease)) == .applied)
        #expect(try await store.nextDueDate() == nil)
        #expect(try await Self.claim(store, at: Self.t0 + 365 * Self.day).isEmpty, "dead runs are never claimed")
        #expect(try await store.runs(matching: RunQuery(statuses: [.dead])).count == 2)
        try await store.close()
    }

    // MARK: replay

    @Test("replay: a dead run resumes at its failed step with its outputs, from the start resets it, running, pending and waiting runs are never touched, the count is what changed; startRun creates a run once", arguments: StoreBackend.all)
    func replay(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let event = Self.event(nil, runs: ["failed", "finished", "busy", "retrying"].map { PlannedRun(automation: $0) })
        _ = try await store.ingest(event)
        let claimed = try await Self.claim(store, at: Self.t0)
        func claim(_ automation: String) throws -> RunRecord { try #require(claimed.first { $0.automation == automation }) }
        let failed = try claim("failed"), finished = try claim("finished"), busy = try claim("busy"), retrying = try claim("retrying")
        #expect(try await store.completeStep(runID: failed.id, stepID: "render", position: 0, output: #"{"path":"x"}"#, finished: false, lease: failed.lease!, leaseUntil: Self.t0 + 3600) == .applied)
        #expect(try await store.failStep(runID: failed.id, attempt: 10, error: "gave up", dueAt: nil, lease: failed.lease!) == .applied)
        #expect(try await store.completeStep(runID: finished.id, stepID: "render", position: 0, output: "{}", finished: true, lease: finished.lease!, leaseUntil: Self.t0 + 3600) == .applied)
        #expect(try await store.failStep(runID: retrying.id, attempt: 1, error: "503", dueAt: Self.t0 + 600, lease: retrying.lease!) == .applied)
        let pendingID = try #require(try await Self.enqueue(store, [PlannedRun(automation: "failed")]).first)
        let untouched = [busy.id, retrying.id, pendingID]
        func snapshot(_ ids: [String]) async throws -> [RunRecord?] {
            var records: [RunRecord?] = []
            for id in ids { records.append(try await store.run(id: id)) }
            return records
        }
        let before = try await snapshot(untouched)

        // Nothing a worker holds or that waits to run is replayed, even when asked for by status.
        #expect(try await store.replay(matching: RunQuery(statuses: [.running, .pending, .waitingRetry]), fromStart: false, now: Self.t0 + 10) == 0)
        #expect(try await store.replay(matching: RunQuery(automation: "busy"), fromStart: true, now: Self.t0 + 10) == 0)

        // Dead only by default: the failed run, at its failed step, outputs kept.
        #expect(try await store.replay(matching: RunQuery(eventID: event.id), fromStart: false, now: Self.t0 + 10) == 1)
        let resumed = try #require(try await store.run(id: failed.id))
        #expect(resumed.status == .pending && resumed.nextStep == 1 && resumed.attempt == 0 && resumed.lastError == nil && resumed.dueAt == Self.t0 + 10)
        #expect(try await store.stepOutputs(runID: failed.id) == ["render": #"{"path":"x"}"#])
        #expect(try await store.run(id: finished.id)?.status == .succeeded, "a succeeded run is replayed only from the start")
        #expect(try await snapshot(untouched) == before)
        let again = try await Self.claim(store, at: Self.t0 + 10)
        #expect(Set(again.map(\.id)) == [failed.id, pendingID])
        #expect(again.first { $0.id == failed.id }?.nextStep == 1, "the worker resumes at the failed step")
        let lease = try #require(again.first { $0.id == failed.id }?.lease)
        #expect(try await store.failStep(runID: failed.id, attempt: 10, error: "gave up", dueAt: nil, lease: lease) == .applied)

        // From the start: dead and succeeded runs of the event begin again at step one.
        let pendingLease = try #require(again.first { $0.id == pendingID }?.lease)
        let beforeFromStart = try await snapshot([busy.id, retrying.id])
        #expect(try await store.replay(matching: RunQuery(eventID: event.id), fromStart: true, now: Self.t0 + 20) == 2)
        for id in [failed.id, finished.id] {
            let run = try #require(try await store.run(id: id))
            #expect(run.status == .pending && run.nextStep == 0 && run.dueAt == Self.t0 + 20, "\(id) starts over")
        }
        #expect(try await snapshot([busy.id, retrying.id]) == beforeFromStart)
        #expect(try await store.run(id: pendingID)?.lease == pendingLease, "another event's run is not touched")

        // startRun: once per event and automation, only for an event that exists.
        #expect(try await !store.startRun(eventID: event.id, automation: "failed", now: Self.t0 + 30))
        #expect(try await store.startRun(eventID: event.id, automation: "added-later", now: Self.t0 + 30))
        #expect(try await !store.startRun(eventID: event.id, automation: "added-later", now: Self.t0 + 31))
        #expect(try await !store.startRun(eventID: "evt_missing", automation: "added-later", now: Self.t0 + 30))
        let runs = try await store.runs(eventID: event.id, limit: 100)
        #expect(runs.map(\.automation).sorted() == ["added-later", "busy", "failed", "finished", "retrying"])
        #expect(runs.first { $0.automation == "added-later" }.map { $0.status == .pending && $0.nextStep == 0 } == true)
        try await store.close()
    }

    // MARK: deliveries and attempts

    @Test("attempts are numbered 1, 2, 3 per delivery and read oldest first; failing-since is set by the first failure, kept, and cleared by a delivery; dead, retry and paused move the delivery as named", arguments: StoreBackend.all)
    func deliveriesAndAttempts(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        for id in ["erp", "crm"] {
            try await store.saveEndpoint(Endpoint(id: id, url: "https://\(id).example.com/hooks", secrets: [.generate()]), now: Self.t0)
        }
        let first = try #require(try await Self.enqueue(store, [.delivery(to: "erp")]).first)

        var run = try #require(try await Self.claim(store, at: Self.t0).first)
        var write = try await store.finishAttempt(Self.attempt(first, at: Self.t0 + 1, status: 500), outcome: .retry(at: Self.t0 + 10, failures: 1), lease: run.lease!)
        #expect(write == AttemptWrite(transition: .applied, failingSince: Self.t0 + 1), "the first failure starts the streak")
        let waiting = try #require(try await store.run(id: first))
        #expect(waiting.status == .waitingRetry && waiting.attempt == 1 && waiting.dueAt == Self.t0 + 10 && waiting.lastError == "answered 500" && waiting.lease == nil)
        #expect(try await Self.claim(store, at: Self.t0 + 9).isEmpty)

        run = try #require(try await Self.claim(store, at: Self.t0 + 10).first)
        write = try await store.finishAttempt(Self.attempt(first, at: Self.t0 + 11, status: nil), outcome: .retry(at: Self.t0 + 20, failures: 2), lease: run.lease!)
        #expect(write.failingSince == Self.t0 + 1, "a later failure keeps the streak's start")
        run = try #require(try await Self.claim(store, at: Self.t0 + 20).first)
        write = try await store.finishAttempt(Self.attempt(first, at: Self.t0 + 21, status: 200), outcome: .delivered, lease: run.lease!)
        #expect(write == AttemptWrite(transition: .applied, failingSince: nil))
        let delivered = try #require(try await store.run(id: first))
        #expect(delivered.status == .succeeded && delivered.lease == nil)

        let attempts = try await store.attempts(runID: first)
        #expect(attempts.map(\.number) == [1, 2, 3])
        #expect(attempts.map(\.startedAt) == [Self.t0 + 1, Self.t0 + 11, Self.t0 + 21])
        #expect(attempts.map(\.status) == [500, nil, 200])
        #expect(attempts.first == AttemptRecord(runID: first, number: 1, endpoint: "erp", startedAt: Self.t0 + 1, status: 500, latencyMillis: 12, response: "answered 500", error: "answered 500"))

        // A new failure after the delivery starts a new streak; used-up attempts bury the delivery.
        let second = try #require(try await Self.enqueue(store, [.delivery(to: "erp")], at: Self.t0 + 29).first)
        run = try #require(try await Self.claim(store, at: Self.t0 + 29).first)
        write = try await store.finishAttempt(Self.attempt(second, at: Self.t0 + 30, status: 502), outcome: .retry(at: Self.t0 + 40, failures: 1), lease: run.lease!)
        #expect(write.failingSince == Self.t0 + 30, "the delivered attempt ended the earlier streak")
        run = try #require(try await Self.claim(store, at: Self.t0 + 40).first)
        write = try await store.finishAttempt(Self.attempt(second, at: Self.t0 + 41, status: 502), outcome: .dead(failures: 2), lease: run.lease!)
        #expect(write == AttemptWrite(transition: .applied, failingSince: Self.t0 + 30))
        let dead = try #require(try await store.run(id: second))
        #expect(dead.status == .dead && dead.attempt == 2 && dead.lastError == "answered 502")
        #expect(try await store.attempts(runID: second).map(\.number) == [1, 2], "numbered per delivery")

        // 410 Gone: paused until the endpoint is enabled, never claimed meanwhile.
        let third = try #require(try await Self.enqueue(store, [.delivery(to: "erp")], at: Self.t0 + 49).first)
        run = try #require(try await Self.claim(store, at: Self.t0 + 49).first)
        write = try await store.finishAttempt(Self.attempt(third, at: Self.t0 + 50, status: 410), outcome: .paused, lease: run.lease!)
        #expect(write.transition == .applied)
        #expect(try await store.run(id: third)?.status == .paused)

        // Another endpoint's attempts are its own.
        let other = try #require(try await Self.enqueue(store, [.delivery(to: "crm")], at: Self.t0 + 14).first)
        run = try #require(try await Self.claim(store, at: Self.t0 + 60).first)
        #expect(run.id == other)
        write = try await store.finishAttempt(Self.attempt(other, "crm", at: Self.t0 + 15, status: 200), outcome: .delivered, lease: run.lease!)
        #expect(write == AttemptWrite(transition: .applied, failingSince: nil))
        #expect(try await Self.claim(store, at: Self.t0 + 365 * Self.day).isEmpty, "dead and paused deliveries are not claimed")

        #expect(try await store.attemptTimes(endpoint: "erp", since: Self.t0 + 11) == [11, 21, 30, 41, 50].map { Self.t0 + Double($0) })
        #expect(try await store.attemptTimes(endpoint: "crm", since: Self.t0) == [Self.t0 + 15])
        #expect(try await store.attemptTimes(endpoint: "erp", since: Self.t0 + 51).isEmpty)
        try await store.close()
    }

    // MARK: endpoints

    @Test("an endpoint's settings round trip: secrets with their expiry, headers, rate limit, retry schedule, disabled reason; endpoints() lists them by id; saving again replaces them", arguments: StoreBackend.all)
    func endpointRoundTrip(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let erp = Endpoint(
            id: "erp", url: "https://erp.example.com/hooks", events: ["order.*", "invoice.paid"],
            secrets: [.generate(), EndpointSecret(secret: EndpointSecret.generate().secret, expiresAt: Self.t0 + 3600)],
            rateLimit: RateLimit(count: 10, window: 60), headers: ["X-Tenant": "acme", "Authorization": "Bearer t"],
            description: "the ERP", retry: RetryPolicy(schedule: [0, 5, 60], jitter: 0.1)
        )
        let crm = Endpoint(id: "crm", url: "http://127.0.0.1:9/crm", secrets: [.generate()], enabled: false, disabledReason: "410 Gone", fromConfig: true)
        try await store.saveEndpoint(erp, now: Self.t0)
        try await store.saveEndpoint(crm, now: Self.t0)
        #expect(try await store.endpoint(id: "erp") == erp)
        #expect(try await store.endpoint(id: "crm") == crm)
        #expect(try await store.endpoint(id: "missing") == nil)
        #expect(try await store.endpoints() == [crm, erp])

        var changed = erp
        changed.url = "https://erp.example.com/v2/hooks"
        changed.events = ["*"]
        changed.rateLimit = nil
        changed.headers = [:]
        changed.retry = nil
        try await store.saveEndpoint(changed, now: Self.t0 + 1)
        #expect(try await store.endpoint(id: "erp") == changed)
        #expect(try await store.endpoints().count == 2)
        try await store.close()
    }

    @Test("syncConfigured: a generated secret is kept across restarts, a changed secret keeps the old one for the overlap, a runtime disable survives, an endpoint left out of the file goes", arguments: StoreBackend.all)
    func syncConfigured(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let declared = [
            Endpoint(id: "erp", url: "https://erp.example.com/hooks", fromConfig: true),
            Endpoint(id: "crm", url: "https://crm.example.com/hooks", fromConfig: true),
        ]
        try await store.syncConfigured(declared, overlap: 3600, now: Self.t0)
        let generated = try #require(try await store.endpoint(id: "erp")?.secrets)
        #expect(generated.count == 1 && generated[0].expiresAt == nil && EndpointSecret.looksValid(generated[0].secret))
        try await store.syncConfigured(declared, overlap: 3600, now: Self.t0 + 60)
        #expect(try await store.endpoint(id: "erp")?.secrets == generated, "kept across a restart")

        // The file now names a secret: it signs, and the generated one keeps signing for the overlap.
        let fileSecret = EndpointSecret.generate()
        var withSecret = declared
        withSecret[0].secrets = [fileSecret]
        try await store.syncConfigured(withSecret, overlap: 3600, now: Self.t0 + 100)
        let rotated = try #require(try await store.endpoint(id: "erp"))
        #expect(rotated.secrets == [fileSecret, EndpointSecret(secret: generated[0].secret, expiresAt: Self.t0 + 3700)])
        #expect(rotated.signingSecrets(now: Self.t0 + 3699) == [fileSecret.secret, generated[0].secret])
        #expect(rotated.signingSecrets(now: Self.t0 + 3700) == [fileSecret.secret])

        // A disable decided at runtime outlives the next start; an endpoint left out of the file goes.
        #expect(try await store.disableIfEnabled(id: "crm", reason: "410 Gone", now: Self.t0 + 200))
        try await store.syncConfigured(withSecret, overlap: 3600, now: Self.t0 + 300)
        let crm = try #require(try await store.endpoint(id: "crm"))
        #expect(!crm.enabled && crm.disabledReason == "410 Gone")
        try await store.syncConfigured([withSecret[0]], overlap: 3600, now: Self.t0 + 400)
        #expect(try await store.endpoint(id: "crm") == nil)
        #expect(try await store.endpoints().map(\.id) == ["erp"])
        try await store.close()
    }

    @Test("nodes starting together: syncConfigured run at once from three stores on one database generates one secret per endpoint, which every node reads", arguments: StoreBackend.all)
    func syncConfiguredAcrossNodes(_ backend: StoreBackend) async throws {
        let nodes = try await backend.openShared(3)
        let declared = (1...5).map { Endpoint(id: "hook-\($0)", url: "https://hooks.example.com/\($0)", fromConfig: true) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for node in nodes { group.addTask { try await node.syncConfigured(declared, overlap: 3600, now: Self.t0) } }
            try await group.waitForAll()
        }
        for endpoint in declared {
            var seen: [[EndpointSecret]] = []
            for node in nodes { seen.append(try #require(try await node.endpoint(id: endpoint.id)).secrets) }
            #expect(seen[0].count == 1, "\(endpoint.id): one secret, not one per node")
            #expect(seen.allSatisfy { $0 == seen[0] }, "\(endpoint.id): every node signs with the same secret")
        }
        try await Self.closeAll(nodes)
    }

    @Test("disableIfEnabled called concurrently from two nodes answers true exactly once", arguments: StoreBackend.all)
    func disableOnceAcrossNodes(_ backend: StoreBackend) async throws {
        let nodes = try await backend.openShared(2)
        try await nodes[0].saveEndpoint(Endpoint(id: "erp", url: "https://erp.example.com/hooks", secrets: [.generate()]), now: Self.t0)
        let answers = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<10 {
                group.addTask { try await nodes[index % 2].disableIfEnabled(id: "erp", reason: "410 Gone from node-\(index % 2)", now: Self.t0 + 1) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.filter { $0 }.count == 1, "the disable is announced once")
        let endpoint = try #require(try await nodes[1].endpoint(id: "erp"))
        #expect(!endpoint.enabled && endpoint.disabledReason?.hasPrefix("410 Gone") == true)
        #expect(try await !nodes[0].disableIfEnabled(id: "missing", reason: "x", now: Self.t0))
        try await Self.closeAll(nodes)
    }

    @Test("disabling an endpoint pauses its waiting deliveries (not the one in flight, not another endpoint's); enabling puts them back as pending, due now", arguments: StoreBackend.all)
    func disableAndEnableEndpoint(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        for id in ["erp", "crm"] {
            try await store.saveEndpoint(Endpoint(id: id, url: "https://\(id).example.com/hooks", secrets: [.generate()]), now: Self.t0)
        }
        let inFlight = try #require(try await Self.enqueue(store, [.delivery(to: "erp")]).first)
        let retrying = try #require(try await Self.enqueue(store, [.delivery(to: "erp")]).first)
        let claimed = try await Self.claim(store, at: Self.t0)
        let retryLease = try #require(claimed.first { $0.id == retrying }?.lease)
        #expect(try await store.finishAttempt(Self.attempt(retrying, at: Self.t0 + 1, status: 500), outcome: .retry(at: Self.t0 + 5, failures: 1), lease: retryLease).transition == .applied)
        let pending = try #require(try await Self.enqueue(store, [.delivery(to: "erp")], at: Self.t0 + 2).first)
        let elsewhere = try #require(try await Self.enqueue(store, [.delivery(to: "crm")], at: Self.t0 + 2).first)

        #expect(try await store.setEndpoint(id: "erp", enabled: false, reason: "a person", now: Self.t0 + 3))
        let disabled = try #require(try await store.endpoint(id: "erp"))
        #expect(!disabled.enabled && disabled.disabledReason == "a person")
        #expect(try await store.run(id: retrying)?.status == .paused)
        #expect(try await store.run(id: pending)?.status == .paused)
        #expect(try await store.run(id: inFlight)?.status == .running, "the one in flight finishes (or is parked) by its worker")
        #expect(try await store.run(id: elsewhere)?.status == .pending)
        #expect(try await Self.claim(store, at: Self.t0 + 10).map(\.id) == [elsewhere], "paused deliveries are not claimed")

        #expect(try await store.setEndpoint(id: "erp", enabled: true, reason: nil, now: Self.t0 + 20))
        let enabled = try #require(try await store.endpoint(id: "erp"))
        #expect(enabled.enabled && enabled.disabledReason == nil)
        for id in [retrying, pending] {
            let run = try #require(try await store.run(id: id))
            #expect(run.status == .pending && run.dueAt == Self.t0 + 20, "\(id) is due again")
        }
        #expect(Set(try await Self.claim(store, at: Self.t0 + 20).map(\.id)) == [retrying, pending])
        #expect(try await !store.setEndpoint(id: "missing", enabled: true, reason: nil, now: Self.t0))
        try await store.close()
    }

    @Test("rotateSecret makes the new secret current and keeps the old one until the overlap ends; deleteEndpoint removes it once", arguments: StoreBackend.all)
    func rotateAndDelete(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let first = EndpointSecret.generate(), second = EndpointSecret.generate(), third = EndpointSecret.generate()
        try await store.saveEndpoint(Endpoint(id: "erp", url: "https://erp.example.com/hooks", secrets: [first]), now: Self.t0)

        let rotated = try #require(try await store.rotateSecret(endpointID: "erp", to: second, overlap: 3600, now: Self.t0))
        #expect(rotated.secrets == [second, EndpointSecret(secret: first.secret, expiresAt: Self.t0 + 3600)])
        #expect(try await store.endpoint(id: "erp") == rotated, "stored as answered")
        #expect(rotated.signingSecrets(now: Self.t0 + 3599) == [second.secret, first.secret])
        #expect(rotated.signingSecrets(now: Self.t0 + 3600) == [second.secret])

        // Rotated again after the overlap: the expired secret is dropped.
        let again = try #require(try await store.rotateSecret(endpointID: "erp", to: third, overlap: 600, now: Self.t0 + 7200))
        #expect(again.secrets == [third, EndpointSecret(secret: second.secret, expiresAt: Self.t0 + 7800)])
        #expect(try await store.rotateSecret(endpointID: "missing", to: third, overlap: 600, now: Self.t0) == nil)

        #expect(try await store.deleteEndpoint(id: "erp"))
        #expect(try await store.endpoint(id: "erp") == nil)
        #expect(try await !store.deleteEndpoint(id: "erp"))
        try await store.close()
    }

    // MARK: pruning

    @Test("prune: old events, finished runs, old attempts and expired dedupe keys go, unfinished work stays, a pruned provider id within the dedupe window is still a duplicate; a dry run counts what the prune then deletes", arguments: StoreBackend.all)
    func prune(_ backend: StoreBackend) async throws {
        let clock = StorageTestClock()
        let store = try await backend.open(clock: clock)
        let day = Self.day
        let policy = RetentionPolicy(events: 10 * day, runs: 5 * day, attempts: 2 * day, dedupeWindow: 20 * day)
        var allRuns: Set<String> = []
        /// Stores an event at `t0 + days` (the clock moved there), with one run per automation.
        func received(_ providerID: String?, days: Double, runs: [PlannedRun] = []) async throws -> (event: NewEvent, runs: [String]) {
            clock.advance(by: (Self.t0 + days * day).timeIntervalSince(clock.now()))
            let event = Self.event(providerID, at: clock.now(), runs: runs)
            _ = try await store.ingest(event)
            let runs = try await store.runs(eventID: event.id, limit: 10).map(\.id)
            allRuns.formUnion(runs)
            return (event, runs)
        }
        /// Claims `runID` alone, now (the other runs stay as they are).
        func claim(_ runID: String) async throws -> RunRecord {
            let now = clock.now()
            let claimed = try await store.claimDueRuns(owner: "node-a", limit: 10, now: now, leaseUntil: now + 60, excluding: allRuns.subtracting([runID]))
            return try #require(claimed.first { $0.id == runID })
        }
        /// Claims the run now and finishes it with one step.
        func finish(_ runID: String) async throws {
            let run = try await claim(runID)
            #expect(try await store.completeStep(runID: runID, stepID: "s", position: 0, output: "{}", finished: true, lease: run.lease!, leaseUntil: clock.now() + 60) == .applied)
        }
        /// Claims the delivery now and records one attempt with `outcome`.
        func deliver(_ runID: String, _ outcome: AttemptOutcome, status: Int) async throws {
            let run = try await claim(runID)
            #expect(try await store.finishAttempt(Self.attempt(runID, at: clock.now(), status: status), outcome: outcome, lease: run.lease!).transition == .applied)
        }

        // In arrival order, as events come (a prune walks them so).
        let ancient = try await received("p-ancient", days: -10)  // older than the dedupe window: forgotten
        let old = try await received("p-old", days: 0, runs: [PlannedRun(automation: "a")])
        try await finish(old.runs[0])
        let busy = try await received("p-busy", days: 0, runs: [PlannedRun(automation: "a")])  // its run never ran
        let middle = try await received(nil, days: 3, runs: [PlannedRun(automation: "a")])
        try await finish(middle.runs[0])  // finished 9 days before the prune: the run goes, its event stays
        let sent = try await received(nil, days: 9, runs: [.delivery(to: "erp")])
        try await deliver(sent.runs[0], .delivered, status: 200)  // its attempt is 3 days old at the prune
        let retrying = try await received(nil, days: 9, runs: [.delivery(to: "erp")])
        try await deliver(retrying.runs[0], .retry(at: Self.t0 + 100 * day, failures: 1), status: 500)
        let recent = try await received(nil, days: 11, runs: [PlannedRun(automation: "a")])
        try await finish(recent.runs[0])

        let now = Self.t0 + 12 * day
        var expected = PruneCounts()
        expected.events = 2  // ancient, old
        expected.runs = 2  // old's (with its event), middle's (finished long ago)
        expected.stepOutputs = 2
        expected.attempts = 1  // sent's; retrying's delivery is unfinished
        expected.dedupeKeysKept = 1  // p-old, 12 days old, within the 20-day window
        let dryRun = try await store.prune(policy, now: now, dryRun: true, batchSize: 2)
        #expect(dryRun == expected)
        #expect(try await store.countEvents(matching: EventQuery(limit: 100)) == 7, "a dry run deletes nothing")
        #expect(try await store.prune(policy, now: now, dryRun: false, batchSize: 2) == dryRun, "the prune deletes what the dry run counted")
        #expect(try await store.prune(policy, now: now, dryRun: true, batchSize: 2) == PruneCounts(), "nothing left to prune")

        #expect(try await store.event(id: ancient.event.id) == nil, "a pruned event is not found, not even among the events this store stored recently")
        #expect(try await store.event(id: old.event.id) == nil)
        #expect(try await store.run(id: old.runs[0]) == nil)
        #expect(try await store.run(id: busy.runs[0])?.status == .pending, "unfinished work stays, with its event")
        #expect(try await store.event(id: busy.event.id) != nil)
        #expect(try await store.event(id: middle.event.id) != nil)
        #expect(try await store.run(id: middle.runs[0]) == nil)
        #expect(try await store.stepOutputs(runID: middle.runs[0]).isEmpty)
        #expect(try await store.run(id: sent.runs[0])?.status == .succeeded, "a recent delivery stays")
        #expect(try await store.attempts(runID: sent.runs[0]).isEmpty, "its old attempt went")
        #expect(try await store.attempts(runID: retrying.runs[0]).count == 1, "an unfinished delivery keeps its attempts")
        #expect(try await store.run(id: recent.runs[0])?.status == .succeeded)
        #expect(try await store.countEvents(matching: EventQuery(limit: 100)) == 5)
        #expect(Set(try await store.events(matching: EventQuery(limit: 100)).map(\.event.id)).isDisjoint(with: [ancient.event.id, old.event.id]))

        // A provider's late retry of the pruned event is still a duplicate of it; past the window it is new.
        let lateRetry = try await store.ingest(Self.event("p-old", at: now))
        #expect(lateRetry == IngestOutcome(id: old.event.id, duplicate: true))
        #expect(try await !store.ingest(Self.event("p-ancient", at: now)).duplicate)

        let later = Self.t0 + 21 * day
        let expired = try await store.prune(policy, now: later, dryRun: true, batchSize: 2)
        #expect(expired.dedupeKeysExpired == 1, "p-old's key is older than the window now")
        #expect(try await store.prune(policy, now: later, dryRun: false, batchSize: 2) == expired)
        #expect(try await !store.ingest(Self.event("p-old", at: later)).duplicate)
        try await store.close()
    }
    // MARK: hostile text

    @Test("hostile text: a NUL character in an event type, provider id, concurrency key, step output, error or a receiver's answer is stored (PostgreSQL refuses NUL in text) and never fails the writes around it", arguments: StoreBackend.all)
    func hostileText(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let nul = "\u{0}"
        var keyed = PlannedRun(automation: "a", concurrencyKey: "cust\(nul)1")
        keyed.concurrencyLimit = 1
        var hostile = Self.event("p\(nul)1", runs: [keyed, .delivery(to: "erp")])
        hostile.type = "order\(nul).created"
        let ringing = hostile
        // In one group commit with ordinary events: each is stored.
        let outcomes = try await withThrowingTaskGroup(of: IngestOutcome.self) { group in
            group.addTask { try await store.ingest(ringing) }
            for index in 0..<20 { group.addTask { try await store.ingest(Self.event("plain-\(index)")) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.count == 21 && outcomes.allSatisfy { !$0.duplicate })
        #expect(try await store.ingest(hostile).duplicate, "the same hostile provider id dedupes")
        let stored = try #require(try await store.event(id: hostile.id))
        #expect(stored.event.type.hasPrefix("order") && stored.event.type.hasSuffix(".created"))

        let claimed = try await Self.claim(store, at: Self.t0)
        let run = try #require(claimed.first { $0.automation == "a" })
        let delivery = try #require(claimed.first { $0.endpoint == "erp" })
        #expect(try await store.completeStep(runID: run.id, stepID: "s1", position: 0, output: "{\"v\":\"x\(nul)y\"}", finished: false, lease: try #require(run.lease), leaseUntil: Self.t0 + 60) == .applied)
        #expect(try await store.failStep(runID: run.id, attempt: 1, error: "boom\(nul)", dueAt: Self.t0 + 5, lease: try #require(run.lease)) == .applied)
        var answer = Self.attempt(delivery.id, at: Self.t0, status: 200)
        answer.response = "\u{1F}\u{8B}\(nul)\(nul)binary"
        #expect(try await store.finishAttempt(answer, outcome: .delivered, lease: try #require(delivery.lease)).transition == .applied, "a receiver's binary 2xx answer is recorded, not retried forever")
        #expect(try await store.attempts(runID: delivery.id).count == 1)
        #expect(try await store.stepOutputs(runID: run.id).keys.sorted() == ["s1"])
        try await store.close()
    }
}
