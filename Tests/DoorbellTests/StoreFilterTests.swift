import DoorbellCore
@testable import DoorbellStorage
import Foundation
import Testing

/// The filters the API and the dashboard share (`source`, `type`, `status`, `since`, `until`, `q`,
/// `cursor`, `limit`), on events and on runs, held to the same answers on every backend.
@Suite("Store filters", .serialized)
struct StoreFilterTests {
    static let t0 = QueueContractTests.t0

    /// Ingests one event; `runs` plans its automations (each left pending).
    @discardableResult
    static func ingest(_ store: any DoorbellStore, source: String = "shop", type: String = "order.created", at offset: Double, body: String, runs: [PlannedRun] = []) async throws -> String {
        let event = NewEvent(source: source, type: type, providerID: nil, receivedAt: t0 + offset, headers: [], body: Array(body.utf8), automations: runs)
        return try await store.ingest(event).id
    }

    /// Claims everything due and moves each run of `automation` to `status` (dead or succeeded).
    static func settle(_ store: any DoorbellStore, _ automation: String, as status: RunStatus) async throws {
        let now = t0 + 10_000
        for run in try await store.claimDueRuns(owner: "w", limit: 1000, now: now, leaseUntil: now + 60, excluding: []) {
            let lease = try #require(run.lease)
            if run.automation == automation {
                if status == .dead {
                    _ = try await store.failStep(runID: run.id, attempt: 1, error: "boom", dueAt: nil, lease: lease)
                } else {
                    _ = try await store.completeStep(runID: run.id, stepID: "only", position: 0, output: "{}", finished: true, lease: lease, leaseUntil: now + 60)
                }
            } else {
                // Back to waiting, so the next settle claims it again.
                _ = try await store.failStep(runID: run.id, attempt: 1, error: "later", dueAt: t0, lease: lease)
            }
        }
    }

