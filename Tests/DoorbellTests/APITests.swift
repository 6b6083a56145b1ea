import DoorbellCore
@testable import DoorbellServer
import DoorbellStorage
import Foundation
import Testing

/// The JSON API's lists, filters and cursors, runs and their replay, an event's timeline, sources;
/// a real server on loopback, called over HTTP with the test token.
@Suite("API", .serialized)
struct APITests {
    static let config = """
        server: { listen: "127.0.0.1:0" }
        storage: "sqlite:doorbell.db"
        api: { tokens: ["\(apiToken)"] }
        outbound: { allow_private: ["127.0.0.0/8"], timeout: 2s }
        retry: { schedule: [0s], jitter: 0 }
        sources:
          - { id: open, provider: none }
        automations:
          - id: note
            on: ["api:order.*"]
            steps: [{ id: first, exec: { argv: ["/bin/echo", "noted"] } }]
          - id: call
            on: ["api:order.paid"]
            steps: [{ id: post, http: { url: "http://127.0.0.1:9/refused" } }]
        endpoints:
          - { id: erp, url: "http://127.0.0.1:9/hooks", events: ["order.paid"] }
        """

    static func json(_ reply: Reply) -> [String: Any] { reply.json }
    static func data(_ reply: Reply) -> [[String: Any]] { reply.json["data"] as? [[String: Any]] ?? [] }

