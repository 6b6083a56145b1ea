import DoorbellCore
import DoorbellStorage
import Foundation
import Testing

@Suite("Run state machine and matching")
struct RunProgressTests {
    let policy = RetryPolicy(schedule: [0, 5, 300], jitter: 0)

    @Test("steps advance, a retryable failure waits per the schedule, exhaustion is dead")
    func transitions() {
        var progress = RunProgress()
        #expect(progress.start(stepCount: 2) == .runStep(0))
        #expect(progress.record(.succeeded, stepCount: 2, policy: policy) == .runStep(1))
        #expect(progress.record(.failed(error: "500", retryable: true, retryAfter: nil), stepCount: 2, policy: policy, random: 0) == .retry(after: 5))
        #expect(progress.status == .waitingRetry)
        #expect(progress.nextStep == 1, "a retry resumes at the failed step")
        #expect(progress.record(.failed(error: "500", retryable: true, retryAfter: 600), stepCount: 2, policy: policy, random: 0) == .retry(after: 600), "Retry-After wins when longer")
        guard case .dead = progress.record(.failed(error: "500", retryable: true, retryAfter: nil), stepCount: 2, policy: policy) else {
            Issue.record("three attempts are the schedule's length")
            return
        }
        #expect(progress.status == .dead)
        progress.replay()
        #expect(progress.start(stepCount: 2) == .runStep(1))
        #expect(progress.record(.succeeded, stepCount: 2, policy: policy) == .finished)
        #expect(progress.status == .succeeded)
    }

    @Test("a permanent failure is dead at once; jitter stays within its bounds")
    func permanentAndJitter() {
        var progress = RunProgress()
        _ = progress.start(stepCount: 1)
        #expect(progress.record(.failed(error: "404", retryable: false, retryAfter: nil), stepCount: 1, policy: policy) == .dead(reason: "404"))
        let jittered = RetryPolicy(schedule: [0, 100], jitter: 0.2)
        #expect(jittered.delay(beforeAttempt: 1, random: 1) == 120)
        #expect(jittered.delay(beforeAttempt: 1, random: -1) == 80)
        #expect(jittered.delay(beforeAttempt: 2) == nil)
    }

    @Test("on patterns with wildcards")
    func patterns() {
        #expect(EventPattern("stripe:payment_intent.*")!.matches(source: "stripe", type: "payment_intent.succeeded"))
        #expect(!EventPattern("stripe:payment_intent.*")!.matches(source: "github", type: "payment_intent.succeeded"))
        #expect(EventPattern("*:order.paid")!.matches(source: "shop", type: "order.paid"))
        #expect(EventPattern("order.*")!.matches(source: "any", type: "order.created"))
        #expect(!EventPattern("order.*")!.matches(source: "any", type: "orders.created"))
        #expect(EventPattern("*")!.matches(source: "x", type: "y"))
    }

    @Test("if conditions: comparison, membership, regex, existence, and/or/not")
    func conditions() {
        let context: [String: Any] = ["body": ["amount": 4200, "currency": "usd", "email": "a@example.com", "tags": ["vip"]], "headers": ["x-github-event": "push"]]
        func check(_ path: String, _ op: Condition.Operator, _ operand: TemplateValue) -> Bool {
            Condition.compare(path: path, op: op, operand: operand).evaluate(context)
        }
        #expect(check("body.currency", .eq, .string("usd")))
        #expect(check("body.amount", .gte, .number(4200)))
        #expect(!check("body.amount", .gt, .number(4200)))
        #expect(check("body.currency", .in, .array([.string("eur"), .string("usd")])))
        #expect(check("body.currency", .nin, .array([.string("eur")])))
        #expect(check("body.email", .regex, .string("@example\\.com$")))
        #expect(check("body.missing", .exists, .bool(false)))
        #expect(check("body.tags.0", .eq, .string("vip")))
        #expect(check("headers.x-github-event", .ne, .string("ping")))
        let combined = Condition.all([.compare(path: "body.currency", op: .eq, operand: .string("usd")), .not(.compare(path: "body.amount", op: .lt, operand: .number(100)))])
        #expect(combined.evaluate(context))
        #expect(!Condition.any([.compare(path: "body.currency", op: .eq, operand: .string("eur"))]).evaluate(context))
    }
}

