import DoorbellCore
@testable import DoorbellStorage
import Foundation
import Logging
import Synchronization
import Testing

/// Storage under faults and over time: one bad item in a group commit, retention while ingesting,
/// the database file deleted, replaced or truncated under load, a full disk that empties again,
/// clean shutdown, backups of a running server, and the read-only commands.
@Suite("Hardening: storage", .serialized)
struct HardeningStorageTests {
    // MARK: group commit

    @Test("a group commit with one failing item commits the others; only that item gets the error")
    func oneItemFailsAlone() async throws {
        let folder = try TemporaryFolder.make()
        let path = folder.appendingPathComponent("doorbell.db").path
        let store = try SQLiteEventStore(path: path)
        _ = try await store.ingest(NewEvent(id: "evt_taken", source: "open", type: "t", providerID: nil, headers: [], body: Array("{}".utf8)))

        // Another process holds SQLite's write lock, so everything submitted meanwhile queues up and
        // goes into the same batch once it lets go.
        let holder = try SQLiteLockHolder(path: path)
        let first = Task { try await store.ingest(NewEvent(source: "open", type: "first", providerID: nil, headers: [], body: [])) }
        let good = (0..<50).map { index in
            Task { try await store.ingest(NewEvent(source: "open", type: "good", providerID: "good_\(index)", headers: [], body: Array("{}".utf8))) }
        }
        // A real constraint error (an event id already stored) and a transition for a run that does
        // not exist (fenced: answered `.leaseLost`, nothing written), in the middle of the batch.
        let duplicateID = Task { try await store.ingest(NewEvent(id: "evt_taken", source: "open", type: "bad", providerID: nil, headers: [], body: [])) }
        let missingRun = Task {
            try await store.completeStep(runID: "run_missing", stepID: "s", position: 0, output: "{}", finished: true, lease: Lease(owner: "w", token: 1), leaseUntil: Date())
        }
        let more = (50..<100).map { index in
            Task { try await store.ingest(NewEvent(source: "open", type: "good", providerID: "good_\(index)", headers: [], body: Array("{}".utf8))) }
        }
        try await Task.sleep(for: .milliseconds(300))  // let the submissions queue behind the lock
        holder.release()

        _ = try await first.value
        for task in good + more {
            let outcome = try await task.value
            #expect(!outcome.duplicate)
        }
        let refused = await #expect(throws: StoreError.self) { try await duplicateID.value }
        #expect(refused?.kind == .rejected, "one bad item is a rejected write, not storage down: \(String(describing: refused))")
        // The bad item really went through the savepoint path together with the good ones (not alone
        // in a batch of its own because the submissions did not queue up in time).
        let retries = store.savepointRetries.value
        #expect(retries.batches == 1)
        #expect(retries.largestBatch > 50, "the retried batch held the bad item and the good ones: \(retries.largestBatch)")
        // A transition for a run nobody holds writes nothing (no orphan step output) and says so.
        #expect(try await missingRun.value == .leaseLost)
        #expect(try await store.countEvents(matching: EventQuery(type: "good")) == 100)
        #expect(try await store.countEvents(matching: EventQuery(type: "bad")) == 0)
        try await store.checkReady()  // a bad item is not a storage failure
        try await store.close()
    }

    @Test("store health as a value: a failed write passes with the next success (not with a probe begun before it); a lost file stays lost")
    func storeHealthStates() {
        var health = StoreHealth()
        #expect(health.unavailableReason == nil)
        health.writeFailed("disk full")
        #expect(health.unavailableReason == "the last write failed: disk full")
        health.writeSucceeded()
        #expect(health.unavailableReason == nil, "a write that commits makes the store ready again")
        // The readiness probe commits outside the group commit: a batch that failed while it ran stands.
        let before = health.failures
        health.writeFailed("disk full again")
        health.writeSucceeded(failuresBefore: before)
        #expect(health.unavailableReason == "the last write failed: disk full again", "a probe that began before a failure does not clear it")
        health.writeSucceeded(failuresBefore: health.failures)
        #expect(health.unavailableReason == nil, "a probe that began after it does")
        let first = health.fileLost("the database file x was deleted")
        let second = health.fileLost("the database file x was replaced")
        #expect(first && !second, "reported once")
        health.writeSucceeded()
        #expect(health.unavailableReason?.hasPrefix("the database file x was deleted; put the database file back") == true, "nothing clears a lost file")
    }

    @Test("every commit is fsynced: the writer of the server and of a command runs synchronous = FULL")
    func commitsAreSynced() async throws {
        let path = try TemporaryFolder.make().appendingPathComponent("doorbell.db").path
        let server = try SQLiteEventStore(path: path)
        let command = try SQLiteEventStore(path: path, access: .readWrite)
        for store in [server, command] {
            // 2 is FULL; GRDB's WAL setup leaves 1 (NORMAL) unless the store sets it again.
            #expect(try await store.pool.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
        }
        try await command.close()
        try await server.close()
    }

