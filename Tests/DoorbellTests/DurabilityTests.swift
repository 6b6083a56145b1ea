import DoorbellCore
import DoorbellStorage
import Foundation
import Logging
import Testing

/// Nothing acknowledged is ever lost: kill -9 mid-stream, SIGTERM with requests in flight, a full disk.
@Suite("Durability", .serialized)
struct DurabilityTests {
    @Test("kill -9 mid-stream: every event that got 2xx is stored, exactly once")
    func crashMidStream() async throws {
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try TestConfigs.standard().write(to: config, atomically: true, encoding: .utf8)
        let server = try ServeProcess(config: config)
        try server.start()

        let total = 3000
        let killAfter = 1000
        let acknowledged = Acknowledged()
        let url = "\(server.baseURL)/hooks/stripe"
        try await withThrowingTaskGroup(of: Void.self) { group in
            // 64 senders share the ids; each records the provider ids answered 2xx.
            let next = Counter()
            for _ in 0..<64 {
                group.addTask {
                    // After the kill no new request starts: a client's connect retries would only wait out its timeout.
                    while !server.isStopped, let index = next.take(below: total) {
                        let id = "evt_crash_\(index)"
                        let body = TestFixtures.stripeEvent(id: id)
                        if let reply = try? await post(url, body: body, headers: TestFixtures.stripeHeaders(body, secret: TestConfigs.stripeSecret), timeout: 10),
                            reply.status == 200
                        {
                            if acknowledged.add(id) == killAfter { server.kill9() }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let acked = acknowledged.ids
        #expect(acked.count >= killAfter, "the server was killed after \(killAfter) acknowledgements")
        #expect(acked.count < total, "the kill should have interrupted the stream")

        // Restart on the same file: every acknowledged id is there exactly once.
        let restarted = try ServeProcess(config: config)
        try restarted.start()
        #expect(try await get("\(restarted.baseURL)/readyz").status == 200)
        #expect(restarted.terminate() == 0)

        let store = try SQLiteEventStore(path: folder.appendingPathComponent("doorbell.db").path)
        let stored = try await store.events(matching: EventQuery(limit: total * 2))
        try await store.close()
        let storedIDs = stored.compactMap(\.event.providerID)
        #expect(Set(storedIDs).count == storedIDs.count, "no provider id is stored twice")
        let missing = acked.subtracting(storedIDs)
        #expect(missing.isEmpty, "acknowledged but lost: \(missing.sorted().prefix(10))")
    }

    @Test("SIGTERM finishes in-flight requests, then exits 0")
    func gracefulShutdown() async throws {
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try TestConfigs.standard().write(to: config, atomically: true, encoding: .utf8)
        let server = try ServeProcess(config: config)
        try server.start()
        let acknowledged = Acknowledged()
        let url = "\(server.baseURL)/hooks/stripe"
        async let status: Int32 = {
            try? await Task.sleep(for: .milliseconds(150))
            return server.terminate()
        }()
        try await withThrowingTaskGroup(of: Void.self) { group in
            let next = Counter()
            for _ in 0..<16 {
                group.addTask {
                    while !server.isStopped, let index = next.take(below: 100_000) {
                        let id = "evt_term_\(index)"
                        let body = TestFixtures.stripeEvent(id: id)
                        guard let reply = try? await post(url, body: body, headers: TestFixtures.stripeHeaders(body, secret: TestConfigs.stripeSecret), timeout: 10) else { return }
                        if reply.status == 200 { _ = acknowledged.add(id) }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(await status == 0, "doorbell serve exits 0 on SIGTERM")
        let store = try SQLiteEventStore(path: folder.appendingPathComponent("doorbell.db").path)
        let storedIDs = Set(try await store.events(matching: EventQuery(limit: 1_000_000)).compactMap(\.event.providerID))
        try await store.close()
        #expect(acknowledged.count > 0)
        #expect(acknowledged.ids.isSubset(of: storedIDs))
    }

    @Test("a full disk answers 503, never 2xx, and keeps what it acknowledged", .enabled(if: TmpfsMount.available, "needs root to mount a small tmpfs"))
    func diskFull() async throws {
        let mount = try TmpfsMount(sizeKiB: 640)  // room for the schema and its migrations, then a few dozen events
        defer { mount.unmount() }
        let acknowledged = Acknowledged()
        var sawUnavailable = false
        try await TestServer.with(config: TestConfigs.standard(), directory: mount.url) { (server: TestServer) async throws in
            let padding = String(repeating: "p", count: 4000)
            for index in 0..<400 {
                let id = "evt_full_\(index)"
                let body = Array(#"{"id":"\#(id)","type":"t","pad":"\#(padding)"}"#.utf8)
                let reply = try await post("\(server.baseURL)/hooks/stripe", body: body, headers: TestFixtures.stripeHeaders(body, secret: TestConfigs.stripeSecret))
                if reply.status == 200 { _ = acknowledged.add(id) }
                else {
                    #expect(reply.status == 503, "a full disk is 503, got \(reply.status) \(reply.body)")
                    sawUnavailable = true
                }
            }
        }
        #expect(sawUnavailable, "400 × 4 KB must not fit in 640 KiB")
        #expect(acknowledged.count > 0)
        let store = try SQLiteEventStore(path: mount.url.appendingPathComponent("doorbell.db").path)
        let stored = Set(try await store.events(matching: EventQuery(limit: 10_000)).compactMap(\.event.providerID))
        try await store.close()
        #expect(acknowledged.ids.isSubset(of: stored))
    }
}

/// Provider ids that were answered 2xx, from many tasks.
final class Acknowledged: @unchecked Sendable {
    private let lock = NSLock()
    private var set: Set<String> = []

    /// Adds an id; returns how many there are now.
    func add(_ id: String) -> Int {
        lock.withLock {
            set.insert(id)
            return set.count
        }
    }

    var ids: Set<String> { lock.withLock { set } }
    var count: Int { lock.withLock { set.count } }
}

/// Hands out 0, 1, 2, … to many tasks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func take(below limit: Int) -> Int? {
        lock.withLock {
            guard value < limit else { return nil }
            defer { value += 1 }
            return value
        }
    }
}

/// A small real filesystem that fills up: a tmpfs mounted for the test (needs root).
struct TmpfsMount {
    let url: URL

    static var available: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/bin/mount") }

    init(sizeKiB: Int) throws {
        url = try TemporaryFolder.make()
        let result = try ChildProcess.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(sizeKiB)k", "tmpfs", url.path])
        guard result.status == 0 else { throw TestFailure("mount failed: \(result.stderr)") }
    }

    func unmount() {
        _ = try? ChildProcess.run("/bin/umount", [url.path])
    }
}