/// Automations end to end: a real server, a real receiver, real files and commands.
@Suite("Automations", .serialized)
struct AutomationTests {
    static func config(receiver: String, extraAutomations: String = "") -> String {
        TestConfigs.standard() + """

        retry: { schedule: [0s, 50ms, 50ms, 50ms], jitter: 0 }
        files_dir: out
        automations:
          - id: invoice-on-payment
            on: ["stripe:payment_intent.succeeded"]
            if: { "body.data.object.currency": { eq: "usd" } }
            steps:
              - id: invoice
                file: { path: "invoices/{{event.id}}.html", template: invoice.html }
              - id: mark-paid
                http: { method: POST, url: "\(receiver)/orders/paid", json: { order: "{{body.id}}", amount: "{{body.data.object.amount}}", cents: 4200 } }
              - id: label
                exec: { argv: ["/usr/bin/env", "python3", "-c", "import sys, json; d = json.load(sys.stdin); print(json.dumps({'seen': d['event']['id'], 'crm': d['steps']['mark-paid']['body']['crm_id']}))"] }
              - id: chain
                emit: { type: order.paid, data: { order: "{{body.id}}", crm: "{{steps.mark-paid.body.crm_id}}" } }
          - id: notify-on-paid
            on: ["*:order.paid"]
            steps:
              - id: alert
                chat: { kind: slack, url: "\(receiver)/chat", text: "Paid: {{body.order}} ({{body.crm}})" }
        \(extraAutomations)
        """
    }