    @Test("event filters: source, type, status (a run in it), since/until (received_at, until exclusive) and q (body bytes) combine; the cursor pages newest first without gaps or repeats", arguments: StoreBackend.all)
    func eventFilters(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let a = try await Self.ingest(store, at: 0, body: #"{"customer":"ann","total":10}"#, runs: [PlannedRun(automation: "invoice")])
        let b = try await Self.ingest(store, type: "order.paid", at: 10, body: #"{"customer":"bob","total":20}"#, runs: [PlannedRun(automation: "alert")])
        let c = try await Self.ingest(store, source: "github", type: "push", at: 20, body: #"{"ref":"main","pusher":"ann"}"#)
        let d = try await Self.ingest(store, at: 30, body: #"{"customer":"cy","note":"100% off_sale"}"#, runs: [PlannedRun(automation: "invoice")])
        try await Self.settle(store, "invoice", as: .dead)
        try await Self.settle(store, "alert", as: .succeeded)

        func ids(_ query: EventQuery) async throws -> [String] {
            let found = try await store.events(matching: query).map(\.event.id)
            #expect(try await store.countEvents(matching: query) == found.count || query.limit < found.count, "count agrees with the list")
            return found
        }
        #expect(try await ids(EventQuery()) == [d, c, b, a], "newest first")
        #expect(try await ids(EventQuery(source: "shop")) == [d, b, a])
        #expect(try await ids(EventQuery(type: "order.created")) == [d, a])
        #expect(try await ids(EventQuery(type: "order")) == [], "type is exact, not a prefix")
        #expect(try await ids(EventQuery(statuses: [.dead])) == [d, a])
        #expect(try await ids(EventQuery(statuses: [.succeeded])) == [b])
        #expect(try await ids(EventQuery(statuses: [.dead, .succeeded])) == [d, b, a])
        #expect(try await ids(EventQuery(statuses: [.pending])) == [], "an event without runs has no status")
        #expect(try await ids(EventQuery(since: Self.t0 + 10)) == [d, c, b], "since is inclusive")
        #expect(try await ids(EventQuery(until: Self.t0 + 20)) == [b, a], "until is exclusive")
        #expect(try await ids(EventQuery(since: Self.t0 + 10, until: Self.t0 + 30)) == [c, b])
        #expect(try await ids(EventQuery(bodyContains: "ann")) == [c, a])
        #expect(try await ids(EventQuery(source: "shop", bodyContains: "ann")) == [a])
        #expect(try await ids(EventQuery(source: "shop", statuses: [.dead], since: Self.t0 + 5, bodyContains: "cy")) == [d])
        #expect(try await store.countEvents(matching: EventQuery(statuses: [.dead])) == 2)

        // Paging: limit 1 with the cursor (the last event's sequence) walks all four, in order, once.
        var seen: [String] = []
        var cursor: Int64?
        while true {
            let page = try await store.events(matching: EventQuery(beforeSequence: cursor, limit: 1))
            guard let last = page.last else { break }
            seen.append(last.event.id)
            cursor = last.sequence
        }
        #expect(seen == [d, c, b, a])
        let shopPage = try await store.events(matching: EventQuery(source: "shop", limit: 2))
        #expect(shopPage.map(\.event.id) == [d, b])
        #expect(try await ids(EventQuery(source: "shop", beforeSequence: shopPage.last?.sequence, limit: 2)) == [a], "the cursor keeps the filter")
        try await store.close()
    }

    @Test("q is compared as bytes, never as a pattern: %, _, quotes, backslashes, NUL and non-ASCII text match only themselves", arguments: StoreBackend.all)
    func hostileText(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        let percent = try await Self.ingest(store, at: 0, body: #"{"note":"100% off"}"#)
        let underscore = try await Self.ingest(store, at: 1, body: #"{"note":"a_b"}"#)
        let quote = try await Self.ingest(store, at: 2, body: #"{"note":"it's \"x\" \\ y"}"#)
        let nul = try await Self.ingest(store, at: 3, body: "raw\u{0}bytes")
        let umlaut = try await Self.ingest(store, at: 4, body: #"{"name":"Jürgen"}"#)
        _ = try await Self.ingest(store, at: 5, body: #"{"note":"100 off, aXb"}"#)

        func ids(_ text: String) async throws -> [String] { try await store.events(matching: EventQuery(bodyContains: text)).map(\.event.id) }
        #expect(try await ids("%") == [percent], "% is not a wildcard")
        #expect(try await ids("0% o") == [percent])
        #expect(try await ids("a_b") == [underscore], "_ is not a wildcard")
        #expect(try await ids("_") == [underscore])
        #expect(try await ids("it's") == [quote])
        #expect(try await ids(#"\\ y"#) == [quote], "a backslash is a byte like any other")
        #expect(try await ids("'; DROP TABLE events; --") == [])
        #expect(try await ids("w\u{0}b") == [nul], "NUL inside the searched text")
        #expect(try await ids("Jürgen") == [umlaut])
        #expect(try await ids("jürgen") == [], "case-sensitive: bytes")
        #expect(try await store.countEvents(matching: EventQuery()) == 6, "nothing was dropped")
        // The same comparison on runs, through their event's body.
        _ = try await Self.ingest(store, at: 6, body: #"{"sku":"50%_off"}"#, runs: [PlannedRun(automation: "tag")])
        _ = try await Self.ingest(store, at: 7, body: #"{"sku":"50XYoff"}"#, runs: [PlannedRun(automation: "tag")])
        var query = RunQuery()
        query.bodyContains = "%_"
        #expect(try await store.runs(matching: query).count == 1)
        #expect(try await store.countRuns(matching: query) == 1)
        try await store.close()
    }

    @Test("run filters: q and source/type/status narrow runs and deliveries; countRuns agrees; the cursor pages newest first without gaps or repeats, also among runs created in the same millisecond", arguments: StoreBackend.all)
    func runFilters(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        // Three runs per event, all created in the same millisecond: the cursor must tell them apart.
        var all: [String] = []
        for index in 0..<5 {
            let id = try await Self.ingest(store, source: index.isMultiple(of: 2) ? "shop" : "github", at: Double(index), body: #"{"n":"item-\#(index)"}"#,
                                           runs: [PlannedRun(automation: "a"), PlannedRun(automation: "b"), .delivery(to: "erp")])
            all.append(id)
        }
        try await Self.settle(store, "a", as: .dead)

        let everything = try await store.runs(matching: RunQuery(limit: 100))
        #expect(everything.count == 15)
        #expect(try await store.countRuns(matching: RunQuery()) == 15)
        var paged: [String] = []
        var after: RunCursor?
        while true {
            var query = RunQuery(limit: 4)
            query.after = after
            let page = try await store.runs(matching: query)
            guard let last = page.last else { break }
            paged += page.map(\.id)
            after = last.cursor
        }
        #expect(paged == everything.map(\.id), "pages of 4 give the whole list, in order, once")
        #expect(RunCursor(everything[3].cursor.description) == everything[3].cursor, "the cursor survives its text form")

        var q = RunQuery(deliveries: true)
        q.bodyContains = "item-3"
        let deliveries = try await store.runs(matching: q)
        #expect(deliveries.count == 1)
        #expect(deliveries.first?.eventID == all[3])
        #expect(deliveries.first?.endpoint == "erp")
        #expect(try await store.countRuns(matching: RunQuery(source: "shop", statuses: [.dead], deliveries: false)) == 3)
        #expect(try await store.countRuns(matching: RunQuery(source: "github", deliveries: false)) == 4)
        #expect(try await store.countRuns(matching: RunQuery(automation: "a", since: Self.t0 + 1, until: Self.t0 + 3)) == 2)
        var typed = RunQuery(type: "order.created", statuses: [.dead])
        typed.bodyContains = "item-4"
        #expect(try await store.runs(matching: typed).map(\.eventID) == [all[4]])
        #expect(try await store.runs(matching: RunQuery(type: "order")).isEmpty, "type is exact")
        try await store.close()
    }

    @Test("a body search reads at most a window of events (or runs) matching the other filters per page; paging on finds every match once, in order, across windows holding none", arguments: StoreBackend.all)
    func searchWindows(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        // 30 events, alternately shop and github; "needle" in shop events 0, 4, 6, 20 and github event 5.
        var ids: [Int: String] = [:]
        for index in 0..<30 {
            let needle = [0, 4, 5, 6, 20].contains(index)
            ids[index] = try await Self.ingest(store, source: index.isMultiple(of: 2) ? "shop" : "github", at: Double(index) * 100,
                                               body: needle ? #"{"note":"a needle here","n":\#(index)}"# : #"{"n":\#(index)}"#,
                                               runs: [PlannedRun(automation: "x")])
        }
        // Window 5 over the 15 shop events (28…0): [28…20] holds 20; [18…10] nothing; [8…0] holds 6, 4,
        // 0 and is the last window (nothing older), so it is not bounded and pages as usual.
        var eventPages: [[String]] = []
        var ended: [Bool] = []
        var query = EventQuery(source: "shop", bodyContains: "needle", limit: 2)
        while true {
            let page = try await store.eventPage(matching: query, window: 5)
            eventPages.append(page.events.map(\.event.id))
            ended.append(page.windowEnded)
            guard let next = page.next else { break }
            query.beforeSequence = next
            if eventPages.count > 20 { Issue.record("paging does not end"); break }
        }
        #expect(eventPages == [[ids[20]!], [], [ids[6]!, ids[4]!], [ids[0]!]], "a window at a time, none skipped, none twice")
        #expect(ended == [true, true, false, false])
        let unbounded = try await store.eventPage(matching: EventQuery(source: "shop", bodyContains: "needle", limit: 10), window: 100)
        #expect(unbounded.events.map(\.event.id) == [ids[20]!, ids[6]!, ids[4]!, ids[0]!] && unbounded.next == nil && !unbounded.windowEnded)
        let plain = try await store.eventPage(matching: EventQuery(source: "shop", limit: 10), window: 5)
        #expect(plain.events.count == 10 && !plain.windowEnded, "without q the window does not apply")
        // since = event 15's time: the second window reaches back to event 10, received 500 s before
        // since, so nothing older can match and the search ends there.
        var recent = EventQuery(source: "shop", since: Self.t0 + 1500, bodyContains: "needle", limit: 2)
        let firstRecent = try await store.eventPage(matching: recent, window: 5)
        #expect(firstRecent.events.map(\.event.id) == [ids[20]!] && firstRecent.windowEnded)
        recent.beforeSequence = try #require(firstRecent.next)
        let lastRecent = try await store.eventPage(matching: recent, window: 5)
        #expect(lastRecent.events.isEmpty && lastRecent.next == nil, "past since: no further pages")
        // A status filter does not narrow the window (it has no index in arrival order); the answer is the same.
        var withStatus = EventQuery(source: "shop", statuses: [.pending], bodyContains: "needle", limit: 10)
        var statusPaged: [String] = []
        while true {
            let page = try await store.eventPage(matching: withStatus, window: 5)
            statusPaged += page.events.map(\.event.id)
            guard let next = page.next else { break }
            withStatus.beforeSequence = next
        }
        #expect(statusPaged == [ids[20]!, ids[6]!, ids[4]!, ids[0]!])

        var runPages: [[String]] = []
        var runQuery = RunQuery(source: "shop", limit: 2)
        runQuery.bodyContains = "needle"
        while true {
            let page = try await store.runPage(matching: runQuery, window: 5)
            runPages.append(page.runs.map(\.eventID))
            guard let next = page.next else { break }
            runQuery.after = next
            if runPages.count > 20 { Issue.record("paging does not end"); break }
        }
        // The runs' window counts every run (30, one per event), whatever the source: [29…25] none,
        // [24…20] 20, [19…15] and [14…10] none, [9…5] 6, then the last five unbounded: 4 and 0 fill a page.
        #expect(runPages == [[], [ids[20]!], [], [], [ids[6]!], [ids[4]!, ids[0]!], []], "runs page through windows of all runs")
        try await store.close()
    }

    @Test("the status filter answers the same whether few runs are in the status (2,010 dead runs, 5 succeeded ones): newest first, counted, paged", arguments: StoreBackend.all)
    func statusFilterAtScale(_ backend: StoreBackend) async throws {
        // SQLite switches form above `fewRunsLimit` runs in the status: lowered to 2,000 here so 2,010 dead runs take the other form.
        try await SQLiteEventStore.$fewRunsLimit.withValue(2000) { try await statusFilterAtScaleBody(backend) }
    }

    private func statusFilterAtScaleBody(_ backend: StoreBackend) async throws {
        let store = try await backend.open()
        var ids: [String] = []
        for batch in stride(from: 0, to: 2010, by: 30) {
            try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for index in batch..<min(batch + 30, 2010) {
                    group.addTask {
                        let runs = [PlannedRun(automation: "x")] + (index.isMultiple(of: 500) ? [PlannedRun(automation: "y")] : [])
                        return (index, try await Self.ingest(store, at: Double(index), body: "{}", runs: runs))
                    }
                }
                var found: [(Int, String)] = []
                for try await pair in group { found.append(pair) }
                ids += found.sorted { $0.0 < $1.0 }.map(\.1)
            }
        }
        for _ in 0..<3 { try await Self.settle(store, "x", as: .dead) }
        try await Self.settle(store, "y", as: .succeeded)
        // Arrival order is the ingest order only within a batch; compare against the store's own order.
        let newestFirst = try await store.events(matching: EventQuery(limit: 3000)).map(\.event.id)
        #expect(newestFirst.count == 2010)
        #expect(try await store.countEvents(matching: EventQuery(statuses: [.dead])) == 2010)
        #expect(try await store.events(matching: EventQuery(statuses: [.dead], limit: 7)).map(\.event.id) == Array(newestFirst.prefix(7)))
        let succeeded = Set([0, 500, 1000, 1500, 2000].map { ids[$0] })
        #expect(try await store.events(matching: EventQuery(statuses: [.succeeded], limit: 50)).map(\.event.id) == newestFirst.filter(succeeded.contains))
        #expect(try await store.countEvents(matching: EventQuery(statuses: [.succeeded])) == 5)
        #expect(try await store.events(matching: EventQuery(statuses: [.running, .pending], limit: 50)).isEmpty)
        var cursorQuery = EventQuery(statuses: [.succeeded], limit: 2)
        var paged: [String] = []
        while true {
            let page = try await store.eventPage(matching: cursorQuery)
            paged += page.events.map(\.event.id)
            guard let next = page.next else { break }
            cursorQuery.beforeSequence = next
        }
        #expect(paged == newestFirst.filter(succeeded.contains), "few runs: pages without gaps or repeats")
        try await store.close()
    }

    @Test("RunCursor text: only <millis>.<seq> with whole non-negative numbers parses")
    func cursorText() {
        #expect(RunCursor("1800000000000.42") == RunCursor(createdAtMillis: 1_800_000_000_000, sequence: 42))
        for bad in ["", ".", "1", "1.", ".1", "a.1", "1.-1", "-1.1", "1.2.3", "1 .2", "99999999999999999999.1"] {
            #expect(RunCursor(bad) == nil, "\(bad)")
        }
    }
}
