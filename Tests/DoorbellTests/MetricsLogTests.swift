@testable import DoorbellCLI
import DoorbellCore
import Foundation
import Logging
import Synchronization
import Testing

/// `/metrics` after real work, and `--log-format json` / `LOG_FORMAT=json` for log shippers.
@Suite("Metrics and logs", .serialized)
struct MetricsLogTests {
    /// The value of the series `name{labels}` in a Prometheus text page, if present.
    static func value(_ page: String, _ series: String) -> Double? {
        for line in page.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test("/metrics after one run and one delivery: runs by automation and outcome, step duration by kind, attempts by endpoint and status class, latency, queue depth and age, group commits, requests by route pattern (never the raw path)")
    func metricsAfterARun() async throws {
        try await TestServer.with(config: APITests.config) { (server: TestServer) async throws in
            let base = server.baseURL
            let published = try await api(.POST, base + "/api/v1/events", ["type": "order.created", "data": ["n": 1]])
            #expect(published.status == 202)
            let paid = try await api(.POST, base + "/api/v1/events", ["type": "order.paid", "data": ["n": 2]])
            let paidID = try #require(paid.json["id"] as? String)
            // Settled: note succeeded twice, call dead, the delivery to the refused port dead.
            // Up to a minute: the call to a closed port waits out its 2 s timeout, and the whole suite shares two cores with PostgreSQL.
            #expect(try await eventually(60) {
                let runs = try await server.store.runs(eventID: paidID, limit: 10)
                return runs.count == 3 && runs.allSatisfy { $0.status == .succeeded || $0.status == .dead }
            })
            _ = try await api(.GET, base + "/api/v1/runs/run_%0D%0Ahostile-\(UUID().uuidString)")
            _ = try await get(base + "/no/such/path-\(UUID().uuidString)")
            _ = try await Self.rawRequest(base, method: "HOSTILEMETHOD")
            let page = try await get(base + "/metrics").body

            #expect(Self.value(page, #"doorbell_runs_total{automation="note",outcome="started"}"#) == 2)
            #expect(Self.value(page, #"doorbell_runs_total{automation="note",outcome="succeeded"}"#) == 2)
            #expect(Self.value(page, #"doorbell_runs_total{automation="call",outcome="dead"}"#) == 1)
            #expect(Self.value(page, #"doorbell_step_duration_seconds_count{kind="exec"}"#) == 2)
            #expect(Self.value(page, #"doorbell_step_duration_seconds_count{kind="http"}"#) == 1)
            #expect(Self.value(page, #"doorbell_delivery_attempts_total{endpoint="erp",status="none"}"#) == 1)
            #expect(Self.value(page, #"doorbell_delivery_latency_seconds_count{endpoint="erp"}"#) == 1)
            #expect(Self.value(page, #"doorbell_queue_depth{kind="runs",status="succeeded"}"#) == 2)
            #expect(Self.value(page, #"doorbell_queue_depth{kind="runs",status="dead"}"#) == 1)
            #expect(Self.value(page, #"doorbell_queue_depth{kind="deliveries",status="dead"}"#) == 1)
            #expect(Self.value(page, #"doorbell_queue_oldest_due_seconds"#) == 0, "nothing overdue")
            #expect((Self.value(page, "doorbell_group_commit_batch_size_count") ?? 0) >= 2, "the two ingests and the runs' transitions")
            #expect((Self.value(page, "doorbell_group_commit_seconds_count") ?? 0) >= 2)
            #expect(Self.value(page, #"doorbell_http_requests_total{route="/api/v1/events",method="POST",status="202"}"#) == 2)
            #expect(Self.value(page, #"doorbell_http_requests_total{route="/api/v1/runs/{id}",method="GET",status="404"}"#) == 1)
            #expect(Self.value(page, #"doorbell_http_requests_total{route="unmatched",method="GET",status="404"}"#) == 1)
            // An unknown method is refused by the HTTP parser before any route; the middleware maps one to `other` anyway.
            #expect(!page.contains("hostile") && !page.contains("no/such") && !page.contains("HOSTILEMETHOD"), "raw paths and methods never become labels")
        }
    }

    /// Sends `method /x` over a plain socket (HTTP clients refuse unknown methods); returns the status line.
    static func rawRequest(_ base: String, method: String) async throws -> String {
        let port = try #require(UInt16(base.split(separator: ":").last ?? ""))
        let connection = try RawConnection(port: port)
        try connection.send("\(method) /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return await connection.readUntilClosed(timeout: 5).0
    }

    @Test("a JSON log line: one object per line with time, level, label, message, source and metadata; CR/LF and quotes stay inside the line")
    func jsonLine() throws {
        let line = JSONLogHandler.line(
            time: Date(timeIntervalSince1970: 1_800_000_000.5), level: .warning, label: "doorbell", message: "step failed\r\nFAKE: \"line\"",
            source: "DoorbellAutomation", metadata: ["run": "run_1", "error": .stringConvertible(42), "list": ["a", "b\n"], "nested": ["k": "v"]]
        )
        #expect(line.hasSuffix("}\n"))
        #expect(line.dropLast().split(separator: "\n").count == 1, "one line")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["time"] as? String == "2027-01-15T08:00:00.500Z")
        #expect(object["level"] as? String == "warning")
        #expect(object["label"] as? String == "doorbell")
        #expect(object["message"] as? String == "step failed\r\nFAKE: \"line\"")
        #expect(object["source"] as? String == "DoorbellAutomation")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["run"] as? String == "run_1")
        #expect(metadata["error"] as? String == "42")
        #expect(metadata["list"] as? [String] == ["a", "b\n"])
        #expect((metadata["nested"] as? [String: String]) == ["k": "v"])
    }

    @Test("doorbell serve with LOG_FORMAT=json writes only JSON lines, the listening notice among them; --log-format refuses an unknown format")
    func serveLogsJSON() async throws {
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try OpenAPITests.config(port: 0).write(to: config, atomically: true, encoding: .utf8)
        let server = try ServeProcess.started(config: config, environment: ["OPENAPI_TEST_TOKEN": "t-0123456789abcdef", "LOG_FORMAT": "json"])
        _ = try await get(server.baseURL + "/healthz")
        server.stop()
        let lines = server.output().split(separator: "\n")
        #expect(!lines.isEmpty)
        var levels: Set<String> = []
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["time"] is String && object?["message"] is String, "not a JSON log line: \(line.prefix(300))")
            if let level = object?["level"] as? String { levels.insert(level) }
        }
        #expect(lines.contains { $0.contains("doorbell listening on 127.0.0.1:") })
        #expect(levels.contains("notice"))

        let refused = try ChildProcess.doorbell(["serve", "--config", config.path, "--log-format", "yaml"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("log-format"), "\(refused.stderr)")
    }
}

