import DoorbellCore
@testable import DoorbellStorage
import Foundation
import Logging
import Testing

/// Dashboard sessions and summaries, on both backends: a session made on one node is valid on
/// another, expires when idle or at its end, and is gone after sign-out; the overview's counts add up.
@Suite("Dashboard session store")
struct DashboardSessionStoreTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func session(_ hash: String, idle: Double = 3600, max: Double = 86400) -> DashboardSession {
        DashboardSession(idHash: hash, principal: "token 1", createdAt: t0, idleUntil: t0 + idle, expiresAt: t0 + max)
    }

    @Test("a session is shared by two nodes, expires when idle or at its end, and ends at sign-out", arguments: StoreBackend.all)
    func sessions(_ backend: StoreBackend) async throws {
        let (a, b) = try await SharedStateTests.twoNodes(backend)
        try await a.createSession(Self.session("h1"))
        let seen = try #require(try await b.session(idHash: "h1", now: Self.t0 + 10), "node B accepts node A's session")
        #expect(seen.principal == "token 1")
        #expect(seen.idleUntil == Self.t0 + 3600)
        #expect(try await b.session(idHash: "other", now: Self.t0 + 10) == nil)

        #expect(try await a.session(idHash: "h1", now: Self.t0 + 3600) == nil, "idle for the whole idle time: expired")
        try await b.touchSession(idHash: "h1", idleUntil: Self.t0 + 7200)
        #expect(try await a.session(idHash: "h1", now: Self.t0 + 3600) != nil, "used on B: valid on A again")
        try await a.touchSession(idHash: "h1", idleUntil: Self.t0 + 5000)
        #expect(try await a.session(idHash: "h1", now: Self.t0 + 6000)?.idleUntil == Self.t0 + 7200, "a touch never moves the idle end back")
        try await a.touchSession(idHash: "h1", idleUntil: Self.t0 + 200_000)
        #expect(try await a.session(idHash: "h1", now: Self.t0 + 86400) == nil, "however busy, it ends at its absolute end")

        try await a.createSession(Self.session("h2"))
        #expect(try await b.deleteSession(idHash: "h2"), "sign-out on B")
        #expect(try await a.session(idHash: "h2", now: Self.t0 + 1) == nil, "signed out on every node")
        #expect(try await !b.deleteSession(idHash: "h2"))

        try await a.createSession(Self.session("h3", idle: 100_000, max: 100_000))
        #expect(try await a.deleteExpiredSessions(now: Self.t0 + 90_000) == 1, "h1 (ended) goes; h3 stays")
        #expect(try await b.session(idHash: "h3", now: Self.t0 + 90_000) != nil)
        try await a.close()
        try await b.close()
    }

    @Test("overview summaries: queue counts by status, source activity, endpoint success, step results", arguments: StoreBackend.all)
    func summaries(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let old = NewEvent(source: "shop", type: "order.created", providerID: "o1", receivedAt: Self.t0 - 2 * 86400, headers: [], body: Array("{}".utf8))
        let recent = NewEvent(source: "shop", type: "order.created", providerID: "o2", receivedAt: Self.t0 - 60, headers: [], body: Array("{}".utf8),
                              automations: [PlannedRun(automation: "invoice"), PlannedRun.delivery(to: "erp")])
        _ = try await store.ingest(old)
        _ = try await store.ingest(recent)
        let activity = try await store.sourceActivity(since: Self.t0 - 86400)
        #expect(activity["shop"] == SourceActivity(lastReceivedAt: Self.t0 - 60, receivedSince: 1))
        let counts = try await store.queueCounts()
        #expect(counts.runs == [.pending: 1])
        #expect(counts.deliveries == [.pending: 1])

        let runs = try await store.claimDueRuns(owner: "w", limit: 10, now: Self.t0 + 1, leaseUntil: Self.t0 + 60, excluding: [])
        let invoice = try #require(runs.first { $0.endpoint == nil })
        let delivery = try #require(runs.first { $0.endpoint != nil })
        #expect(try await store.completeStep(runID: invoice.id, stepID: "render", position: 0, output: #"{"path":"a.html"}"#, finished: false, lease: try #require(invoice.lease), leaseUntil: Self.t0 + 60) == .applied)
        #expect(try await store.failStep(runID: invoice.id, attempt: 1, error: "boom", dueAt: nil, lease: try #require(invoice.lease)) == .applied)
        let attempt = AttemptRecord(runID: delivery.id, endpoint: "erp", startedAt: Self.t0 + 2, status: 500, latencyMillis: 12, response: "no", error: nil)
        _ = try await store.finishAttempt(attempt, outcome: .retry(at: Self.t0 + 100, failures: 1), lease: try #require(delivery.lease))

        let steps = try await store.stepResults(runID: invoice.id)
        #expect(steps.map(\.stepID) == ["render"])
        #expect(steps.first?.output == #"{"path":"a.html"}"#)
        #expect(try await store.queueCounts() == QueueCounts(runs: [.dead: 1], deliveries: [.waitingRetry: 1]))
        #expect(try await store.endpointActivity(since: Self.t0) == ["erp": EndpointActivity(attempts: 1, succeeded: 0)])
        #expect(try await store.endpointActivity(since: Self.t0 + 10).isEmpty)
        try await store.close()
    }
}