    @Test("the server's own checkpoints change the database header without alarm (and a command writing beside it causes none); a header changed by anyone else is a lost file")
    func headerWatch() async throws {
        let folder = try TemporaryFolder.make()
        let path = folder.appendingPathComponent("doorbell.db").path
        let clock = StorageTestClock()
        let store = try SQLiteEventStore(path: path, now: clock.now)
        let header = { () throws -> Data in try FileHandle(forReadingFrom: URL(fileURLWithPath: path)).read(upToCount: 100) ?? Data() }
        let started = try header()
        for round in 0..<3 {
            try await ingest(store, count: 60, prefix: "round\(round)")
            clock.advance(by: SQLiteEventStore.checkpointInterval + 0.5)
            try await ingest(store, count: 1, prefix: "checkpoint\(round)")  // the commit that starts the checkpoint
            await store.checkpointSettled()  // it runs beside later commits
            try await store.checkReady()
        }
        #expect(try header() != started, "the server checkpointed into the main file")

        // A command beside the server (prune, endpoints add) writes but never checkpoints.
        let command = try SQLiteEventStore(path: path, access: .readWrite)
        _ = try await command.ingest(NewEvent(source: "cli", type: "t", providerID: "cli_1", headers: [], body: []))
        try await command.close()
        try await store.checkReady()
        try await ingest(store, count: 5, prefix: "after_command")

        // An older copy written over the file in place: same inode, valid header, not smaller.
        let older = folder.appendingPathComponent("older.db").path
        try await store.backup(to: older)
        try await ingest(store, count: 60, prefix: "newer")
        clock.advance(by: SQLiteEventStore.checkpointInterval + 0.5)
        try await ingest(store, count: 1, prefix: "checkpoint_last")
        await store.checkpointSettled()
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.write(contentsOf: try Data(contentsOf: URL(fileURLWithPath: older)))
        try handle.close()
        let refused = await #expect(throws: StoreError.self) {
            _ = try await store.ingest(NewEvent(source: "open", type: "t", providerID: "late", headers: [], body: []))
        }
        #expect(refused?.summary == "database file lost")
        guard case .fileLost(let reason) = store.monitor.readiness() else { throw TestFailure("an overwritten file went unnoticed") }
        #expect(reason.contains("overwritten in place"), "\(reason)")
        try await store.close()
    }

    @Test("closing the store right after its file was deleted waits for the rescued copy: close succeeds, the copy is complete, no .partial is left")
    func closeAwaitsRescue() async throws {
        let folder = try TemporaryFolder.make()
        let path = folder.appendingPathComponent("doorbell.db").path
        let store = try SQLiteEventStore(path: path)
        try await ingest(store, count: 300, prefix: "kept")
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        await #expect(throws: StoreError.self) { try await store.checkReady() }  // notices the loss, starts the copy
        try await store.close()
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        #expect(!names.contains { $0.hasSuffix(".partial") }, "\(names)")
        let rescued = try #require(names.first { $0.hasPrefix("doorbell.db.rescued-") }, "the copy was finished before the close: \(names)")
        let copy = try SQLiteEventStore(path: folder.appendingPathComponent(rescued).path, access: .readOnly)
        #expect(try await copy.countEvents(matching: EventQuery()) == 300)
        try await copy.close()
    }

    @Test("after a failed write (the writer made read-only, no root needed) /readyz probes at most once a second, answers a short reason, and is ready again once writes work")
    func readinessProbesPaced() async throws {
        let folder = try TemporaryFolder.make()
        let path = folder.appendingPathComponent("doorbell.db").path
        let clock = StorageTestClock()
        let store = try SQLiteEventStore(path: path, now: clock.now)
        try await ingest(store, count: 3, prefix: "first")
        try await store.checkReady()

        try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA query_only = 1") }
        let failed = await #expect(throws: StoreError.self) {
            _ = try await store.ingest(NewEvent(source: "open", type: "t", providerID: "refused", headers: [], body: []))
        }
        #expect(failed?.kind == .unavailable, "a read-only database is storage down, not one rejected event: \(String(describing: failed))")
        for _ in 0..<20 {
            let notReady = await #expect(throws: StoreError.self) { try await store.checkReady() }
            #expect(notReady?.summary == "last write failed")
            #expect(notReady.map { !$0.summary.contains(path) } == true)
        }
        #expect(store.probeCount == 1, "twenty /readyz calls within a second make one probe write")
        clock.advance(by: 1.5)
        await #expect(throws: StoreError.self) { try await store.checkReady() }
        #expect(store.probeCount == 2)

        try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA query_only = 0") }
        clock.advance(by: 0.5)
        await #expect(throws: StoreError.self, "still paced: the last failure stands") { try await store.checkReady() }
        clock.advance(by: 1)
        try await store.checkReady()
        #expect(store.probeCount == 3)
        try await ingest(store, count: 3, prefix: "after")
        #expect(try await store.countEvents(matching: EventQuery()) == 6)
        try await store.close()
    }

    @Test("a database that cannot grow (SQLITE_FULL inside the transaction, via max_page_count: no root needed) fails the batch as storage down, not each event as rejected")
    func fullDatabaseIsNotRejected() async throws {
        let folder = try TemporaryFolder.make()
        let store = try SQLiteEventStore(path: folder.appendingPathComponent("doorbell.db").path)
        try await ingest(store, count: 3, prefix: "first")
        // The writer may not grow the file past its size now (SQLite keeps the transaction open).
        try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = 1") }
        let errors = StoreErrors()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<40 {
                group.addTask {
                    do {
                        _ = try await store.ingest(NewEvent(source: "open", type: "t", providerID: "big_\(index)", headers: [], body: Array(repeating: 0x61, count: 16_000)))
                    } catch let error as StoreError {
                        errors.add(error)
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(errors.kinds.count == 40, "no event fits")
        #expect(errors.kinds.allSatisfy { $0 == .unavailable }, "a full database is storage down: \(errors.kinds)")
        guard case .lastWriteFailed = store.monitor.readiness() else { throw TestFailure("a full database left the store ready") }
        try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = 1073741823") }
        try await ingest(store, count: 3, prefix: "after")
        try await store.close()
    }

    // MARK: retention

    @Test("pruning 200,000 old events while ingesting: every request answered 200, old rows gone, new kept, dedupe keys kept for the window")
    func pruneUnderLoad() async throws {
        let folder = try TemporaryFolder.make()
        let path = folder.appendingPathComponent("doorbell.db").path
        try await SQLiteEventStore(path: path).close()  // the schema
        let old = 200_000
        try Python.run("""
            import sqlite3, sys, time
            db = sqlite3.connect(sys.argv[1])
            now = int(time.time() * 1000)
            day = 86400 * 1000
            with db:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute(f'''WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {int(sys.argv[2])} - 1)
                    INSERT INTO events (id, source, type, provider_id, received_at, headers, body)
                    SELECT 'evt_seed_' || i, 'stripe', 'seeded', 'old_' || i, {now - 3 * day}, '', CAST('{{}}' AS BLOB) FROM n''')
                # Older than the dedupe window: their keys are forgotten with them.
                for i in range(10):
                    db.execute("INSERT INTO events (id, source, type, provider_id, received_at, headers, body) VALUES (?, 'stripe', 'seeded', ?, ?, '', X'7B7D')",
                               (f"evt_ancient_{i}", f"ancient_{i}", now - 10 * day))
                # A finished run with an output and an attempt (pruned with its event) and a paused
                # delivery (its event is kept: work still waits).
                db.execute("INSERT INTO runs (id, event_id, automation, status, due_at, created_at, updated_at) VALUES ('run_done', 'evt_seed_7', 'a', 'succeeded', ?, ?, ?)", (now - 3 * day,) * 3)
                db.execute("INSERT INTO step_results (run_id, step_id, position, output, completed_at) VALUES ('run_done', 's', 0, '{}', ?)", (now - 3 * day,))
                db.execute("INSERT INTO attempts (run_id, number, endpoint, started_at, status, latency_ms) VALUES ('run_done', 1, 'e', ?, 200, 5)", (now - 3 * day,))
                db.execute("INSERT INTO events (id, source, type, provider_id, received_at, headers, body) VALUES ('evt_waiting', 'stripe', 'kept', 'waiting', ?, '', X'7B7D')", (now - 3 * day,))
                db.execute("INSERT INTO runs (id, event_id, automation, status, due_at, created_at, updated_at, endpoint) VALUES ('dlv_paused', 'evt_waiting', 'endpoint:e', 'paused', ?, ?, ?, 'e')", (now - 3 * day,) * 3)
            """, [path, String(old)])

        let config = TestConfigs.standard() + "\nretention: { events: 1d, runs: 1d, attempts: 1d, dedupe_window: 7d }\n"
        let acknowledged = Acknowledged()
        let refused = Acknowledged()
        let sawPruningMidway = Latch()
        try await TestServer.with(config: config, directory: folder) { server in
            let url = "\(server.baseURL)/hooks/stripe"
            let done = Latch()
            try await withThrowingTaskGroup(of: Void.self) { group in
                let next = Counter()
                for _ in 0..<8 {
                    group.addTask {
                        while !done.isSet, let index = next.take(below: 100_000) {
                            let id = "new_\(index)"
                            let body = TestFixtures.stripeEvent(id: id)
                            let reply = try await post(url, body: body, headers: TestFixtures.stripeHeaders(body, secret: TestConfigs.stripeSecret))
                            _ = reply.status == 200 ? acknowledged.add(id) : refused.add("\(id): \(reply.status) \(reply.body)")
                        }
                    }
                }
                // The pruner starts with the server; wait until the seeded rows are gone (about a
                // minute alone: it rests as long as each 100-row batch took; at most 180 s, as the
                // suite shares two cores with PostgreSQL and other tests).
                let deadline = Date().addingTimeInterval(180)
                while Date() < deadline {
                    let left = try await server.store.countEvents(matching: EventQuery(type: "seeded"))
                    if left > 0 && left < old && acknowledged.count > 0 { sawPruningMidway.set() }
                    if left == 0 { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                done.set()
                try await group.waitForAll()
            }
            #expect(refused.count == 0, "every request during pruning is answered 200: \(refused.ids.sorted().prefix(5))")
            #expect(acknowledged.count > 0)
            #expect(sawPruningMidway.isSet, "requests were answered while pruning was half done")
            #expect(try await server.store.countEvents(matching: EventQuery(type: "seeded")) == 0)
            #expect(try await server.store.event(id: "evt_waiting") != nil, "an event with a paused delivery is kept")
            #expect(try await server.store.run(id: "run_done") == nil)
            #expect(try await server.store.attempts(runID: "run_done").isEmpty)
            let stored = Set(try await server.store.events(matching: EventQuery(source: "stripe", limit: 200_000)).compactMap(\.event.providerID))
            #expect(acknowledged.ids.isSubset(of: stored), "every new event is kept")

            // A retry of a pruned event inside the dedupe window is still a duplicate; one older than
            // the window is new again.
            let retry = TestFixtures.stripeEvent(id: "old_5")
            let again = try await post(url, body: retry, headers: TestFixtures.stripeHeaders(retry, secret: TestConfigs.stripeSecret))
            #expect(again.status == 200)
            #expect(again.json["duplicate"] as? Bool == true)
            #expect(again.json["id"] as? String == "evt_seed_5")
            let ancient = TestFixtures.stripeEvent(id: "ancient_3")
            let fresh = try await post(url, body: ancient, headers: TestFixtures.stripeHeaders(ancient, secret: TestConfigs.stripeSecret))
            #expect(fresh.status == 200)
            #expect(fresh.json["duplicate"] as? Bool == false)

            let metrics = try await get("\(server.baseURL)/metrics").body
            #expect(metrics.contains("doorbell_database_bytes{file=\"db\"}"))
            #expect(metrics.contains("doorbell_database_pages{kind=\"free\"}"))
        }
    }

    @Test("doorbell prune --dry-run counts without deleting; doorbell prune deletes exactly that; bad retention values are config errors")
    func pruneCommand() async throws {
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try (TestConfigs.standard() + "\nretention: { events: 2d, runs: 2d, attempts: 2d, dedupe_window: 7d }\n").write(to: config, atomically: true, encoding: .utf8)
        let path = folder.appendingPathComponent("doorbell.db").path
        try await SQLiteEventStore(path: path).close()
        try Python.run("""
            import sqlite3, sys, time
            db = sqlite3.connect(sys.argv[1])
            now = int(time.time() * 1000)
            day = 86400 * 1000
            event = "INSERT INTO events (id, source, type, provider_id, received_at, headers, body) VALUES (?, 'stripe', 't', ?, ?, '', X'7B7D')"
            run = "INSERT INTO runs (id, event_id, automation, status, due_at, created_at, updated_at) VALUES (?, ?, 'a', ?, ?, ?, ?)"
            with db:
                for i in range(40):
                    db.execute(event, (f"evt_old_{i}", f"old_{i}", now - 3 * day))
                db.execute(event, ("evt_ancient", "ancient", now - 10 * day))
                for i in range(5):
                    db.execute(event, (f"evt_new_{i}", f"new_{i}", now))
                for i in (0, 1):
                    db.execute(run, (f"run_{i}", f"evt_old_{i}", "succeeded", now - 3 * day, now - 3 * day, now - 3 * day))
                    db.execute("INSERT INTO step_results (run_id, step_id, position, output, completed_at) VALUES (?, 's', 0, '{}', ?)", (f"run_{i}", now - 3 * day))
                    db.execute("INSERT INTO attempts (run_id, number, endpoint, started_at, status, latency_ms) VALUES (?, 1, 'e', ?, 200, 5)", (f"run_{i}", now - 3 * day))
                db.execute(run, ("run_pending", "evt_old_2", "pending", now + day, now - 3 * day, now - 3 * day))
            """, [path])
        let cli = { (arguments: [String]) throws -> [String: Any] in
            let result = try ChildProcess.doorbell(arguments + ["--config", config.path, "--json"])
            guard result.status == 0, let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
                throw TestFailure("\(arguments): \(result.stdout) \(result.stderr)")
            }
            return object
        }
        let expected: [String: Int] = ["events": 40, "runs": 2, "step_outputs": 2, "attempts": 2, "dedupe_keys_kept": 39, "dedupe_keys_expired": 0]
        let dryRun = try cli(["prune", "--dry-run"])
        for (key, value) in expected { #expect(dryRun[key] as? Int == value, "dry run \(key): \(dryRun)") }
        #expect((try cli(["prune", "--dry-run"])["events"] as? Int) == 40, "a dry run deletes nothing")
        let pruned = try cli(["prune"])
        for (key, value) in expected { #expect(pruned[key] as? Int == value, "prune \(key): \(pruned)") }
        let left = try ChildProcess.doorbell(["events", "list", "--json", "--config", config.path])
        let ids = Set(((try JSONSerialization.jsonObject(with: Data(left.stdout.utf8)) as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String })
        #expect(ids == Set((0..<5).map { "evt_new_\($0)" } + ["evt_old_2"]), "the new events and the one with a pending run are kept")
        #expect((try cli(["prune"])["events"] as? Int) == 0)

        try (TestConfigs.standard() + "\nretention: { events: 5m, dedupe_window: 1h }\n").write(to: config, atomically: true, encoding: .utf8)
        let bad = try ChildProcess.doorbell(["check", "--config", config.path])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("retention.events: expected a duration of at least 1h"), "\(bad.stderr)")
        #expect(bad.stderr.contains("retention.dedupe_window"), "\(bad.stderr)")
    }

    // MARK: faults

    enum FileFault: String, CaseIterable, Sendable {
        case deleted, replaced, truncated
        /// Truncated, then grown past its old size (as later writes would): only the header shows it.
        case truncatedThenGrown
        /// The main file (not the WAL) truncated.
        case truncatedMain
        /// An older copy written over the file in place (`cp backup.db doorbell.db`): same inode, a
        /// valid header, not smaller.
        case overwrittenInPlace

        /// The word the log (the store's reason) uses for it.
        var word: String {
            switch self {
            case .truncatedThenGrown, .truncatedMain: "truncated"
            case .overwrittenInPlace: "overwritten"
            default: rawValue
            }
        }
    }

    @Test("the database file deleted, replaced or truncated under load: 503 from then on, /readyz 503, and what was acknowledged before was committed", arguments: FileFault.allCases)
    func fileLostUnderLoad(fault: FileFault) async throws {
        let folder = try TemporaryFolder.make()
        let database = folder.appendingPathComponent("doorbell.db")
        try await TestServer.with(config: TestConfigs.standard(), directory: folder) { server in
            let url = "\(server.baseURL)/hooks/stripe"
            let before = Acknowledged()
            try await send(count: 300, prefix: "before", to: url, acknowledged: before)
            #expect(before.count == 300)
            // Idle now: the files on disk hold every acknowledged event; check it on a copy.
            let aside = try TemporaryFolder.make()
            for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: database.path + suffix) {
                try FileManager.default.copyItem(atPath: database.path + suffix, toPath: aside.appendingPathComponent("doorbell.db").path + suffix)
            }
            let copy = try SQLiteEventStore(path: aside.appendingPathComponent("doorbell.db").path)
            let copied = Set(try await copy.events(matching: EventQuery(limit: 10_000)).compactMap(\.event.providerID))
            try await copy.close()
            #expect(before.ids.isSubset(of: copied))
            // An older copy of the database, for `overwrittenInPlace`.
            try await server.store.backup(to: folder.appendingPathComponent("older.db").path)

            // Load again, then the fault in the middle of it.
            let faulted = Latch()
            let afterFault = Acknowledged()
            let startedAfterFault = Acknowledged()
            let answered200 = Acknowledged()
            try await withThrowingTaskGroup(of: Void.self) { group in
                let next = Counter()
                for _ in 0..<8 {
                    group.addTask {
                        while let index = next.take(below: 600) {
                            let late = faulted.isSet
                            let id = "during_\(index)"
                            let body = TestFixtures.stripeEvent(id: id)
                            let reply = try await post(url, body: body, headers: TestFixtures.stripeHeaders(body, secret: TestConfigs.stripeSecret))
                            if reply.status == 200 { _ = answered200.add(id) }
                            guard late else { continue }
                            _ = startedAfterFault.add(id)
                            if reply.status != 503 { _ = afterFault.add("\(id): \(reply.status)") }
                        }
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(100))
                    try fault.apply(to: database)
                    faulted.set()
                }
                try await group.waitForAll()
            }
            #expect(startedAfterFault.count > 0, "requests were sent after the fault")
            #expect(afterFault.count == 0, "requests started after the file was \(fault.rawValue) must all be 503: \(afterFault.ids.sorted().prefix(5))")
            let ready = try await get("\(server.baseURL)/readyz")
            #expect(ready.status == 503)
            // Anyone may ask /readyz: a few words, no path, no error text; the detail is logged.
            #expect(ready.json["reason"] as? String == "database file lost", "\(ready.body)")
            #expect(!ready.body.contains(folder.path) && !ready.body.contains("doorbell.db"), "\(ready.body)")
            let store = try #require(server.store as? SQLiteEventStore)
            guard case .fileLost(let reason) = store.monitor.readiness() else { throw TestFailure("the store still counts as ready") }
            #expect(reason.contains(fault.word), "the logged reason names what happened: \(reason)")

            // Deleted or replaced, the open file still holds everything: the server copies it beside
            // the path, and that copy holds every event ever answered 200.
            guard fault == .deleted || fault == .replaced else { return }
            var rescued: URL?
            for _ in 0..<200 where rescued == nil {
                rescued = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
                    .first { $0.lastPathComponent.hasPrefix("doorbell.db.rescued-") && !$0.lastPathComponent.hasSuffix(".partial") }
                if rescued == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let rescuedURL = try #require(rescued, "a rescued copy is written beside the lost file")
            let rescuedStore = try SQLiteEventStore(path: rescuedURL.path, access: .readOnly)
            let held = Set(try await rescuedStore.events(matching: EventQuery(limit: 10_000)).compactMap(\.event.providerID))
            try await rescuedStore.close()
            #expect(before.ids.union(answered200.ids).isSubset(of: held), "acknowledged but not in the rescued copy: \(before.ids.union(answered200.ids).subtracting(held).sorted().prefix(5))")
        }
    }

    @Test("a full disk: 503 and /readyz 503 while writes fail; space freed: /readyz and ingest 200 again without a restart", .enabled(if: TmpfsMount.available, "needs root to mount a small tmpfs"))
    func writeFailureRecovers() async throws {
        // Tests run as root, which ignores file modes, so a read-only spell cannot be made with chmod;
        // a full file system is the real write failure used here (the recovery path is the same).
        let mount = try TmpfsMount(sizeKiB: 2048)
        defer { mount.unmount() }
        try await TestServer.with(config: TestConfigs.standard(), directory: mount.url) { server in
            let url = "\(server.baseURL)/hooks/stripe"
            let first = Acknowledged()
            try await send(count: 20, prefix: "first", to: url, acknowledged: first)
            #expect(first.count == 20)
            #expect(try await get("\(server.baseURL)/readyz").status == 200)

            let filler = mount.url.appendingPathComponent("filler")
            try fillDisk(filler)
            var refused = false
            let padding = String(repeating: "p", count: 8000)
            for index in 0..<200 where !refused {
                let body = Array(#"{"id":"full_\#(index)","type":"t","pad":"\#(padding)"}"#.utf8)
                let reply = try await post(url, body: body, headers: TestFixtures.stripeHeaders(body, secret: TestConfigs.stripeSecret))
                if reply.status != 200 {
                    #expect(reply.status == 503)
                    refused = true
                }
            }
            #expect(refused, "a full disk refuses events")
            let notReady = try await get("\(server.baseURL)/readyz")
            #expect(notReady.status == 503)
            #expect(notReady.json["reason"] as? String == "last write failed", "\(notReady.body)")

            try FileManager.default.removeItem(at: filler)
            // /readyz probes at most once a second, so the first answers may still be the old failure.
            #expect(try await eventually(5) { try await get("\(server.baseURL)/readyz").status == 200 }, "readiness returns once a write succeeds")
            let after = Acknowledged()
            try await send(count: 20, prefix: "after", to: url, acknowledged: after)
            #expect(after.count == 20, "ingest answers 200 again without a restart")
            let stored = Set(try await server.store.events(matching: EventQuery(limit: 1000)).compactMap(\.event.providerID))
            #expect(first.ids.union(after.ids).isSubset(of: stored))
        }
    }

    @Test("writes refused (the writer made read-only; no root needed): 503 and /readyz 503 \"last write failed\"; writable again: /readyz and ingest 200 without a restart")
    func writeFailureRecoversWithoutRoot() async throws {
        try await TestServer.with(config: TestConfigs.standard()) { server in
            let url = "\(server.baseURL)/hooks/stripe"
            let store = try #require(server.store as? SQLiteEventStore)
            let first = Acknowledged()
            try await send(count: 10, prefix: "first", to: url, acknowledged: first)
            #expect(first.count == 10)

            try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA query_only = 1") }
            let body = TestFixtures.stripeEvent(id: "refused_1")
            let refused = try await post(url, body: body, headers: TestFixtures.stripeHeaders(body, secret: TestConfigs.stripeSecret))
            #expect(refused.status == 503)
            #expect(refused.body.contains("storage unavailable"), "\(refused.body)")
            let notReady = try await get("\(server.baseURL)/readyz")
            #expect(notReady.status == 503)
            #expect(notReady.json["reason"] as? String == "last write failed", "\(notReady.body)")

            try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA query_only = 0") }
            // /readyz probes at most once a second, so the first answers may still be the old failure.
            #expect(try await eventually(5) { try await get("\(server.baseURL)/readyz").status == 200 }, "ready again once a write succeeds")
            let after = Acknowledged()
            try await send(count: 10, prefix: "after", to: url, acknowledged: after)
            #expect(after.count == 10, "ingest answers 200 again without a restart")
        }
    }

    @Test("a clean shutdown checkpoints the WAL: the .db file alone holds every event")
    func cleanShutdownCheckpoints() async throws {
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try TestConfigs.standard().write(to: config, atomically: true, encoding: .utf8)
        let server = try ServeProcess(config: config)
        try server.start()
        let acknowledged = Acknowledged()
        try await send(count: 200, prefix: "shutdown", to: "\(server.baseURL)/hooks/stripe", acknowledged: acknowledged)
        #expect(server.terminate() == 0)
        let database = folder.appendingPathComponent("doorbell.db").path
        let wal = (try? FileManager.default.attributesOfItem(atPath: database + "-wal"))?[.size] as? NSNumber
        #expect(wal == nil || wal?.intValue == 0, "the -wal file is gone or empty after a clean shutdown")

        let alone = try TemporaryFolder.make().appendingPathComponent("copy.db")
        try FileManager.default.copyItem(atPath: database, toPath: alone.path)
        let copy = try SQLiteEventStore(path: alone.path, access: .readOnly)
        let stored = Set(try await copy.events(matching: EventQuery(limit: 1000)).compactMap(\.event.providerID))
        try await copy.close()
        #expect(acknowledged.count == 200)
        #expect(acknowledged.ids.isSubset(of: stored))
    }

    @Test("doorbell backup copies a running server's database while it ingests; never overwrites")
    func backupWhileIngesting() async throws {
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try TestConfigs.standard().write(to: config, atomically: true, encoding: .utf8)
        let server = try ServeProcess(config: config)
        try server.start()
        defer { _ = server.terminate() }
        let url = "\(server.baseURL)/hooks/stripe"
        let before = Acknowledged()
        try await send(count: 300, prefix: "before", to: url, acknowledged: before)

        let backup = folder.appendingPathComponent("backup.db")
        let during = Acknowledged()
        let result = try await withThrowingTaskGroup(of: ChildProcess.Result?.self) { group in
            group.addTask {
                try await send(count: 300, prefix: "during", to: url, acknowledged: during)
                return nil
            }
            group.addTask { try ChildProcess.doorbell(["backup", backup.path, "--config", config.path]) }
            var result: ChildProcess.Result?
            for try await value in group { if let value { result = value } }
            return try #require(result)
        }
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("backed up"))
        let copy = try SQLiteEventStore(path: backup.path, access: .readOnly)
        let stored = Set(try await copy.events(matching: EventQuery(limit: 10_000)).compactMap(\.event.providerID))
        try await copy.close()
        #expect(before.ids.isSubset(of: stored), "the copy holds everything acknowledged before the backup started")

        let again = try ChildProcess.doorbell(["backup", backup.path, "--config", config.path])
        #expect(again.status == 1)
        #expect(again.stderr.contains("exists"))

        // Commands that write next to the running server (prune, endpoints add) leave its files as
        // its watch expects them: it keeps acknowledging.
        #expect(try ChildProcess.doorbell(["prune", "--config", config.path]).status == 0)
        #expect(try ChildProcess.doorbell(["endpoints", "add", "partner", "https://partner.example.com/in", "--config", config.path]).status == 0)
        let after = Acknowledged()
        try await send(count: 20, prefix: "after", to: url, acknowledged: after)
        #expect(after.count == 20, "the server still answers 200 after other commands wrote to its database")
        #expect(try await get("\(server.baseURL)/readyz").status == 200)
    }

    // MARK: command line

    @Test("every list takes --json; read-only commands neither create nor migrate the database and name a schema mismatch")
    func readOnlyCommands() async throws {
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try (TestConfigs.standard() + """

            endpoints:
              - { id: erp, url: "https://erp.example.com/hooks?token=secret-token-value", events: ["order.*"], secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }
            """).write(to: config, atomically: true, encoding: .utf8)
        let database = folder.appendingPathComponent("doorbell.db").path
        let cli = { (arguments: [String]) throws -> ChildProcess.Result in try ChildProcess.doorbell(arguments + ["--config", config.path]) }

        let missing = try cli(["events", "list"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no database"), "\(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: database), "a read-only command creates nothing")

        let store = try SQLiteEventStore(path: database)
        _ = try await store.ingest(NewEvent(source: "stripe", type: "payment_intent.succeeded", providerID: "evt_1", headers: [], body: Array("{}".utf8)))
        try await store.close()
        for list in [["events", "list"], ["runs", "list"], ["deliveries", "list"], ["endpoints", "list"]] {
            let result = try cli(list + ["--json"])
            #expect(result.status == 0, "\(list): \(result.stderr)")
            #expect((try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) is [Any], "\(list) --json prints a JSON list: \(result.stdout)")
        }
        let fixtures = try JSONSerialization.jsonObject(with: Data(try ChildProcess.doorbell(["trigger", "--list", "--json"]).stdout.utf8)) as? [[String: String]]
        #expect(fixtures?.contains { $0["name"] == "stripe payment_intent.succeeded" } == true, "trigger --list --json")
        let endpoints = try JSONSerialization.jsonObject(with: Data(try cli(["endpoints", "list", "--json"]).stdout.utf8)) as? [[String: Any]]
        #expect(endpoints?.first?["id"] as? String == "erp")
        #expect(endpoints?.first?["signing_secrets"] as? Int == 1)
        #expect(!(try cli(["endpoints", "list", "--json"]).stdout.contains("secret-token-value")), "the URL's token is not printed")

        let check = try cli(["check"])
        #expect(check.stdout.contains("database: "), "\(check.stdout)")
        #expect(check.stdout.contains("retention: events 30d, runs 30d, attempts 30d, dedupe window 7d"))
        let dryRun = try cli(["prune", "--dry-run", "--json"])
        #expect(dryRun.status == 0, "\(dryRun.stderr)")
        #expect((try? JSONSerialization.jsonObject(with: Data(dryRun.stdout.utf8)) as? [String: Any])?["events"] as? Int == 0)

        // A database from an older doorbell (its newest migration not applied): read-only commands
        // say so and leave it alone.
        let remaining = try Python.output("""
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            with db:
                db.execute("DELETE FROM grdb_migrations WHERE rowid = (SELECT MAX(rowid) FROM grdb_migrations)")
            print(db.execute("SELECT COUNT(*) FROM grdb_migrations").fetchone()[0])
            """, [database])
        let older = try cli(["events", "list"])
        #expect(older.status == 1)
        #expect(older.stderr.contains("is older than this doorbell"), "\(older.stderr)")
        #expect(older.stderr.contains("doorbell serve"), "says how to upgrade: \(older.stderr)")
        let after = try Python.output("import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM grdb_migrations').fetchone()[0])", [database])
        #expect(after == remaining, "a read-only command does not migrate")

        // A database from a newer doorbell: refused by readers and by commands that write.
        try Python.run("""
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            with db:
                db.execute("INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')")
            """, [database])
        for command in [["events", "list"], ["prune"]] {
            let newer = try cli(command)
            #expect(newer.status == 1)
            #expect(newer.stderr.contains("database schema 99 is newer than this doorbell ("), "\(command): \(newer.stderr)")
            #expect(newer.stderr.contains("): upgrade doorbell"), "\(command): \(newer.stderr)")
        }
    }

    // MARK: helpers

    /// Sends `count` signed Stripe events, 8 at a time, recording the ids answered 200.
    private func send(count: Int, prefix: String, to url: String, acknowledged: Acknowledged) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            let next = Counter()
            for _ in 0..<8 {
                group.addTask {
                    while let index = next.take(below: count) {
                        let id = "\(prefix)_\(index)"
                        let body = TestFixtures.stripeEvent(id: id)
                        let reply = try await post(url, body: body, headers: TestFixtures.stripeHeaders(body, secret: TestConfigs.stripeSecret))
                        if reply.status == 200 { _ = acknowledged.add(id) }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Ingests `count` events concurrently (they share group commits).
    private func ingest(_ store: SQLiteEventStore, count: Int, prefix: String) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask { _ = try await store.ingest(NewEvent(source: "open", type: "t", providerID: "\(prefix)_\(index)", headers: [], body: Array("{}".utf8))) }
            }
            try await group.waitForAll()
        }
    }

    /// Writes `file` until the file system is full.
    private func fillDisk(_ file: URL) throws {
        _ = FileManager.default.createFile(atPath: file.path, contents: nil)
        let handle = try FileHandle(forWritingTo: file)
        defer { try? handle.close() }
        let chunk = Data(repeating: 0x78, count: 4096)
        while (try? handle.write(contentsOf: chunk)) != nil {}
    }
}

extension HardeningStorageTests.FileFault {
    /// Does to the database what a careless operator or a cleanup script might.
    func apply(to database: URL) throws {
        switch self {
        case .deleted:
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database.path + suffix) }
        case .replaced:
            let other = database.deletingLastPathComponent().appendingPathComponent("other.db")
            try Data().write(to: other)
            _ = rename(other.path, database.path)
        case .truncated:
            _ = truncate(database.path + "-wal", 0)
        case .truncatedThenGrown:
            _ = truncate(database.path + "-wal", 0)
            _ = truncate(database.path + "-wal", 64 << 20)
        case .truncatedMain:
            _ = truncate(database.path, 0)
        case .overwrittenInPlace:
            // Written over the open file without truncating it first: only the header shows it.
            let older = try Data(contentsOf: database.deletingLastPathComponent().appendingPathComponent("older.db"))
            let handle = try FileHandle(forWritingTo: database)
            try handle.write(contentsOf: older)
            try handle.close()
        }
    }
}

/// Store errors collected from many tasks.
final class StoreErrors: Sendable {
    private let errors = Mutex<[StoreError.Kind]>([])
    func add(_ error: StoreError) { errors.withLock { $0.append(error.kind) } }
    var kinds: [StoreError.Kind] { errors.withLock { $0 } }
}

/// A clock that stands still until a test moves it.
final class StorageTestClock: Sendable {
    private let time = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    func advance(by seconds: Double) { time.withLock { $0 = $0.addingTimeInterval(seconds) } }
    var now: @Sendable () -> Date { { self.time.withLock { $0 } } }
}

/// python3's sqlite3 module, for what the store's API rightly cannot do (seed rows in bulk, hold the
/// write lock from another process, age a database's schema).
enum Python {
    static func run(_ script: String, _ arguments: [String]) throws {
        let result = try ChildProcess.run("/usr/bin/env", ["python3", "-c", script] + arguments)
        guard result.status == 0 else { throw TestFailure("python failed: \(result.stderr)") }
    }

    static func output(_ script: String, _ arguments: [String]) throws -> String {
        let result = try ChildProcess.run("/usr/bin/env", ["python3", "-c", script] + arguments)
        guard result.status == 0 else { throw TestFailure("python failed: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Another process holding SQLite's write lock (BEGIN IMMEDIATE) until released.
final class SQLiteLockHolder: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()

    init(path: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
            db.execute("BEGIN IMMEDIATE")
            print("READY", flush=True)
            sys.stdin.readline()
            db.execute("COMMIT")
            """, path]
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        guard line.hasPrefix("READY") else { throw TestFailure("lock holder did not start: \(line)") }
    }

    func release() {
        input.fileHandleForWriting.write(Data("\n".utf8))
        process.waitUntilExit()
    }
}