/// Where a `StreamLogHandler` writes in `TextLogHandlerTests`.
private final class CapturedLines: TextOutputStream, @unchecked Sendable {
    private let lines = Mutex<[String]>([])
    func write(_ string: String) { lines.withLock { $0.append(string) } }
    var all: [String] { lines.withLock { $0 } }
}

@Suite("Text logs")
struct TextLogHandlerTests {
    @Test("a text log line is swift-log's stream format: the logger's metadata (a request id set per request), the provider's, the line's own, level and source as StreamLogHandler writes them")
    func textLineMatchesStreamFormat() throws {
        let viaText = CapturedLines(), viaStream = CapturedLines()
        func logged(_ logger: Logger) {
            var logger = logger
            logger.logLevel = .debug
            logger[metadataKey: "hb.request.id"] = "req-1"
            logger[metadataKey: "route"] = "/hooks/{source}"
            logger.debug("below info, written at debug")
            logger.trace("below the level: not written")
            logger.warning("step failed", metadata: ["run": "run_1", "route": "overridden"])
            var quiet = logger
            quiet[metadataKey: "hb.request.id"] = nil
            quiet[metadataKey: "route"] = nil
            quiet.error("no metadata")
        }
        // A metadata provider (task-local trace ids, say) adds its metadata to every line, under the line's own.
        let provider = Logger.MetadataProvider { ["trace": "t-1", "route": "from-provider"] }
        logged(Logger(label: "doorbell") { TextLogHandler(StreamLogHandler(label: $0, stream: viaText, metadataProvider: provider)) })
        logged(Logger(label: "doorbell") { StreamLogHandler(label: $0, stream: viaStream, metadataProvider: provider) })
        // Each line starts with its time; the rest must be the same.
        func withoutTime(_ lines: [String]) -> [String] { lines.map { String($0.drop { $0 != " " }) } }
        #expect(viaText.all.count == 3)
        #expect(withoutTime(viaText.all) == withoutTime(viaStream.all))
        #expect(viaText.all[1].contains("hb.request.id=req-1") && viaText.all[1].contains("route=overridden") && viaText.all[1].contains("run=run_1"))
        #expect(viaText.all.allSatisfy { $0.contains("trace=t-1") })
        #expect(!viaText.all[2].contains("req-1"))
    }
}
