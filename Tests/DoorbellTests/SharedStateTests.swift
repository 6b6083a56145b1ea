import DoorbellCore
@testable import DoorbellStorage
import Foundation
import Logging
import Testing

/// State every node must agree on, on both backends: the lease that picks the one node doing
/// singleton work, and the sends counted against an endpoint's rate limit.
@Suite("Shared node state")
struct SharedStateTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    /// Two stores on one database, as two nodes have.
    static func twoNodes(_ backend: StoreBackend) async throws -> (any DoorbellStore, any DoorbellStore) {
        switch backend {
        case .sqlite:
            let path = try TemporaryFolder.make().appendingPathComponent("doorbell.db").path
            return (try SQLiteEventStore(path: path), try SQLiteEventStore(path: path, access: .readWrite))
        case .postgres:
            let settings = try PostgresSettings(url: try await TestPostgres.freshDatabase())
            return (try await PostgresStore.open(settings, logger: Logger(label: "a"), access: .server),
                    try await PostgresStore.open(settings, logger: Logger(label: "b"), access: .server))
        }
    }

    @Test("leader lease: one holder at a time, kept by renewing, taken over only once it lapsed", arguments: StoreBackend.all)
    func leaderLease(_ backend: StoreBackend) async throws {
        let (a, b) = try await Self.twoNodes(backend)
        #expect(try await a.holdLease("retention", owner: "node-a", until: Self.t0 + 180, now: Self.t0))
        #expect(try await !b.holdLease("retention", owner: "node-b", until: Self.t0 + 190, now: Self.t0 + 10), "held by A: B does not get it")
        #expect(try await a.holdLease("retention", owner: "node-a", until: Self.t0 + 240, now: Self.t0 + 60), "A renews")
        #expect(try await !b.holdLease("retention", owner: "node-b", until: Self.t0 + 400, now: Self.t0 + 200), "renewed: still A's at t0+200")
        #expect(try await b.holdLease("other", owner: "node-b", until: Self.t0 + 400, now: Self.t0 + 200), "leases are by name")
        // A dies (stops renewing): once the lease lapsed, B takes it and A cannot come back over it.
        #expect(try await b.holdLease("retention", owner: "node-b", until: Self.t0 + 420, now: Self.t0 + 241))
        #expect(try await !a.holdLease("retention", owner: "node-a", until: Self.t0 + 430, now: Self.t0 + 250))
        try await a.close()
        try await b.close()
    }

    @Test("leader lease: nodes racing for a free lease, exactly one gets it", arguments: StoreBackend.all)
    func leaderLeaseRace(_ backend: StoreBackend) async throws {
        let (a, b) = try await Self.twoNodes(backend)
        let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<20 {
                let store = index.isMultiple(of: 2) ? a : b
                group.addTask { try await store.holdLease("retention", owner: "node-\(index)", until: Self.t0 + 180, now: Self.t0) }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(winners == 1)
        try await a.close()
        try await b.close()
    }

    @Test("rate limit across nodes: sends counted by two nodes at once never exceed the limit in a window; a slot frees when the window moves on", arguments: StoreBackend.all)
    func rateLimitAcrossNodes(_ backend: StoreBackend) async throws {
        let (a, b) = try await Self.twoNodes(backend)
        let limit = RateLimit(count: 10, window: 60)
        // Each node sends 20 in a row, both at once (their sends interleave in the store).
        let answers = try await withThrowingTaskGroup(of: [Date?].self) { group in
            for (node, store) in [a, b].enumerated() {
                group.addTask {
                    var answers: [Date?] = []
                    for index in 0..<20 { answers.append(try await store.reserveSend(endpoint: "erp", limit: limit, now: Self.t0 + Double(index * 2 + node) / 10)) }
                    return answers
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        var granted = 0
        for next in answers {
            if let next {
                #expect(next > Self.t0 + 60 && next < Self.t0 + 60 + 10, "the next free slot is one window after the oldest counted send, jittered within one slot")
            } else {
                granted += 1
            }
        }
        #expect(granted == 10, "40 sends tried within one window by two nodes; exactly the limit went")
        #expect(try await a.reserveSend(endpoint: "crm", limit: limit, now: Self.t0 + 5) == nil, "endpoints are counted apart")
        #expect(try await b.reserveSend(endpoint: "erp", limit: limit, now: Self.t0 + 30) != nil, "still within the window")
        #expect(try await b.reserveSend(endpoint: "erp", limit: limit, now: Self.t0 + 64) == nil, "the window moved past the first sends")
        try await a.close()
        try await b.close()
    }
    @Test("an open circuit is shared: opened by one node, every node reads it until it ends; a later opening wins; each node's worker is told to read endpoints again", arguments: StoreBackend.all)
    func sharedOpenCircuit(_ backend: StoreBackend) async throws {
        let (a, b) = try await Self.twoNodes(backend)
        let watching = b.wakeUps.subscribe()
        defer { b.wakeUps.unsubscribe(watching) }
        #expect(try await b.openCircuits(now: Self.t0).isEmpty)
        try await a.openCircuit(endpoint: "erp", until: Self.t0 + 30)
        try await a.openCircuit(endpoint: "erp", until: Self.t0 + 20)
        #expect(try await b.openCircuits(now: Self.t0 + 10) == ["erp": Self.t0 + 30], "the later end wins")
        #expect(try await b.openCircuits(now: Self.t0 + 30).isEmpty, "closed once its time is up")
        if backend == .postgres {
            // B learns of it by NOTIFY (SQLite has one process per file: its own writes signal in-process).
            var woken: WakeUp = []
            for _ in 0..<50 where !woken.contains(.endpointsChanged) { woken.formUnion(await watching.wait(timeout: .milliseconds(100))) }
            #expect(woken.contains(.endpointsChanged))
        }
        try await a.close()
        try await b.close()
    }
}