    @Test("payment → invoice file, HTTP call retried with one Idempotency-Key, command, chained event")
    func endToEnd() async throws {
        try await Receiver.with { receiver in
            let folder = try TemporaryFolder.make()
            try "<h1>Invoice {{event.id}}</h1><p>{{body.data.object.amount}} {{body.data.object.currency}} for <b>{{body.data.object.description}}</b></p>".write(to: folder.appendingPathComponent("invoice.html"), atomically: true, encoding: .utf8)
            receiver.fail("/orders/paid", times: 2)
            try await TestServer.with(config: Self.config(receiver: receiver.baseURL), directory: folder) { (server: TestServer) async throws in
                let body = Array(#"{"id":"evt_auto_1","type":"payment_intent.succeeded","data":{"object":{"amount":4200,"currency":"usd","description":"Croissants & co"}}}"#.utf8)
                let reply = try await post("\(server.baseURL)/hooks/stripe", body: body, headers: TestFixtures.stripeHeaders(body, secret: TestConfigs.stripeSecret))
                #expect(reply.status == 200)
                let eventID = try #require(reply.json["id"] as? String)
                let store = try #require(server.store as? any RunStore)
                #expect(try await eventually(60) { try await store.runs(eventID: eventID, limit: 10).first?.status == .succeeded })
                #expect(try await eventually { receiver.requests("/chat").count == 1 }, "the chained event ran its automation")

                let calls = receiver.requests("/orders/paid")
                #expect(calls.count == 3, "500, 500, then 200")
                #expect(Set(calls.compactMap { $0.headers["idempotency-key"] }).count == 1, "one Idempotency-Key on every try")
                let sent = try JSONSerialization.jsonObject(with: Data(calls[0].body.utf8)) as! [String: Any]
                #expect(sent["order"] as? String == "evt_auto_1")
                #expect(sent["cents"] as? Int == 4200)

                let invoice = try String(contentsOf: folder.appendingPathComponent("out/invoices/\(eventID).html"), encoding: .utf8)
                #expect(invoice.contains("4200 usd"))
                #expect(invoice.contains("Croissants &amp; co"), "HTML templates escape")
                let outputs = try await store.stepOutputs(runID: try #require(try await store.runs(eventID: eventID, limit: 10).first?.id))
                #expect(outputs["label"]?.contains(#""crm":"crm_42""#) == true, "exec saw earlier step outputs on stdin")
                #expect(outputs.count == 4)
                let chat = try JSONSerialization.jsonObject(with: Data(receiver.requests("/chat")[0].body.utf8)) as! [String: Any]
                #expect(chat["text"] as? String == "Paid: evt_auto_1 (crm_42)")

                // An event the `if` rejects starts nothing.
                let eur = Array(#"{"id":"evt_auto_eur","type":"payment_intent.succeeded","data":{"object":{"amount":1,"currency":"eur"}}}"#.utf8)
                let eurReply = try await post("\(server.baseURL)/hooks/stripe", body: eur, headers: TestFixtures.stripeHeaders(eur, secret: TestConfigs.stripeSecret))
                #expect(try await store.runs(eventID: eurReply.json["id"] as! String, limit: 10).isEmpty)
            }
        }
    }

    @Test("a 4xx fails at once; exhausted retries are dead; replay resumes at the failed step")
    func deadAndReplay() async throws {
        try await Receiver.with { receiver in
            let folder = try TemporaryFolder.make()
            let extra = """
                  - id: always-failing
                    on: ["open:ping"]
                    steps:
                      - id: first
                        http: { url: "\(receiver.baseURL)/first" }
                      - id: flaky
                        http: { url: "\(receiver.baseURL)/flaky" }
                  - id: rejected
                    on: ["open:reject"]
                    steps:
                      - id: only
                        http: { url: "\(receiver.baseURL)/rejected" }
                """
            try "x".write(to: folder.appendingPathComponent("invoice.html"), atomically: true, encoding: .utf8)
            receiver.fail("/flaky", times: 4, status: 503)
            receiver.fail("/rejected", times: 1, status: 422)
            try await TestServer.with(config: Self.config(receiver: receiver.baseURL, extraAutomations: extra), directory: folder) { (server: TestServer) async throws in
                let store = try #require(server.store as? any RunStore)
                let ping = try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"ping"}"#.utf8))
                let pingID = try #require(ping.json["id"] as? String)
                #expect(try await eventually { try await store.runs(eventID: pingID, limit: 1).first?.status == .dead })
                #expect(receiver.requests("/flaky").count == 4, "the schedule has four attempts")
                let dead = try #require(try await store.runs(eventID: pingID, limit: 1).first)
                #expect(dead.lastError?.contains("503") == true)

                let reject = try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"reject"}"#.utf8))
                let rejectID = try #require(reject.json["id"] as? String)
                #expect(try await eventually { try await store.runs(eventID: rejectID, limit: 1).first?.status == .dead })
                #expect(receiver.requests("/rejected").count == 1, "a 422 is not retried")

                // Replay: /flaky now succeeds; /first is not called again.
                // Bulk replay by source and status, as `doorbell replay --source open --status dead` does;
                // the rejected run is dead too but belongs to the same source, so narrow by event.
                #expect(try await store.replay(matching: RunQuery(eventID: pingID, source: "open", statuses: [.dead]), fromStart: false, now: Date()) == 1)
                // Nothing wakes the worker here (as with a replay from the CLI): its idle check finds it.
                #expect(try await eventually(15) { try await store.runs(eventID: pingID, limit: 1).first?.status == .succeeded })
                #expect(receiver.requests("/first").count == 1, "completed steps do not run again")
                #expect(receiver.requests("/flaky").count == 5)
            }
        }
    }
}

extension AutomationTests {
    @Test("kill -9 with runs in flight: after restart every run completes and no completed step runs again")
    func crashWithRunsInFlight() async throws {
        try await Receiver.with { receiver in
            let folder = try TemporaryFolder.make()
            let config = folder.appendingPathComponent("doorbell.yml")
            try (TestConfigs.standard() + """

                worker: { concurrency: 32, lease: 1s }
                automations:
                  - id: three-steps
                    on: ["open:job"]
                    steps:
                      - { id: a, http: { url: "\(receiver.baseURL)/a", json: { job: "{{body.n}}" } } }
                      - { id: slow, http: { url: "\(receiver.baseURL)/slow", json: { job: "{{body.n}}" }, timeout: 60s } }
                      - { id: c, http: { url: "\(receiver.baseURL)/c", json: { job: "{{body.n}}" } } }
                """).write(to: config, atomically: true, encoding: .utf8)
            receiver.hold("/slow")
            let server = try ServeProcess(config: config)
            try server.start()
            let jobs = 20
            for n in 0..<jobs {
                #expect(try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"job","n":\#(n)}"#.utf8)).status == 200)
            }
            #expect(try await eventually { receiver.requests("/slow").count == jobs }, "every run is inside its slow step")
            server.kill9()
            receiver.release("/slow")

            let restarted = try ServeProcess(config: config)
            try restarted.start()
            defer { _ = restarted.terminate() }
            #expect(try await eventually(20) { receiver.requests("/c").count == jobs })
            #expect(receiver.requests("/a").count == jobs, "completed steps are not repeated")
            #expect(receiver.requests("/slow").count == 2 * jobs, "the step in flight at the crash runs again (at least once)")
            let keys = Dictionary(grouping: receiver.requests("/slow"), by: { $0.headers["idempotency-key"] ?? "" })
            #expect(keys.count == jobs && keys.values.allSatisfy { $0.count == 2 }, "a repeated step carries the same Idempotency-Key")
            #expect(receiver.requests("/c").map(\.headers).compactMap { $0["idempotency-key"] }.count == jobs)
        }
    }
}

extension AutomationTests {
    @Test("per-key ordering: the same key strictly in arrival order, one at a time; other keys in parallel")
    func perKeyOrdering() async throws {
        try await Receiver.with { receiver in
            let folder = try TemporaryFolder.make()
            try "x".write(to: folder.appendingPathComponent("invoice.html"), atomically: true, encoding: .utf8)
            let extra = """
                  - id: ordered
                    on: ["open:order"]
                    concurrency: { key: "{{body.customer}}", limit: 1 }
                    steps:
                      - { id: sync, http: { url: "\(receiver.baseURL)/ordered", json: { customer: "{{body.customer}}", n: "{{body.n}}" } } }
                """
            receiver.delay("/ordered", seconds: 0.05)
            try await TestServer.with(config: Self.config(receiver: receiver.baseURL, extraAutomations: extra), directory: folder) { (server: TestServer) async throws in
                // Sent one after another so arrival order is known; the worker sees them as they commit.
                for n in 0..<6 {
                    for customer in ["alice", "bob", "carol"] {
                        let body = Array(#"{"type":"order","customer":"\#(customer)","n":\#(n)}"#.utf8)
                        #expect(try await post("\(server.baseURL)/hooks/open", body: body).status == 200)
                    }
                }
                #expect(try await eventually(20) { receiver.timeline("/ordered").count == 18 })
                let timeline = receiver.timeline("/ordered").map { span -> (customer: String, n: Int, start: Date, end: Date) in
                    let json = try! JSONSerialization.jsonObject(with: Data(span.body.utf8)) as! [String: Any]
                    return (json["customer"] as! String, Int(json["n"] as! String)!, span.start, span.end)
                }
                for customer in ["alice", "bob", "carol"] {
                    let mine = timeline.filter { $0.customer == customer }.sorted { $0.start < $1.start }
                    #expect(mine.map(\.n) == Array(0..<6), "\(customer) in arrival order")
                    for (earlier, later) in zip(mine, mine.dropFirst()) {
                        #expect(earlier.end <= later.start, "\(customer): one at a time")
                    }
                }
                // Different keys overlapped: some two requests of different customers ran at once.
                let overlapped = timeline.contains { a in timeline.contains { b in a.customer != b.customer && a.start < b.end && b.start < a.end } }
                #expect(overlapped, "other keys are not held back")
            }
        }
    }
}

extension AutomationTests {
    /// The repository's `examples/small-business`, found from this source file.
    static let exampleFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("examples/small-business")

