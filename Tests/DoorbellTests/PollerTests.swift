import AsyncHTTPClient
@testable import DoorbellAutomation
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import NIOHTTP1
import Testing

/// A JSON API in a child process (Fixtures/poll_api.py) whose items the test adds, changes and
/// deletes between polls; it counts requests, pages and 304s, and fails or hangs on request.
final class PollAPI: @unchecked Sendable {
    let process = Process()
    let port: Int

    init() throws {
        let ready = try startPythonFixture(process, script: "poll_api.py", arguments: [])
        guard let first = ready.first, let port = Int(first) else { throw TestFailure("poll_api.py said READY \(ready)") }
        self.port = port
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    @discardableResult
    func control(_ path: String, _ json: [String: Any] = [:]) async throws -> Reply {
        let reply = try await post(baseURL + "/_control/" + path, body: Array(try JSONSerialization.data(withJSONObject: json)), headers: [("Content-Type", "application/json")])
        guard reply.status == 200 else { throw TestFailure("control \(path): \(reply.status) \(reply.body)") }
        return reply
    }

    func add(count: Int, prefix: String = "item", start: Int = 0) async throws { try await control("add", ["count": count, "prefix": prefix, "start": start]) }
    func add(_ items: [[String: Any]]) async throws { try await control("add", ["items": items]) }
    func change(_ id: String, version: String) async throws { try await control("change", ["id": id, "updated_at": version]) }

    func stats() async throws -> [String: Any] { try await get(baseURL + "/_control/stats").json }
    func stat(_ key: String) async throws -> Int { try await stats()[key] as? Int ?? -1 }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// A loopback port free right now (bound, read, closed), for a server that must keep its port across a restart.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0 else { throw TestFailure("bind: \(errno)") }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

@Suite("Pollers", .serialized)
struct PollerTests {
    /// A config with one poller `legacy` over `path` of the API, and automations that post every
    /// poller event and every `poller.failing`/`recovered` notice to the receiver.
    static func config(api: PollAPI, receiver: String, path: String = "/items?per_page=100", poller extra: String = "", every: String = "1h", storage: String = "sqlite:doorbell.db") -> String {
        """
        server: { listen: "127.0.0.1:0" }
        storage: "\(storage)"
        api: { tokens: ["\(apiToken)"] }
        outbound: { allow_private: ["127.0.0.0/8"] }
        automations:
          - id: on-order
            on: ["legacy:order.*"]
            steps:
              - id: tell
                http: { method: POST, url: "\(receiver)/order", body: "{{event.type}} {{body.id}} {{body.updated_at}}" }
          - id: on-failing
            on: ["doorbell:poller.*"]
            steps:
              - id: alert
                http: { method: POST, url: "\(receiver)/alert", body: "{{event.type}} {{body.poller}}" }
        pollers:
          - id: legacy
            every: \(every)
            request:
              url: "\(api.baseURL)\(path)"
              auth: { bearer: "poll-secret-token" }
              timeout: 5s
            items: /items
            item_id: /id
            item_version: /updated_at
            emit: order.created
            emit_changed: order.updated
            pagination: { next: /next }
        \(extra.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        """
    }

    static func status(_ server: TestServer) async throws -> [String: Any] {
        try await api(.GET, server.baseURL + "/api/v1/pollers/legacy").json
    }

    static func run(_ server: TestServer, dryRun: Bool = false) async throws -> [String: Any] {
        let reply = try await api(.POST, server.baseURL + "/api/v1/pollers/legacy/run", dryRun ? ["dry_run": true] : nil)
        guard reply.status == 200 else { throw TestFailure("run: \(reply.status) \(reply.body)") }
        return reply.json
    }

    static func waitForFirstPoll(_ server: TestServer) async throws {
        let done = try await eventually(15) { try await status(server)["last_success_at"] is String }
        guard done else { throw TestFailure("the first poll did not succeed: \(try await status(server))") }
    }

    static func events(_ server: TestServer, source: String = "legacy") async throws -> Int {
        try await server.store.countEvents(matching: EventQuery(source: source))
    }

    @Test("baseline emits nothing; a new item one event; a changed version one emit_changed event; unchanged answers 304; each event runs its automation like a received one")
    func newChangedNotModified() async throws {
        let pollAPI = try PollAPI()
        defer { pollAPI.stop() }
        try await pollAPI.add(count: 3)
        try await Receiver.with { receiver in
            // One page (no pagination): its ETag covers every item, so an unchanged list is a 304.
            let yaml = Self.config(api: pollAPI, receiver: receiver.baseURL).replacingOccurrences(of: "pagination: { next: /next }", with: "")
            try await TestServer.with(config: yaml) { server in
                try await Self.waitForFirstPoll(server)
                #expect(try await Self.events(server) == 0, "baseline: remembered, nothing emitted")
                #expect(try await Self.status(server)["items_seen"] as? Int == 3)

                try await pollAPI.add([["id": "item-new", "name": "new", "updated_at": "v1"]])
                let first = try await Self.run(server)
                let emitted = first["emitted"] as? [[String: Any]] ?? []
                #expect(emitted.count == 1)
                #expect(emitted.first?["type"] as? String == "order.created")
                #expect(emitted.first?["provider_id"] as? String == "item-new")
                #expect(try await Self.events(server) == 1)

                try await pollAPI.change("item-000001", version: "v2")
                let second = try await Self.run(server)
                let changed = second["emitted"] as? [[String: Any]] ?? []
                #expect(changed.count == 1)
                #expect(changed.first?["type"] as? String == "order.updated")
                #expect(changed.first?["provider_id"] as? String == "item-000001@v2")
                #expect(try await Self.events(server) == 2)

                let third = try await Self.run(server)
                #expect(third["not_modified"] as? Bool == true)
                #expect((third["emitted"] as? [Any])?.isEmpty == true)
                #expect(try await pollAPI.stat("not_modified") == 1, "the API counted one 304")
                #expect(try await Self.events(server) == 2)

                // The poller's events started the automation exactly as received events do.
                #expect(try await eventually { receiver.requests("/order").count == 2 })
                #expect(Set(receiver.requests("/order").map(\.body)) == ["order.created item-new v1", "order.updated item-000001 v2"])
                // Bearer auth reached the API; the token is in no status.
                #expect((try await pollAPI.stats()["auth"] as? [String]) == ["Bearer poll-secret-token"])
                let list = try await api(.GET, server.baseURL + "/api/v1/pollers")
                #expect(!list.body.contains("poll-secret-token"))
                let row = (list.json["data"] as? [[String: Any]])?.first ?? [:]
                #expect(row["id"] as? String == "legacy")
                #expect(row["items_seen"] as? Int == 4)
                #expect(row["failing"] as? Bool == false)
                #expect(row["next_poll_at"] is String)
                #expect(row.keys.contains("last_error"))
            }
        }
    }

    @Test("2,500 items over 25 pages (Link rel=next) → 2,500 events, none twice; the next poll reads every page again (page 1's ETag does not cover the rest) and emits nothing")
    func manyPages() async throws {
        let pollAPI = try PollAPI()
        defer { pollAPI.stop() }
        try await pollAPI.add(count: 2500)
        try await Receiver.with { receiver in
            let yaml = Self.config(api: pollAPI, receiver: receiver.baseURL, path: "/link-items?per_page=100", poller: "first_run: all\nmax_pages: 50")
                .replacingOccurrences(of: "pagination: { next: /next }", with: "pagination: { link_header: true }")
            try await TestServer.with(config: yaml) { server in
                try await Self.waitForFirstPoll(server)
                #expect(try await Self.events(server) == 2500)
                let events = try await server.store.events(matching: EventQuery(source: "legacy", limit: 5000))
                #expect(Set(events.compactMap(\.event.providerID)).count == 2500)
                #expect((try await pollAPI.stats()["pages"] as? [String: Int])?.count == 25)
                let again = try await Self.run(server)
                #expect(again["not_modified"] as? Bool == false)
                #expect(again["pages"] as? Int == 25)
                #expect(try await pollAPI.stat("not_modified") == 0, "no conditional request on a paginated walk")
                #expect(try await Self.events(server) == 2500)
            }
        }
    }

    @Test("cursor pagination: the cursor from the answer walks the pages and is kept as {{cursor}} for the next poll")
    func cursorPagination() async throws {
        let pollAPI = try PollAPI()
        defer { pollAPI.stop() }
        try await pollAPI.add(count: 5)
        try await Receiver.with { receiver in
            let yaml = Self.config(api: pollAPI, receiver: receiver.baseURL, path: "/cursor-items?per_page=2&after={{cursor}}")
                .replacingOccurrences(of: "items: /items", with: "items: /data")
                .replacingOccurrences(of: "pagination: { next: /next }", with: "pagination: { cursor: { param: after, from: /next_cursor } }")
            try await TestServer.with(config: yaml) { server in
                try await Self.waitForFirstPoll(server)
                #expect(try await server.store.pollerState("legacy")?.cursor == "item-000004")
                try await pollAPI.add(count: 3, start: 5)
                let report = try await Self.run(server)
                #expect((report["emitted"] as? [[String: Any]])?.compactMap { $0["item_id"] as? String } == ["item-000005", "item-000006", "item-000007"])
                #expect(report["items"] as? Int == 3, "the poll began after the kept cursor")
                #expect(try await server.store.pollerState("legacy")?.cursor == "item-000007")
            }
        }
    }

    @Test("a dry run reports what it would emit and commits nothing")
    func dryRun() async throws {
        let pollAPI = try PollAPI()
        defer { pollAPI.stop() }
        try await pollAPI.add(count: 2)
        try await Receiver.with { receiver in
            try await TestServer.with(config: Self.config(api: pollAPI, receiver: receiver.baseURL)) { server in
                try await Self.waitForFirstPoll(server)
                let before = try await server.store.pollerState("legacy")
                try await pollAPI.add([["id": "dry-1", "updated_at": "v1"]])
                let dry = try await Self.run(server, dryRun: true)
                #expect(dry["dry_run"] as? Bool == true)
                #expect(dry["committed"] as? Bool == false)
                #expect((dry["emitted"] as? [[String: Any]])?.first?["provider_id"] as? String == "dry-1")
                #expect(try await Self.events(server) == 0)
                #expect(try await server.store.pollerState("legacy") == before, "no state moved")
                let real = try await Self.run(server)
                #expect((real["emitted"] as? [[String: Any]])?.count == 1, "the real poll still finds it new")
                #expect(try await Self.events(server) == 1)
            }
        }
    }

    @Test("failures back off exponentially (Retry-After honoured), poller.failing fires once and an automation receives it; a success recovers")
    func failingAndRecovered() async throws {
        let pollAPI = try PollAPI()
        defer { pollAPI.stop() }
        try await pollAPI.add(count: 2)
        try await Receiver.with { receiver in
            let yaml = Self.config(api: pollAPI, receiver: receiver.baseURL, poller: "alert_after: 2s\nbackoff_max: 4s", every: "1s")
            try await TestServer.with(config: yaml) { server in
                try await Self.waitForFirstPoll(server)
                try await pollAPI.control("fail", ["count": 1, "status": 429, "retry_after": 7])
                #expect(try await eventually { try await server.store.pollerState("legacy")?.failures == 1 })
                var state = try #require(try await server.store.pollerState("legacy"))
                #expect(state.lastError?.contains("429") == true)
                let wait429 = state.nextPollAt!.timeIntervalSince(state.lastPollAt!)
                #expect(wait429 >= 6.9, "Retry-After: 7 is honoured above backoff_max (\(wait429))")
                let cursorBefore = state.generation
                // Poll now (the API's run-now) through more failures: 500s.
                try await pollAPI.control("fail", ["count": 100, "status": 500])
                var delays: [Double] = []
                for _ in 0..<3 {
                    _ = try await api(.POST, server.baseURL + "/api/v1/pollers/legacy/run")
                    state = try #require(try await server.store.pollerState("legacy"))
                    delays.append(state.nextPollAt!.timeIntervalSince(state.lastPollAt!))
                }
                // every 1s: 2 × 2^(n-1)… capped at 4s, each ±20 %.
                #expect(delays[0] >= 3.2 && delays[0] <= 4.0, "\(delays)")
                #expect(delays.allSatisfy { $0 <= 4.0 }, "capped by backoff_max: \(delays)")
                #expect(state.generation == cursorBefore, "failed polls commit nothing")
                #expect(try await eventually(10) { receiver.requests("/alert").count == 1 })
                #expect(receiver.requests("/alert").first?.body == "poller.failing legacy")
                #expect(try await Self.status(server)["failing"] as? Bool == true)
                // More failures publish nothing more.
                _ = try await api(.POST, server.baseURL + "/api/v1/pollers/legacy/run")
                #expect(try await server.store.countEvents(matching: EventQuery(source: "doorbell", type: "poller.failing")) == 1)

                try await pollAPI.control("fail", ["count": 0, "status": 500])
                let recovered = try await Self.run(server)
                #expect(recovered["committed"] as? Bool == true)
                #expect(try await eventually(10) { receiver.requests("/alert").count == 2 })
                #expect(receiver.requests("/alert").last?.body == "poller.recovered legacy")
                let after = try await Self.status(server)
                #expect(after["failing"] as? Bool == false)
                #expect(after["last_error"] is NSNull)
                state = try #require(try await server.store.pollerState("legacy"))
                #expect(abs(state.nextPollAt!.timeIntervalSince(state.lastSuccessAt!) - 1) < 0.01, "back to every: 1s after a success")
            }
        }
    }

    @Test("a hanging API is cut off at the request timeout; the poll fails and commits nothing")
    func hangingAPI() async throws {
        let pollAPI = try PollAPI()
        defer { pollAPI.stop() }
        try await pollAPI.add(count: 250)
        try await Receiver.with { receiver in
            let yaml = Self.config(api: pollAPI, receiver: receiver.baseURL).replacingOccurrences(of: "timeout: 5s", with: "timeout: 1s")
            try await TestServer.with(config: yaml) { server in
                try await Self.waitForFirstPoll(server)
                let before = try #require(try await server.store.pollerState("legacy"))
                try await pollAPI.add([["id": "late", "updated_at": "v1"]])
                try await pollAPI.control("hang", ["page": 2, "seconds": 5])
                let reply = try await api(.POST, server.baseURL + "/api/v1/pollers/legacy/run")
                #expect(reply.status == 502)
                #expect(reply.body.contains("no answer in time"))
                let after = try #require(try await server.store.pollerState("legacy"))
                #expect(after.generation == before.generation)
                #expect(try await Self.events(server) == 0)
                try await pollAPI.control("release")
                #expect((try await Self.run(server)["emitted"] as? [Any])?.count == 1)
            }
        }
    }

    @Test("doorbell serve killed (-9) mid-pagination, then restarted: every item emitted exactly once; CLI list, dry run and reset")
    func killNineMidPoll() async throws {
        let pollAPI = try PollAPI()
        defer { pollAPI.stop() }
        try await pollAPI.add(count: 1000)
        let folder = try TemporaryFolder.make()
        let configURL = folder.appendingPathComponent("doorbell.yml")
        // A fixed port: the restarted server is the same node and takes the poller's lease back at once.
        let yaml = Self.config(api: pollAPI, receiver: "http://127.0.0.1:9", poller: "first_run: all", every: "1s")
            .replacingOccurrences(of: "listen: \"127.0.0.1:0\"", with: "listen: \"127.0.0.1:\(try freeLoopbackPort())\"")
        try yaml.write(to: configURL, atomically: true, encoding: .utf8)
        try await pollAPI.control("hang", ["page": 6, "seconds": 60])
        let first = try ServeProcess.started(config: configURL)
        defer { first.stop() }
        #expect(try await eventually(20) { ((try await pollAPI.stats()["pages"] as? [String: Int])?["/items?page=6"] ?? 0) >= 1 }, "the poll reached page 6 and hangs there")
        first.kill9()
        try await pollAPI.control("release")

        let second = try ServeProcess.started(config: configURL, logLevel: "trace")
        defer { second.stop() }
        let dbPath = folder.appendingPathComponent("doorbell.db").path
        func count() throws -> Int {
            let result = try ChildProcess.run("/usr/bin/env", ["sqlite3", dbPath, "SELECT COUNT(*) || ' ' || COUNT(DISTINCT provider_id) FROM events WHERE source = 'legacy'"])
            return Int(result.stdout.split(separator: " ").first.map(String.init)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
        }
        #expect(try await eventually(30) { try count() == 1000 })
        // A few more polls: nothing more.
        try await Task.sleep(for: .seconds(2.5))
        let check = try ChildProcess.run("/usr/bin/env", ["sqlite3", dbPath, "SELECT COUNT(*) || ' ' || COUNT(DISTINCT provider_id) FROM events WHERE source = 'legacy'"])
        #expect(check.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1000 1000")
        #expect(second.terminate() == 0)
        #expect(!(first.output() + second.output()).contains("poll-secret-token"), "the poller's credentials are never logged, not even at trace")
        #expect(!second.output().contains("item 17"), "nor item bodies")

        let list = try ChildProcess.doorbell(["pollers", "list", "--json", "--config", configURL.path])
        #expect(list.status == 0, "\(list.stdout) \(list.stderr)")
        let rows = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(rows.first?["id"] as? String == "legacy")
        #expect(rows.first?["items_seen"] as? Int == 1000)

        try await pollAPI.add([["id": "cli-new", "updated_at": "v1"]])
        let dry = try ChildProcess.doorbell(["pollers", "run", "legacy", "--dry-run", "--config", configURL.path])
        #expect(dry.status == 0, "\(dry.stdout) \(dry.stderr)")
        #expect(dry.stdout.contains("cli-new"))
        #expect(try count() == 1000, "a dry run commits nothing")

        let reset = try ChildProcess.doorbell(["pollers", "reset", "legacy", "--config", configURL.path])
        #expect(reset.status == 0, "\(reset.stdout) \(reset.stderr)")
        let afterReset = try ChildProcess.doorbell(["pollers", "list", "--json", "--config", configURL.path])
        let resetRows = try JSONSerialization.jsonObject(with: Data(afterReset.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(resetRows.first?["items_seen"] as? Int == 0)
        #expect(resetRows.first?["last_success_at"] is NSNull)
        // Polled again after the reset: first_run all, but every provider id was stored before —
        // normal dedupe keeps them single; only the new item is a new event.
        let run = try ChildProcess.doorbell(["pollers", "run", "legacy", "--config", configURL.path])
        #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
        #expect(try count() == 1001)
    }

    @Test("page numbers walk until an empty page; offsets advance by the items read less the overlap, and an item read twice counts once")
    func pageAndOffset() async throws {
        let pollAPI = try PollAPI()
        defer { pollAPI.stop() }
        try await pollAPI.add(count: 7)
        try await Receiver.with { receiver in
            let paged = Self.config(api: pollAPI, receiver: receiver.baseURL, path: "/items?per_page=3", poller: "first_run: all")
                .replacingOccurrences(of: "pagination: { next: /next }", with: "pagination: { page: { param: page, start: 1 } }")
            try await TestServer.with(config: paged) { server in
                try await Self.waitForFirstPoll(server)
                #expect(try await Self.events(server) == 7)
                #expect(Set((try await pollAPI.stats()["pages"] as? [String: Int] ?? [:]).keys) == ["/items?page=1", "/items?page=2", "/items?page=3", "/items?page=4"])
            }
            let offsets = Self.config(api: pollAPI, receiver: receiver.baseURL, path: "/offset-items?limit=3", poller: "first_run: all")
                .replacingOccurrences(of: "pagination: { next: /next }", with: "pagination: { offset: { param: offset, overlap: 1 } }")
            try await TestServer.with(config: offsets) { server in
                try await Self.waitForFirstPoll(server)
                #expect(try await Self.events(server) == 7)
                let pages = (try await pollAPI.stats()["pages"] as? [String: Int] ?? [:]).keys.filter { $0.hasPrefix("/offset-items") }
                #expect(Set(pages) == ["/offset-items?offset=0", "/offset-items?offset=2", "/offset-items?offset=4", "/offset-items?offset=6", "/offset-items?offset=7"])
            }
        }
    }

    @Test("the SSRF guard applies to pollers: a loopback API is refused unless outbound.allow_private opens it")
    func ssrfGuard() async throws {
        let pollAPI = try PollAPI()
        defer { pollAPI.stop() }
        let yaml = Self.config(api: pollAPI, receiver: "http://127.0.0.1:9").replacingOccurrences(of: "outbound: { allow_private: [\"127.0.0.0/8\"] }\n", with: "")
        try await TestServer.with(config: yaml) { server in
            #expect(try await eventually { try await server.store.pollerState("legacy")?.failures ?? 0 >= 1 })
            let status = try await Self.status(server)
            #expect((status["last_error"] as? String)?.contains("refused") == true, "\(status)")
            #expect(try await pollAPI.stat("requests") == 0, "the API was never reached")
        }
    }

    @Test("two nodes on one PostgreSQL: one polls (lease), 300 items emitted once; the other node's run-now finds them remembered")
    func twoNodesPostgres() async throws {
        let pollAPI = try PollAPI()
        defer { pollAPI.stop() }
        try await pollAPI.add(count: 300)
        let url = try await TestPostgres.freshDatabase()
        try await Receiver.with { receiver in
            let yaml = Self.config(api: pollAPI, receiver: receiver.baseURL, poller: "first_run: all", every: "1s", storage: "${DATABASE}")
            try await TestServer.with(config: yaml, environment: ["DATABASE": url]) { first in
                try await TestServer.with(config: yaml, environment: ["DATABASE": url]) { second in
                    try await Self.waitForFirstPoll(first)
                    #expect(try await eventually(20) { try await Self.events(first) == 300 })
                    try await pollAPI.add([["id": "late", "updated_at": "v1"]])
                    #expect(try await eventually(10) { try await Self.events(second) == 301 })
                    // Several seconds of polling every second by whichever node holds the lease.
                    try await Task.sleep(for: .seconds(3))
                    let events = try await second.store.events(matching: EventQuery(source: "legacy", limit: 1000))
                    #expect(events.count == 301)
                    #expect(Set(events.compactMap(\.event.providerID)).count == 301)
                    let report = try await Self.run(second)
                    #expect((report["emitted"] as? [Any])?.isEmpty == true)
                    // Each poll asks page 1 once: two nodes both polling would ask it about twice a second.
                    let firstPages = (try await pollAPI.stats()["pages"] as? [String: Int])?["/items?page=1"] ?? 0
                    try await Task.sleep(for: .seconds(3))
                    let laterPages = (try await pollAPI.stats()["pages"] as? [String: Int])?["/items?page=1"] ?? 0
                    #expect(laterPages - firstPages <= 5, "one node polls every second: \(laterPages - firstPages) polls in 3 s")
                }
            }
        }
    }

    @Test("check names the poller and key for each bad value")
    func configErrors() throws {
        let yaml = """
            sources:
              - { id: shop, provider: none }
            pollers:
              - id: shop
                every: 5 parsecs
                request: { url: "ftp://example.com/x" }
                items: orders
                item_id: /id
                first_run: sometimes
              - id: ok
                cron: "*/5 25 * * *"
                time_zone: Mars/Olympus
                request: { url: "https://example.com/?c={{cursour}}" }
                item_id: /id
            """
        do {
            _ = try ConfigLoader.parse(yaml: yaml, directory: "/tmp", environment: [:])
            Issue.record("expected errors")
        } catch let error as ConfigError {
            let text = error.description
            for expected in [
                "pollers[0].id: 'shop' is also a source id", "pollers[0].every:", "pollers[0].request.url: not an http(s) URL", "pollers[0].items: 'orders' is not a JSON pointer",
                "pollers[0].emit: missing", "pollers[0].first_run: unknown first_run 'sometimes'", "pollers[1].cron: hour", "pollers[1].time_zone: unknown time zone",
                "pollers[1].request.url: unknown template value '{{cursour}}'",
            ] {
                #expect(text.contains(expected), "missing \(expected) in \(text)")
            }
        }
        let good = try ConfigLoader.parse(yaml: """
            pollers:
              - id: legacy
                cron: "*/5 8-18 * * 1-5"
                time_zone: Europe/Berlin
                request: { url: "https://legacy.example.com/api/orders", query: { since: "{{last_success_at}}" }, auth: { basic: { username: u, password: p } } }
                items: /orders
                item_id: /id
                emit: order.created
                first_run: { last: 10 }
            """, directory: "/tmp", environment: [:])
        #expect(good.pollers.first?.firstRun == .last(10))
        #expect(good.warnings.isEmpty)
    }

    @Test("pure parts: Link headers, cron in a time zone, canonical item hashes, back-off")
    func pureParts() throws {
        #expect(PollPage.nextLink(in: #"<https://a/x?page=2>; rel="next", <https://a/x?page=9>; rel="last""#) == "https://a/x?page=2")
        #expect(PollPage.nextLink(in: #"<https://a/x?page=1>; rel="prev""#) == nil)
        #expect(PollPage.nextLink(in: #"<https://a/y>; rel="first next""#) == "https://a/y")
        let berlin = try CronSchedule("0 9 * * 1-5", timeZone: TimeZone(identifier: "Europe/Berlin")!)
        // Saturday 2026-01-03 12:00 UTC → Monday 2026-01-05 09:00 Berlin = 08:00 UTC.
        let next = berlin.next(after: Date(timeIntervalSince1970: 1_767_441_600))
        #expect(next == Date(timeIntervalSince1970: 1_767_600_000))
        #expect(throws: CronSchedule.CronError.self) { try CronSchedule("* * *", timeZone: .gmt) }
        let a = try JSONSerialization.jsonObject(with: Data(#"{"b":1,"a":[true,"x",null]}"#.utf8))
        let b = try JSONSerialization.jsonObject(with: Data(#"{"a":[true,"x",null],"b":1}"#.utf8))
        let c = try JSONSerialization.jsonObject(with: Data(#"{"a":[true,"x",null],"b":2}"#.utf8))
        #expect(ItemDigest.canonical(a) == ItemDigest.canonical(b))
        #expect(ItemDigest.canonical(a) != ItemDigest.canonical(c))
        // Hostile items: no id, an id with a line break, an over-long id, and one id twice are skipped.
        let poller = Poller(id: "p", schedule: .every(60), request: PollerRequest(url: "http://x"), items: nil, itemID: JSONPointer("/id")!, emit: "t")
        var diff = PollDiff(poller: poller)
        let hostile: [Any] = [["name": "no id"], ["id": "a\nb"], ["id": String(repeating: "x", count: 600)], ["id": 7], ["id": "7"], ["id": "ok"]]
        let sorted = diff.classify(hostile, against: SeenSet([SeenItem(id: "ok", version: ItemDigest.canonical(["id": "ok"]))]))
        #expect(sorted.map(\.id) == ["7", "ok"])
        #expect(sorted.map(\.kind) == [.new, .unchanged])
        #expect(diff.skipped == 3)
        #expect(PollBackoff.delay(failures: 1, interval: 60, cap: 3600, retryAfter: nil, jitter: 1) == 120)
        #expect(PollBackoff.delay(failures: 10, interval: 60, cap: 3600, retryAfter: nil, jitter: 1.2) == 3600)
        #expect(PollBackoff.delay(failures: 1, interval: 60, cap: 3600, retryAfter: 7200, jitter: 1) == 7200)
    }
}
