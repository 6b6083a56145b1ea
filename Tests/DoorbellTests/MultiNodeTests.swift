import Foundation
import Testing

/// Several `doorbell serve` processes on one PostgreSQL behave as one: each run and delivery once (at
/// least once across a crash), per-key order across nodes, a crashed node's work finished by the other,
/// a database restart survived without restarting the nodes. Real processes, real PostgreSQL, a real
/// receiver on loopback.
@Suite("MultiNode", .serialized)
struct MultiNodeTests {
    @Test("two nodes, one database: every step call and delivery exactly once, per-customer order across nodes")
    func twoNodesShareTheWork() async throws {
        try await Receiver.with { receiver in
            let database = try await TestPostgres.freshDatabase()
            let config = try MultiNode.writeConfig(receiver: receiver.baseURL, lease: "5s")
            let a = try MultiNode.start("a", config: config, database: database)
            defer { MultiNode.stop(a) }
            let b = try MultiNode.start("b", config: config, database: database)
            defer { MultiNode.stop(b) }

            let customers = (0..<8).map { "customer-\($0)" }
            let perCustomer = 25
            let ledger = IngestLedger()
            // One sender per customer, its events one after another (so their order is defined),
            // alternately to node a and node b.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (k, customer) in customers.enumerated() {
                    group.addTask {
                        for n in 0..<perCustomer {
                            let node = (n + k) % 2 == 0 ? a : b
                            let start = Date()
                            let reply = try await MultiNode.postOrder(node, customer: customer, n: n)
                            ledger.record(node: node === a ? "a" : "b", start: start, reply: reply, customer: customer, n: n)
                            #expect(reply.status == 200, "ingest on node \(node === a ? "a" : "b"): \(reply.status) \(reply.body)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            let acked = ledger.acknowledged
            let total = customers.count * perCustomer
            #expect(acked.count == total)

            let finished = try await eventually(60) {
                Set(MultiNode.calls(receiver, "/two").map(\.event)).count >= total
                    && Set(MultiNode.calls(receiver, "/deliveries").map(\.event)).count >= total
            }
            // A duplicate would come from a second claim of a finished run or delivery; give one a moment
            // to show before the counts are read (not a timing assertion: the counts must be exact).
            try await Task.sleep(for: .seconds(2))
            #expect(finished, "not every run and delivery finished within 60 s; a: \(MultiNode.tail(a)) b: \(MultiNode.tail(b))")

            for path in ["/one", "/two", "/deliveries"] {
                let calls = MultiNode.calls(receiver, path)
                let byKey = Dictionary(grouping: calls, by: \.key)
                let repeated = byKey.filter { $0.value.count > 1 }
                #expect(repeated.isEmpty, "\(path): \(repeated.count) dedupe keys arrived more than once, e.g. \(repeated.prefix(3).map { "\($0.key) from \($0.value.map(\.node))" })")
                #expect(Set(calls.map(\.event)) == Set(acked.keys), "\(path): every acknowledged event once, nothing else")
                #expect(calls.count == total, "\(path): \(calls.count) requests for \(total) events")
            }
            // Which node claims is up to the queue; both taking part is expected but not a contract.
            print("MultiNode: step calls by node: \(Dictionary(grouping: MultiNode.calls(receiver, "/one"), by: \.node).mapValues(\.count))")
            let steps = MultiNode.calls(receiver, "/one")
            for customer in customers {
                #expect(MultiNode.firstSeenOrder(steps, customer: customer) == Array(0..<perCustomer), "\(customer)'s runs in the order its events were posted, across both nodes")
            }
            // Each event's run uses one run id for both steps, and the steps arrive in order.
            let ones = Dictionary(grouping: steps, by: \.event)
            let twos = Dictionary(grouping: MultiNode.calls(receiver, "/two"), by: \.event)
            for (event, two) in twos {
                let runOfOne = ones[event]?.first?.key.dropLast("-one".count)
                #expect(runOfOne != nil && two.first?.key == "\(runOfOne!)-two", "event \(event): one run, keys \(ones[event]?.map(\.key) ?? []) \(two.map(\.key))")
            }
            #expect(a.isRunning && b.isRunning, "both nodes still run")
        }
    }

    @Test("kill -9 one node under load: the other finishes everything after the lease; a completed step is not run again")
    func killOneNodeUnderLoad() async throws {
        try await Receiver.with { receiver in
            // Slow answers keep runs in flight, so the victim dies holding leases.
            receiver.delay("/one", seconds: 0.3)
            receiver.delay("/two", seconds: 0.3)
            receiver.delay("/deliveries", seconds: 0.1)
            let database = try await TestPostgres.freshDatabase()
            let config = try MultiNode.writeConfig(receiver: receiver.baseURL, lease: "3s")
            let a = try MultiNode.start("a", config: config, database: database)
            defer { MultiNode.stop(a) }
            let b = try MultiNode.start("b", config: config, database: database)
            defer { MultiNode.stop(b) }

            let customers = (0..<10).map { "customer-\($0)" }
            let perCustomer = 8
            let ledger = IngestLedger()
            let killed = KillMark()
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Kills node a the moment one of its step calls has arrived: the receiver answers it
                // 0.3 s later, so that step is in flight (started, its result not stored) at the kill.
                group.addTask {
                    let start = Date()
                    while Date().timeIntervalSince(start) < 30 {
                        let fromA = (MultiNode.calls(receiver, "/one") + MultiNode.calls(receiver, "/two")).filter { $0.node == "a" }.count
                        if fromA >= 4 { break }
                        try await Task.sleep(for: .milliseconds(5))
                    }
                    a.kill9()
                    killed.set(Dictionary(uniqueKeysWithValues: ["/one", "/two", "/deliveries"].map { ($0, receiver.requests($0).count) }))
                }
                // Senders keep posting across the kill (a post that node a can no longer answer goes to b).
                for (k, customer) in customers.enumerated() {
                    group.addTask {
                        for n in 0..<perCustomer {
                            let target = (n + k) % 2 == 0 && !a.isStopped ? a : b
                            var reply = try? await MultiNode.postOrder(target, customer: customer, n: n)
                            var sentTo = target
                            if reply == nil, target === a {
                                // No answer from a: this event may or may not be stored there; b gets it again,
                                // so it exists at least once, as a provider would retry it.
                                sentTo = b
                                reply = try? await MultiNode.postOrder(b, customer: customer, n: n)
                            }
                            ledger.record(node: sentTo === a ? "a" : "b", start: Date(), reply: reply, customer: customer, n: n)
                            #expect(sentTo === a || reply?.status == 200, "node b must accept every event: \(reply.map { "\($0.status) \($0.body)" } ?? "no answer")")
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(!a.isRunning)
            let acked = ledger.acknowledged
            let finished = try await eventually(60) {
                Set(acked.keys).isSubset(of: MultiNode.calls(receiver, "/two").map(\.event))
                    && Set(acked.keys).isSubset(of: MultiNode.calls(receiver, "/deliveries").map(\.event))
            }
            try await Task.sleep(for: .seconds(2))  // room for a wrong late repeat to show (see the first test)
            #expect(finished, "node b did not finish a's work within 60 s of the kill; b: \(MultiNode.tail(b))")

            let ones = MultiNode.calls(receiver, "/one")
            let twos = MultiNode.calls(receiver, "/two")
            let deliveries = MultiNode.calls(receiver, "/deliveries")
            for (path, calls) in [("/two", twos), ("/deliveries", deliveries)] {
                let missing = Set(acked.keys).subtracting(calls.map(\.event))
                #expect(missing.isEmpty, "\(path): acknowledged but never arrived: \(missing.sorted().prefix(5))")
            }
            // At least once, and a repeat only where the crash forced one: a request may arrive twice only
            // when it was in flight at the kill (first copy before it, its result never stored) and was sent
            // again after it under the same dedupe key (the same run, not a new one); for step calls the
            // first copy is node a's, the second b's. Never three times, never twice before or after the kill.
            var repeatedKeys = 0
            for (path, calls) in [("/one", ones), ("/two", twos), ("/deliveries", deliveries)] {
                let indexed = calls.enumerated().map { (index: $0.offset, call: $0.element) }
                for (key, copies) in Dictionary(grouping: indexed, by: \.call.key) where copies.count > 1 {
                    repeatedKeys += 1
                    let afterKill = copies.map { $0.index >= killed.count(path) }
                    #expect(afterKill == [false, true], "\(path) \(key) arrived \(copies.count) times (after the kill: \(afterKill)): only a call in flight at the kill may repeat, once, after it")
                    if path != "/deliveries" {
                        #expect(copies.map(\.call.node) == ["a", "b"], "\(path) \(key) arrived from \(copies.map(\.call.node))")
                    }
                }
            }
            #expect(repeatedKeys > 0, "node a was killed with a step call in flight; node b should have repeated it")
            // A completed step is not run again: when node a reached an event's /two, step one's result was
            // stored, so b resumes at step two and /one arrived once for that event.
            let onesByEvent = Dictionary(grouping: ones, by: \.event)
            for event in Set(twos.filter { $0.node == "a" }.map(\.event)) {
                #expect(onesByEvent[event]?.count == 1, "event \(event): /one arrived \(onesByEvent[event]?.count ?? 0) times although node a had finished it and moved on to /two")
            }
            // Each event has one run: all its step calls share one run id.
            for (event, calls) in Dictionary(grouping: ones + twos, by: \.event) {
                let runs = Set(calls.map { $0.key.split(separator: "-").dropLast().joined(separator: "-") })
                #expect(runs.count == 1, "event \(event) ran as \(runs.count) runs")
            }
            // Per-customer order survives the takeover.
            for customer in customers {
                let order = MultiNode.firstSeenOrder(ones, customer: customer)
                #expect(order == Array(0..<perCustomer), "\(customer): runs started in the order \(order)")
            }
            print("MultiNode: after the kill, \(repeatedKeys) requests repeated; /two by node \(Dictionary(grouping: twos, by: \.node).mapValues(\.count))")
            #expect(b.isRunning)
        }
    }

    @Test("PostgreSQL stopped under load: ingest 503 and /readyz 503 while down, both nodes recover by themselves, nothing acknowledged lost")
    func databaseRestartUnderLoad() async throws {
        let cluster = try await PostgresCluster.start()
        defer { cluster.remove() }
        try await Receiver.with { receiver in
            let database = try await cluster.freshDatabase()
            let config = try MultiNode.writeConfig(receiver: receiver.baseURL, lease: "3s")
            let a = try MultiNode.start("a", config: config, database: database)
            defer { MultiNode.stop(a) }
            let b = try MultiNode.start("b", config: config, database: database)
            defer { MultiNode.stop(b) }

            let ledger = IngestLedger()
            let sending = Flag()
            var down = Date.distantFuture
            var up = Date.distantFuture
            try await withThrowingTaskGroup(of: Void.self) { group in
                defer { sending.down() }
                for k in 0..<4 {
                    group.addTask {
                        var n = 0
                        while sending.isUp {
                            let node = (n + k) % 2 == 0 ? a : b
                            let start = Date()
                            let reply = try? await MultiNode.postOrder(node, customer: "customer-\(k)", n: n, timeout: 15)
                            ledger.record(node: node === a ? "a" : "b", start: start, reply: reply, customer: "customer-\(k)", n: n)
                            n += 1
                            try await Task.sleep(for: .milliseconds(50))
                        }
                    }
                }
                #expect(try await eventually(30) { ledger.acknowledged.count >= 20 }, "events flow before the outage")
                try cluster.stop()
                down = Date()
                let bothUnready = try await eventually(20) {
                    let ready = (await MultiNode.readiness(a), await MultiNode.readiness(b))
                    return ready.0 == 503 && ready.1 == 503
                }
                #expect(bothUnready, "/readyz answers 503 on both nodes while the database is down")
                // Down long enough for every sender to have had answers during the outage.
                _ = try await eventually(15) { ledger.all.filter { $0.start > down }.count >= 8 }
                up = Date()
                try cluster.startAgain()
                let bothReady = try await eventually(30) {
                    let ready = (await MultiNode.readiness(a), await MultiNode.readiness(b))
                    return ready.0 == 200 && ready.1 == 200
                }
                #expect(bothReady, "both nodes ready again without a restart; a: \(MultiNode.tail(a)) b: \(MultiNode.tail(b))")
                let ingesting = try await eventually(30) {
                    let after = ledger.all.filter { $0.start > up && $0.status == 200 }
                    return Set(after.map(\.node)) == ["a", "b"]
                }
                let afterUp = ledger.all.filter { $0.start > up }
                let byStatus = Dictionary(grouping: afterUp, by: { "\($0.node) \($0.status.map(String.init) ?? "no answer")" }).mapValues(\.count)
                #expect(ingesting, "both nodes accept events again; answers since the restart: \(byStatus); a: \(MultiNode.tail(a)) b: \(MultiNode.tail(b))")
                sending.down()
                try await group.waitForAll()
            }

            let answers = ledger.all
            let duringOutage = answers.filter { $0.start > down && $0.end < up }
            #expect(!duringOutage.isEmpty, "some events were posted while the database was down")
            let wrong = duringOutage.filter { $0.status != 503 }
            #expect(wrong.isEmpty, "while the database is down ingest answers 503, got \(wrong.map { "\($0.node): \($0.status.map(String.init) ?? "no answer")" }.prefix(5))")

            let acked = ledger.acknowledged
            let finished = try await eventually(60) {
                Set(acked.keys).isSubset(of: MultiNode.calls(receiver, "/two").map(\.event))
                    && Set(acked.keys).isSubset(of: MultiNode.calls(receiver, "/deliveries").map(\.event))
            }
            #expect(finished, "every acknowledged event runs and is delivered after the restart; a: \(MultiNode.tail(a)) b: \(MultiNode.tail(b))")
            for path in ["/two", "/deliveries"] {
                let missing = Set(acked.keys).subtracting(MultiNode.calls(receiver, path).map(\.event))
                #expect(missing.isEmpty, "\(path): acknowledged but lost: \(missing.sorted().prefix(5))")
            }
            let repeats = ["/one", "/two", "/deliveries"].map { path in
                "\(path) \(Dictionary(grouping: MultiNode.calls(receiver, path), by: \.key).values.filter { $0.count > 1 }.count)"
            }
            print("MultiNode: \(acked.count) acknowledged, \(duringOutage.count) answers during the outage; keys repeated (allowed across the outage): \(repeats)")
            #expect(a.isRunning && b.isRunning, "neither node exited")
        }
    }
}

/// A switch many tasks read: up until `down()`.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = true
    var isUp: Bool { lock.withLock { value } }
    func down() { lock.withLock { value = false } }
}