    @Test("examples/small-business runs end to end: doorbell trigger → HTTP calls, files, command, chained event")
    func smallBusinessExample() async throws {
        try await Receiver.with { receiver in
            let smtp = try SMTPServer(mode: "plain", auth: false)
            defer { smtp.stop() }
            let folder = try TemporaryFolder.make()
            for item in ["doorbell.yml", "templates"] {
                try FileManager.default.copyItem(at: Self.exampleFolder.appendingPathComponent(item), to: folder.appendingPathComponent(item))
            }
            let config = folder.appendingPathComponent("doorbell.yml")
            let environment = ["DOORBELL_LISTEN": "127.0.0.1:0", "SHOP_API": receiver.baseURL, "CRM_API": receiver.baseURL, "SLACK_WEBHOOK_URL": "\(receiver.baseURL)/slack", "SMTP_PORT": String(smtp.port)]
            let server = try ServeProcess(config: config, environment: environment)
            try server.start()
            defer { _ = server.terminate() }
            for (fixture, source) in [(["stripe", "payment_intent.succeeded"], "stripe"), (["form"], "contact-form"), (["shopify", "orders/create"], "shop")] {
                let sent = try ChildProcess.doorbell(["trigger"] + fixture + ["--config", config.path, "--url", "\(server.baseURL)/hooks/\(source)"], environment: environment)
                #expect(sent.status == 0, "\(sent.stdout) \(sent.stderr)")
            }
            #expect(try await eventually(15) { receiver.requests("/api/erp/paid").count == 1 }, "the chained order.paid ran its automation")
            #expect(try await eventually(5) { (try? smtp.messages().count) == 1 })
            #expect(receiver.requests("/api/orders/1042/paid").count == 1)
            // The three events' automations run side by side: the form's may still be going.
            #expect(try await eventually(30) { receiver.requests("/api/contacts").first?.body.contains("Jenny Rosen") == true })
            #expect(try await eventually(30) { receiver.requests("/slack").count == 2 })
            let invoices = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("out/invoices").path)
            #expect(invoices.count == 1)
            let invoice = try String(contentsOf: folder.appendingPathComponent("out/invoices/\(invoices[0])"), encoding: .utf8)
            #expect(invoice.contains("Order #1042"))
            let mail = try #require(try smtp.messages().first, "the receipt was emailed")
            #expect(mail["rcpt"] as? [String] == ["jenny.rosen@example.com"])
            #expect(((mail["attachments"] as? [String: Any])?[invoices[0]] as? String)?.contains("Order #1042") == true, "with the invoice attached")
            let labels = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("out/labels").path)
            #expect(labels.count == 1)
            #expect(try await eventually(15) {
                let runs = try ChildProcess.doorbell(["runs", "list", "--config", config.path, "--json"], environment: environment)
                let list = (try? JSONSerialization.jsonObject(with: Data(runs.stdout.utf8))) as? [[String: Any]] ?? []
                return list.count == 4 && list.allSatisfy { $0["status"] as? String == "succeeded" }
            })
            let runs = try ChildProcess.doorbell(["runs", "list", "--config", config.path, "--automation", "label-on-order", "--json"], environment: environment)
            let runID = try #require(((try JSONSerialization.jsonObject(with: Data(runs.stdout.utf8))) as? [[String: Any]])?.first?["id"] as? String)
            let shown = try ChildProcess.doorbell(["runs", "show", runID, "--config", config.path], environment: environment)
            #expect(shown.stdout.contains("Butter croissant"), "the print command's output is kept with the run")
        }
    }
}

