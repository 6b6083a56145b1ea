@testable import DoorbellServer
import Foundation
import Testing

/// The OpenAPI document: served as committed, covering every `/api/v1` route, and the running
/// server conforming to it (schemathesis against a real `doorbell serve`).
@Suite("OpenAPI", .serialized)
struct OpenAPITests {
    /// `docs/openapi.json` in the repository this test file belongs to.
    static let committedCopy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/openapi.json")
    static let token = "openapi-token-0123456789abcdef"

    /// A server with something behind every kind of route: a source, an automation that succeeds, an
    /// endpoint whose deliveries fail (a refused port), a poller.
    static func config(port: Int) -> String {
        """
        server: { listen: "127.0.0.1:\(port)" }
        storage: "sqlite:doorbell.db"
        api: { tokens: ["${OPENAPI_TEST_TOKEN}"] }
        outbound: { allow_private: ["127.0.0.0/8"], timeout: 1s }
        retry: { schedule: [0s], jitter: 0 }
        sources:
          - { id: open, provider: none }
        automations:
          - id: note
            on: ["api:*"]
            steps: [{ id: first, exec: { argv: ["/bin/echo", "noted"] } }]
        endpoints:
          - { id: erp, url: "http://127.0.0.1:9/hooks", events: ["order.*"] }
        pollers:
          - id: legacy
            every: 1h
            request: { url: "http://127.0.0.1:9/orders" }
            items: /orders
            item_id: /id
            emit: order.created
        """
    }

    @Test("GET /api/v1/openapi.json needs no token and serves exactly docs/openapi.json, an OpenAPI 3.1 document")
    func servedEqualsCommitted() async throws {
        if ProcessInfo.processInfo.environment["DOORBELL_WRITE_OPENAPI"] == "1" {
            try (OpenAPI.document + "\n").write(to: Self.committedCopy, atomically: true, encoding: .utf8)
        }
        try await TestServer.with(config: DeliveryTests.config(endpoints: "  []")) { (server: TestServer) async throws in
            let served = try await get(server.baseURL + "/api/v1/openapi.json")
            #expect(served.status == 200)
            let committed = try String(contentsOf: Self.committedCopy, encoding: .utf8)
            #expect(served.body == committed, "docs/openapi.json differs from the served document: run the OpenAPI tests with DOORBELL_WRITE_OPENAPI=1")
            #expect(served.json["openapi"] as? String == "3.1.0")
        }
    }

    @Test("every registered /api/v1 route is in the document, and only those: a route added without documenting it is reported")
    func everyRouteDocumented() async throws {
        #expect(OpenAPI.undocumented(["GET /api/v1/runs/{id}", "POST /api/v1/events", "GET /metrics", "HEAD /api/v1/events"]).isEmpty)
        #expect(OpenAPI.undocumented(["GET /api/v1/made-up", "GET /api/v1/runs"]) == ["GET /api/v1/made-up"])
        #expect(OpenAPI.operations.count >= 26)
        // The real router: the server warns at start for each undocumented route.
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try Self.config(port: 0).write(to: config, atomically: true, encoding: .utf8)
        let server = try ServeProcess.started(config: config, environment: ["OPENAPI_TEST_TOKEN": Self.token])
        defer { server.stop() }
        #expect(!server.output().contains("is not in the OpenAPI document"), "\(server.output())")
    }

    @Test("schemathesis: every documented operation of a running doorbell serve answers with a documented status and a body matching its schema, refuses schema-violating input and requests without the token", .timeLimit(.minutes(3)))
    func schemathesis() async throws {
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try Self.config(port: 0).write(to: config, atomically: true, encoding: .utf8)
        let server = try ServeProcess.started(config: config, environment: ["OPENAPI_TEST_TOKEN": Self.token])
        defer { server.stop() }
        // Data behind the lists and the timeline: an event with a succeeded run and a dead delivery.
        let published = try await api(.POST, server.baseURL + "/api/v1/events", ["type": "order.paid", "data": ["n": 1]], token: Self.token)
        #expect(published.status == 202)

        let st = try #require(Self.schemathesis, "schemathesis is not installed: scripts/install-test-deps installs it")
        let result = try ChildProcess.run(st, [
            "run", server.baseURL + "/api/v1/openapi.json",
            "--header", "Authorization: Bearer \(Self.token)",
            "--max-examples", "5", "--seed", "1", "--request-timeout", "15",
            // One worker: Hypothesis parses lambda sources with `ast`, which CPython 3.11 cannot do from two threads at once.
            "--workers", "1",
            // positive_data_acceptance: limits are in bytes of UTF-8 (type, idempotency key), which JSON
            // Schema cannot say; unsupported_method: Hummingbird answers 404, not 405, for other methods.
            "--exclude-checks", "positive_data_acceptance,unsupported_method",
            // Polling now waits for the poller's upstream (here a refused port, seconds per try).
            "--exclude-operation-id", "runPoller",
        ], environment: ["NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""], directory: folder)
        let summary = result.stdout.split(separator: "\n").suffix(40).joined(separator: "\n")
        #expect(result.status == 0, "schemathesis found problems:\n\(summary)\n\(result.stderr.suffix(2000))")
        // Every operation but runPoller (and the document's own, when read from the server) selected, and every selected one tested.
        func number(after label: String) -> Int? {
            guard let range = result.stdout.range(of: label + #"\s*\d+"#, options: .regularExpression) else { return nil }
            return Int(result.stdout[range].dropFirst(label.count).trimmingCharacters(in: .whitespaces))
        }
        let selected = try #require(number(after: "Selected:"), "\(summary)")
        #expect(selected >= OpenAPI.operations.count - 2, "\(summary)")
        #expect(number(after: "Tested:") == selected, "\(summary)")
        #expect(server.isRunning, "the server survived: \(server.output().suffix(2000))")
    }

    /// The `st` (or `schemathesis`) command on PATH.
    static var schemathesis: String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        for name in ["st", "schemathesis"] {
            for folder in paths where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") { return "\(folder)/\(name)" }
        }
        return nil
    }
}
