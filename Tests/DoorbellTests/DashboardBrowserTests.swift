import DoorbellVerification
import Foundation
import Testing

/// The dashboard in a real browser: a real `doorbell serve` (the built binary), headless Chromium
/// driven by Selenium (`Fixtures/ui_browser.py`), events sent with the real `doorbell trigger`.
/// Screenshots of each view go to `DOORBELL_SCREENSHOTS` (docs/screenshots when refreshing them),
/// otherwise to a temporary folder.
@Suite("Dashboard in a browser", .serialized)
struct DashboardBrowserTests {
    static let token = "dashboard-test-token-0123456789"
    static let password = "correct horse battery staple"

    /// On PostgreSQL two nodes share the database: the page on node A also shows what node B stores,
    /// and the session works on both.
    @Test("sign in, live events, timeline, replay, bulk replay, XSS as text, endpoints, set-up, CSRF 403, sign out, password, rate limit", arguments: StoreBackend.all)
    func browser(_ backend: StoreBackend) async throws {
        let folder = try TemporaryFolder.make()
        let flag = folder.appendingPathComponent("flag").path
        let hashed = try ChildProcess.run("/bin/sh", ["-c", "printf '%s' \"$0\" | \"$1\" hash-password --iterations 20000", Self.password, ChildProcess.doorbellBinary])
        #expect(hashed.status == 0, "\(hashed.stderr)")
        let hash = hashed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(PasswordHash(hash)?.matches(Self.password) == true, "doorbell hash-password printed a hash of the password")
        #expect(!hashed.stdout.contains(Self.password), "the password is never printed")
        let config = folder.appendingPathComponent("doorbell.yml")
        try """
        server: { listen: "127.0.0.1:0" }
        storage: "${DOORBELL_STORAGE}"
        api: { tokens: ["\(Self.token)"] }
        dashboard: { password_hash: "\(hash)" }
        outbound: { allow_private: ["127.0.0.0/8"] }
        retry: { schedule: [0s] }
        sources:
          - id: stripe
            provider: stripe
            secrets: ["whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ="]
          - id: open
            provider: none
            event_type: /type
        automations:
          # Fails (dead after one attempt) until the test creates the flag file; then a replay succeeds.
          - id: flaky
            on: ["*"]
            steps:
              - id: check
                exec: { argv: ["/bin/sh", "-c", "test -f \\"$0\\"", "\(flag)"] }
        """.write(to: config, atomically: true, encoding: .utf8)
        // The storage URL (with PostgreSQL's password) reaches the processes only through the environment.
        let storage = backend == .postgres ? try await TestPostgres.freshDatabase() : "sqlite:doorbell.db"
        let environment = ["DOORBELL_STORAGE": storage]
        let server = try ServeProcess.started(config: config, environment: environment)
        defer { server.stop() }
        let other = backend == .postgres ? try ServeProcess.started(config: config, environment: environment) : nil
        defer { other?.stop() }
        // Screenshots from the SQLite run only (one set for the docs).
        let screenshots = backend == .sqlite ? ProcessInfo.processInfo.environment["DOORBELL_SCREENSHOTS"] ?? folder.appendingPathComponent("screenshots").path : folder.appendingPathComponent("screenshots").path
        var settings: [String: String] = [
            "base": server.baseURL, "token": Self.token, "password": Self.password, "doorbell": ChildProcess.doorbellBinary,
            "config": config.path, "flag": flag, "screenshots": screenshots,
        ]
        settings["other_base"] = other?.baseURL
        let argument = String(decoding: try JSONSerialization.data(withJSONObject: settings), as: UTF8.self)
        let result = try ChildProcess.run("/usr/bin/env", ["python3", TestFixtures.url("ui_browser.py").path, argument], environment: environment, directory: folder)
        let steps = result.stdout.split(separator: "\n").filter { $0.hasPrefix("OK ") }
        #expect(result.status == 0 && result.stdout.contains("DONE"), "browser run failed:\n\(result.stdout)\n\(result.stderr.suffix(3000))\nserver:\n\(server.output().suffix(3000))")
        #expect(steps.count == (backend == .postgres ? 13 : 12), "every step passed: \(steps)")
        #expect(!server.output().contains(Self.token) && !server.output().contains(Self.password), "no secret in the server's log")
        if let other { #expect(!other.output().contains(Self.token)) }
    }
}
