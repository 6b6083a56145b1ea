import DoorbellCore
@testable import DoorbellStorage
import Foundation
import Logging
import Testing

/// What pollers keep in the store, on every backend: a poll's events and state commit together,
/// fenced by the poller's generation; failures move nothing but the status; reset forgets; the
/// per-poller lease has one holder.
@Suite("Poller store")
struct PollerStoreTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func event(_ id: String, type: String = "order.created", automations: [PlannedRun] = []) -> NewEvent {
        NewEvent(source: "legacy", type: type, providerID: id, receivedAt: Self.t0, headers: [], body: Array(#"{"id":"\#(id)"}"#.utf8), automations: automations)
    }

    func commit(_ poller: String = "legacy", generation: Int64, events: [NewEvent], seen: [SeenItem], cursor: String? = nil, etag: String? = nil, at: Date = t0, maxSeen: Int = 100) -> PollCommit {
        PollCommit(poller: poller, expectedGeneration: generation, events: events, seen: seen, cursor: cursor, etag: etag, lastModified: nil, at: at, nextPollAt: at + 60, maxSeen: maxSeen)
    }

    @Test("a poll's events, their runs and the poller's state commit together; a stale generation commits nothing", arguments: StoreBackend.all)
    func commitAtomically(_ backend: StoreBackend) async throws {
        let (a, b) = try await SharedStateTests.twoNodes(backend)
        #expect(try await a.pollerState("legacy") == nil)
        let run = PlannedRun(automation: "notify")
        let first = try await a.commitPoll(commit(generation: 0, events: [event("1", automations: [run]), event("2")], seen: [SeenItem(id: "1", version: 11), SeenItem(id: "2", version: 22)], cursor: "c1", etag: "\"e1\""))
        #expect(first.committed)
        #expect(first.stored.map(\.duplicate) == [false, false])
        #expect(first.state?.generation == 1)
        #expect(first.state?.cursor == "c1")
        #expect(first.state?.etag == "\"e1\"")
        #expect(first.state?.itemsSeen == 2)
        #expect(try await b.countEvents(matching: EventQuery(source: "legacy")) == 2)
        #expect(try await b.runs(eventID: first.stored[0].id, limit: 10).count == 1, "the event's run committed with it")
        #expect(Set(try await b.seenItems("legacy").map(\.id)) == ["1", "2"])

        // Another node polled from the same generation: it commits nothing, not even its events.
        let stale = try await b.commitPoll(commit(generation: 0, events: [event("3")], seen: [SeenItem(id: "3", version: 33)], cursor: "c-stale"))
        #expect(!stale.committed)
        #expect(try await a.countEvents(matching: EventQuery(source: "legacy")) == 2)
        #expect(try await a.pollerState("legacy")?.cursor == "c1")

        // Nil cursor and ETag keep the stored ones; a provider id seen before is a duplicate, stored once.
        let second = try await b.commitPoll(commit(generation: 1, events: [event("2"), event("4")], seen: [SeenItem(id: "4", version: 44)]))
        #expect(second.committed)
        #expect(second.stored.map(\.duplicate) == [true, false])
        #expect(second.state?.cursor == "c1")
        #expect(second.state?.etag == "\"e1\"")
        #expect(second.state?.generation == 2)
        #expect(try await a.countEvents(matching: EventQuery(source: "legacy")) == 3)
        try await a.close()
        try await b.close()
    }

    @Test("a failed poll records its error and back-off and moves no cursor; failing flips once each way", arguments: StoreBackend.all)
    func failures(_ backend: StoreBackend) async throws {
        let (a, b) = try await SharedStateTests.twoNodes(backend)
        let failed = try await a.recordPollFailure("legacy", error: "HTTP 500", at: Self.t0, nextPollAt: Self.t0 + 120)
        #expect(failed.generation == 0, "a failure before any success leaves the first run pending")
        #expect(failed.failures == 1)
        #expect(failed.failingSince == Self.t0)
        _ = try await a.commitPoll(commit(generation: 0, events: [], seen: [SeenItem(id: "1", version: 1)], cursor: "c1", at: Self.t0 + 200))
        let again = try await b.recordPollFailure("legacy", error: "HTTP 503", at: Self.t0 + 300, nextPollAt: Self.t0 + 420)
        #expect(again.cursor == "c1")
        #expect(again.generation == 1)
        #expect(again.failures == 1, "a success reset the count")
        #expect(again.lastSuccessAt == Self.t0 + 200)
        #expect(again.lastError == "HTTP 503")
        #expect(again.nextPollAt == Self.t0 + 420)
        let third = try await a.recordPollFailure("legacy", error: "HTTP 503", at: Self.t0 + 500, nextPollAt: Self.t0 + 700)
        #expect(third.failures == 2)
        #expect(third.failingSince == Self.t0 + 300)
        #expect(try await a.setPollerFailing("legacy", failing: true))
        #expect(try await !b.setPollerFailing("legacy", failing: true), "the second node sees it already failing: published once")
        #expect(try await b.setPollerFailing("legacy", failing: false))
        #expect(try await !a.setPollerFailing("legacy", failing: false))
        try await a.close()
        try await b.close()
    }

    @Test("reset forgets state and items (the next poll is a first run) and fences a poll begun before it", arguments: StoreBackend.all)
    func reset(_ backend: StoreBackend) async throws {
        let (a, b) = try await SharedStateTests.twoNodes(backend)
        _ = try await a.commitPoll(commit(generation: 0, events: [event("1")], seen: [SeenItem(id: "1", version: 1)], cursor: "c1"))
        _ = try await a.commitPoll(commit("other", generation: 0, events: [], seen: [SeenItem(id: "x", version: 1)]))
        try await b.resetPoller("legacy")
        let afterReset = try await a.pollerState("legacy")
        #expect(afterReset?.lastSuccessAt == nil, "the next poll is a first run")
        #expect(afterReset?.cursor == nil)
        #expect(afterReset?.itemsSeen == 0)
        #expect(try await a.seenItems("legacy").isEmpty)
        #expect(try await a.seenItems("other").count == 1, "other pollers keep theirs")
        let late = try await a.commitPoll(commit(generation: 1, events: [event("2")], seen: [SeenItem(id: "2", version: 2)]))
        #expect(!late.committed, "a poll that read the state before the reset commits nothing")
        #expect(try await a.countEvents(matching: EventQuery(source: "legacy")) == 1)
        try await a.close()
        try await b.close()
    }

    @Test("remembered items are bounded: the oldest written go first", arguments: StoreBackend.all)
    func boundedMemory(_ backend: StoreBackend) async throws {
        let (a, b) = try await SharedStateTests.twoNodes(backend)
        let first = (0..<60).map { SeenItem(id: "old-\($0)", version: 1) }
        _ = try await a.commitPoll(commit(generation: 0, events: [], seen: first, maxSeen: 100))
        let second = (0..<60).map { SeenItem(id: "new-\($0)", version: 1) }
        let outcome = try await a.commitPoll(commit(generation: 1, events: [], seen: second, maxSeen: 100))
        #expect(outcome.state?.itemsSeen == 100)
        let kept = try await b.seenItems("legacy")
        #expect(kept.count == 100)
        #expect(kept.filter { $0.id.hasPrefix("new-") }.count == 60, "every item of the newer poll is kept")
        try await a.close()
        try await b.close()
    }

    @Test("per-poller lease: one node polls a poller at a time", arguments: StoreBackend.all)
    func lease(_ backend: StoreBackend) async throws {
        let (a, b) = try await SharedStateTests.twoNodes(backend)
        let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<10 {
                let store = index.isMultiple(of: 2) ? a : b
                group.addTask { try await store.holdLease("poller:legacy", owner: "node-\(index)", until: Self.t0 + 30, now: Self.t0) }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(winners == 1)
        #expect(try await a.holdLease("poller:other", owner: "node-x", until: Self.t0 + 30, now: Self.t0), "each poller has its own lease")
        try await a.close()
        try await b.close()
    }
}