extension AutomationTests {
    /// A malformed template is now refused at load (see HardeningServerInputTests), so no run meets one.
    @Test("faults: a hanging target times out and is retried; Retry-After is honoured; a command timeout fails clearly")
    func faults() async throws {
        try await Receiver.with { receiver in
            let folder = try TemporaryFolder.make()
            try "x".write(to: folder.appendingPathComponent("invoice.html"), atomically: true, encoding: .utf8)
            let extra = """
                  - id: hanging
                    on: ["open:hang"]
                    steps:
                      - { id: call, http: { url: "\(receiver.baseURL)/hang", timeout: 300ms } }
                  - id: throttled
                    on: ["open:throttle"]
                    steps:
                      - { id: call, http: { url: "\(receiver.baseURL)/throttle" } }
                  - id: slow-command
                    on: ["open:sleep"]
                    retry: { schedule: [0s], jitter: 0 }
                    steps:
                      - { id: nap, exec: { argv: ["sleep", "30"], timeout: 300ms } }
                """
            receiver.delay("/hang", seconds: 2)
            receiver.fail("/throttle", times: 1, status: 429, retryAfter: "1")
            try await TestServer.with(config: Self.config(receiver: receiver.baseURL, extraAutomations: extra), directory: folder) { (server: TestServer) async throws in
                let store = try #require(server.store as? any RunStore)
                func send(_ type: String) async throws -> String {
                    try #require(try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"\#(type)"}"#.utf8)).json["id"] as? String)
                }
                func status(_ event: String) async throws -> RunRecord? { try await store.runs(eventID: event, limit: 1).first }

                let hang = try await send("hang")
                #expect(try await eventually { receiver.requests("/hang").count >= 2 }, "a timed-out call is retried")
                #expect(try await status(hang)?.lastError?.contains("/hang") == true)
                receiver.delay("/hang", seconds: 0)
                #expect(try await eventually { try await status(hang)?.status == .succeeded })

                let throttle = try await send("throttle")
                #expect(try await eventually { try await status(throttle)?.status == .succeeded })
                let times = receiver.timeline("/throttle").map(\.start)
                #expect(times.count == 2)
                #expect(times[1].timeIntervalSince(times[0]) >= 0.95, "Retry-After: 1 beats the 50 ms schedule")

                let started = Date()
                let sleep = try await send("sleep")
                #expect(try await eventually { try await status(sleep)?.status == .dead })
                #expect(Date().timeIntervalSince(started) < 10, "the command was stopped at its timeout")
                #expect(try await status(sleep)?.lastError?.contains("timed out") == true)
            }
        }
    }
}