    @Test("events: filters by type, q (bytes, no wildcards), status and time; limit with next_cursor pages through without gaps; bad values are 400 naming the parameter")
    func eventLists() async throws {
        try await TestServer.with(config: Self.config) { (server: TestServer) async throws in
            let base = server.baseURL + "/api/v1"
            var ids: [String] = []
            for (index, type) in ["order.created", "order.paid", "order.created", "misc"].enumerated() {
                let reply = try await api(.POST, "\(base)/events", ["type": type, "data": ["customer": index == 1 ? "50%_off" : "c\(index)"]])
                #expect(reply.status == 202)
                ids.append(try #require(reply.json["id"] as? String))
            }
            let created = Self.data(try await api(.GET, "\(base)/events?type=order.created&source=api"))
            #expect(created.compactMap { $0["id"] as? String } == [ids[2], ids[0]])
            #expect(Self.data(try await api(.GET, "\(base)/events?q=50%25_off")).compactMap { $0["id"] as? String } == [ids[1]])
            #expect(Self.data(try await api(.GET, "\(base)/events?q=5%25%25")).isEmpty, "%% is two percent signs, not a wildcard")

            // Dead runs: the refused http step of order.paid.
            #expect(try await eventually(60) { Self.data(try await api(.GET, "\(base)/events?status=dead")).count == 1 })
            #expect(Self.data(try await api(.GET, "\(base)/events?status=dead")).first?["id"] as? String == ids[1])

            // Paging: two at a time until next_cursor is null.
            var seen: [String] = []
            var cursor: String?
            repeat {
                let page = try await api(.GET, "\(base)/events?source=api&limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""))
                #expect(page.status == 200)
                seen += Self.data(page).compactMap { $0["id"] as? String }
                cursor = page.json["next_cursor"] as? String
            } while cursor != nil && seen.count < 20
            #expect(seen == ids.reversed(), "every published event once, newest first")

            let future = try await api(.GET, "\(base)/events?since=2999-01-01T00:00:00Z")
            #expect(future.status == 200 && Self.data(future).isEmpty)
            #expect(Self.data(try await api(.GET, "\(base)/events?until=2999-01-01T00:00:00Z&source=api")).count == 4)

            for (query, parameter) in [("status=bogus", "status"), ("since=yesterday", "since"), ("until=2026-13-01", "until"), ("cursor=abc", "cursor"),
                                       ("cursor=-5", "cursor"), ("limit=0", "limit"), ("q=" + String(repeating: "x", count: 1001), "q")] {
                let reply = try await api(.GET, "\(base)/events?\(query)")
                #expect(reply.status == 400, "\(query)")
                #expect((reply.json["error"] as? String)?.hasPrefix("\(parameter):") == true, "\(query): \(reply.body.prefix(200))")
            }
            #expect(try await api(.GET, "\(base)/runs?cursor=12").status == 400, "a run cursor is <millis>.<seq>")
            #expect(try await api(.GET, "\(base)/deliveries?status=done").status == 400)
            #expect(try await api(.GET, "\(base)/events", token: "wrong-token-000000000000").status == 401)
        }
    }

    @Test("runs: list by status with steps on one run; an event's timeline holds its runs, steps, deliveries and attempts; replay one run, and many with a dry run that counts first")
    func runsAndTimeline() async throws {
        try await TestServer.with(config: Self.config) { (server: TestServer) async throws in
            let base = server.baseURL + "/api/v1"
            let paid = try await api(.POST, "\(base)/events", ["type": "order.paid", "data": ["order": "o-1"]])
            let eventID = try #require(paid.json["id"] as? String)
            // Settled: the note run succeeded, the call run is dead, the delivery to erp is dead.
            #expect(try await eventually(60) {
                let detail = try await api(.GET, "\(base)/events/\(eventID)").json
                let runs = detail["runs"] as? [[String: Any]] ?? []
                let deliveries = detail["deliveries"] as? [[String: Any]] ?? []
                return runs.count == 2 && runs.allSatisfy { ["succeeded", "dead"].contains($0["status"] as? String) } && deliveries.first?["status"] as? String == "dead"
            })
            let detail = try await api(.GET, "\(base)/events/\(eventID)")
            #expect(detail.status == 200)
            #expect(detail.json["type"] as? String == "order.paid")
            #expect(detail.json["body"] as? String == #"{"order":"o-1"}"#)
            let runs = detail.json["runs"] as? [[String: Any]] ?? []
            let note = try #require(runs.first { $0["automation"] as? String == "note" })
            let steps = note["steps"] as? [[String: Any]] ?? []
            #expect(steps.first?["id"] as? String == "first")
            #expect(steps.first?["output"] is [String: Any], "a step's output is JSON, not text: \(steps)")
            let delivery = try #require((detail.json["deliveries"] as? [[String: Any]])?.first)
            #expect(delivery["endpoint"] as? String == "erp")
            #expect((delivery["attempts"] as? [[String: Any]])?.isEmpty == false)
            #expect(try await api(.GET, "\(base)/events/evt_nothing").status == 404)

            let dead = try await api(.GET, "\(base)/runs?status=dead&automation=call")
            #expect(dead.status == 200)
            let deadRun = try #require(Self.data(dead).first)
            let runID = try #require(deadRun["id"] as? String)
            #expect(deadRun["last_error"] is String)
            #expect(dead.json.keys.contains("next_cursor"))
            let shown = try await api(.GET, "\(base)/runs/\(runID)")
            #expect(shown.json["automation"] as? String == "call")
            #expect(shown.json["steps"] as? [Any] != nil)
            #expect(try await api(.GET, "\(base)/runs/\(delivery["id"] as? String ?? "")").status == 404, "a delivery is not a run")

            // Bulk: a dry run counts without replaying; then the replay puts them back.
            let dry = try await api(.POST, "\(base)/runs/replay", ["automation": "call", "dry_run": true])
            #expect(dry.status == 200)
            #expect(dry.json["replayed"] as? Int == 1 && dry.json["dry_run"] as? Bool == true)
            #expect(try await api(.GET, "\(base)/runs/\(runID)").json["status"] as? String == "dead", "a dry run changes nothing")
            let all = try await api(.POST, "\(base)/runs/replay", ["status": "dead,succeeded", "dry_run": true, "from_start": true])
            #expect(all.json["replayed"] as? Int == 2)
            #expect(try await api(.POST, "\(base)/runs/replay", ["status": 5]).status == 400)
            #expect(try await api(.POST, "\(base)/runs/replay", ["statuses": "dead"]).status == 400, "an unknown field is refused by name")

            let one = try await api(.POST, "\(base)/runs/\(runID)/replay", ["from_start": true])
            #expect(one.status == 202)
            #expect(one.json["status"] as? String == "dead")
            // It runs again and dies again: one more failed attempt, then dead.
            #expect(try await eventually(60) { try await api(.GET, "\(base)/runs/\(runID)").json["status"] as? String == "dead" })
            let replayed = try await api(.POST, "\(base)/events/\(eventID)/replay", [:])
            #expect(replayed.status == 202)
            #expect(replayed.json["replayed"] as? Int == 1, "the event's dead run; the succeeded one stays")
            #expect(try await api(.POST, "\(base)/events/\(eventID)/replay", ["from_start": "yes"]).status == 400)
        }
    }

    @Test("sources: every configured source and api, with event counts and the newest event's time")
    func sources() async throws {
        try await TestServer.with(config: Self.config) { (server: TestServer) async throws in
            let base = server.baseURL + "/api/v1"
            for _ in 0..<3 { _ = try await api(.POST, "\(base)/events", ["type": "misc", "data": [:]]) }
            let reply = try await api(.GET, "\(base)/sources")
            #expect(reply.status == 200)
            let rows = Self.data(reply)
            #expect(rows.compactMap { $0["id"] as? String } == ["open", "api"])
            #expect(rows.first { $0["id"] as? String == "api" }?["events"] as? Int == 3)
            #expect(rows.first { $0["id"] as? String == "open" }?["events"] as? Int == 0)
            #expect(rows.first { $0["id"] as? String == "open" }?["last_event_at"] is NSNull)
            #expect(rows.first { $0["id"] as? String == "api" }?["last_event_at"] is String)
        }
    }
}
