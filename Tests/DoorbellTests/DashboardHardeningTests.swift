import AsyncHTTPClient
import DoorbellCore
@testable import DoorbellServer
import DoorbellStorage
import DoorbellVerification
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// The review's dashboard and API findings, each against a real server on loopback: sessions end
/// with their credential, sign-in guesses stay within the limit however they are sent, bulk replays
/// are capped, credential headers are hidden, /metrics reads the store at most every few seconds,
/// and the live feed stops after sign-out.
@Suite("Dashboard and API hardening", .serialized)
struct DashboardHardeningTests {
    static let tokenA = "hardening-token-a-0123456789abcdef"
    static let tokenB = "hardening-token-b-0123456789abcdef"

    static func config(tokens: [String], passwordHash: String?, extra: String = "") -> String {
        """
        server: { listen: "127.0.0.1:0" }
        storage: "${DOORBELL_STORAGE}"
        api: { tokens: [\(tokens.map { "\"\($0)\"" }.joined(separator: ", "))] }
        \(passwordHash.map { "dashboard: { password_hash: \"\($0)\" }" } ?? "")
        sources: []
        \(extra)
        """
    }

    static func storage(_ backend: StoreBackend) async throws -> String {
        backend == .postgres ? try await TestPostgres.freshDatabase() : "sqlite:doorbell.db"
    }

    @Test("a session ends once the config no longer has the token or password it was made with; one still configured keeps working", arguments: StoreBackend.all)
    func sessionsEndWithTheirCredential(_ backend: StoreBackend) async throws {
        let folder = try TemporaryFolder.make()
        let environment = ["DOORBELL_STORAGE": try await Self.storage(backend)]
        let first = PasswordHash.make(password: "first password", iterations: 1000).description
        let second = PasswordHash.make(password: "second password", iterations: 1000).description
        let (a, b, p) = try await TestServer.with(config: Self.config(tokens: [Self.tokenA, Self.tokenB], passwordHash: first), environment: environment, directory: folder) { (server: TestServer) async throws -> (String, String, String) in
            let a = try await DashboardClient.signIn(server.baseURL, secret: Self.tokenA)
            let b = try await DashboardClient.signIn(server.baseURL, secret: Self.tokenB)
            let p = try await DashboardClient.signIn(server.baseURL, secret: "first password")
            for session in [a, b, p] {
                let page = try await DashboardClient.get(server.baseURL + "/ui", session: session)
                #expect(page.status == 200)
            }
            return (a, b, p)
        }
        // Token A removed (B is now the first token) and the password changed; same store.
        try await TestServer.with(config: Self.config(tokens: [Self.tokenB], passwordHash: second), environment: environment, directory: folder) { (server: TestServer) async throws in
            let removed = try await DashboardClient.get(server.baseURL + "/ui", session: a)
            #expect(removed.status == 303 && removed.location == "/ui/sign-in", "the removed token's session is over")
            let changed = try await DashboardClient.get(server.baseURL + "/ui", session: p)
            #expect(changed.status == 303 && changed.location == "/ui/sign-in", "the old password's session is over")
            let kept = try await DashboardClient.get(server.baseURL + "/ui", session: b)
            #expect(kept.status == 200, "token B is still configured")
            let live = try await DashboardClient.get(server.baseURL + "/ui/live", session: a, stream: true)
            #expect(live.status == 303, "no live feed either")
        }
        // No dashboard credentials at all: no session works.
        try await TestServer.with(config: Self.config(tokens: [], passwordHash: nil), environment: environment, directory: folder) { (server: TestServer) async throws in
            let none = try await DashboardClient.get(server.baseURL + "/ui", session: b)
            #expect(none.status == 303)
        }
    }
}

extension DashboardHardeningTests {
    @Test("parallel wrong sign-ins from one address get exactly the limit's guesses; an IPv6 /64 is one address; past the global budget the password is not checked but tokens still sign in")
    func signInLimits() async throws {
        let hash = PasswordHash.make(password: "right password", iterations: 20_000).description
        let yaml = Self.config(tokens: [Self.tokenA], passwordHash: hash).replacingOccurrences(of: "listen: \"127.0.0.1:0\" }", with: "listen: \"127.0.0.1:0\", trusted_proxies: [\"127.0.0.1/32\"] }")
        try await TestServer.with(config: yaml, environment: ["DOORBELL_STORAGE": "sqlite:doorbell.db"]) { (server: TestServer) async throws in
            let base = server.baseURL
            // 25 wrong guesses at once from 10.1.1.1: exactly `limit` are checked, the rest are 429.
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<25 { group.addTask { try await DashboardClient.attempt(base, secret: "wrong \(index)", forwardedFor: "10.1.1.1").status } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 401 }.count == SignInLimiter.limit, "guesses checked: \(statuses.sorted())")
            #expect(statuses.filter { $0 == 429 }.count == 25 - SignInLimiter.limit)
            let right = try await DashboardClient.attempt(base, secret: "right password", forwardedFor: "10.1.1.1")
            #expect(right.status == 429 && right.retryAfter != nil, "blocked, even with the right password")

            // IPv6: ten hosts of one /64 share its limit; the next /64 has its own.
            for host in 1...SignInLimiter.limit { #expect(try await DashboardClient.attempt(base, secret: "wrong", forwardedFor: "2001:db8:1:2::\(host)").status == 401) }
            #expect(try await DashboardClient.attempt(base, secret: "wrong", forwardedFor: "2001:db8:1:2:ffff::99").status == 429)
            #expect(try await DashboardClient.attempt(base, secret: "wrong", forwardedFor: "2001:db8:1:3::1").status == 401)

            // The global password budget: 21 failures so far; 8 more addresses x 10 pass it.
            for address in 0..<8 {
                for _ in 0..<SignInLimiter.limit { _ = try await DashboardClient.attempt(base, secret: "wrong", forwardedFor: "10.2.0.\(address)") }
            }
            let fresh = try await DashboardClient.attempt(base, secret: "right password", forwardedFor: "10.3.0.1")
            #expect(fresh.status == 429 && fresh.body.contains("API tokens still sign in"), "the password is not checked past the budget")
            let token = try await DashboardClient.attempt(base, secret: Self.tokenA, forwardedFor: "10.3.0.2")
            #expect(token.status == 303 && token.cookies[DashboardAuth.cookieName] != nil, "a token still signs in")
        }
    }

    @Test("API bulk replay/retry: more than 10,000 selected is a 400 naming the cap (a dry run still counts them); succeeded runs need a filter besides status")
    func bulkCap() async throws {
        try await TestServer.with(config: APITests.config) { (server: TestServer) async throws in
            let base = server.baseURL + "/api/v1"
            let published = try await api(.POST, "\(base)/events", ["type": "bulk.test", "data": ["n": 1]])
            let eventID = try #require(published.json["id"] as? String)
            // 10,001 dead runs and as many dead deliveries of that event, written straight into the file.
            let sql = """
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10001)
                INSERT INTO runs (id, event_id, automation, status, due_at, created_at, updated_at, endpoint)
                SELECT 'run_bulk_' || i, '\(eventID)', 'bulk_' || i, 'dead', 0, 0, 0, NULL FROM n
                UNION ALL SELECT 'run_bulkd_' || i, '\(eventID)', 'delivery_' || i, 'dead', 0, 0, 0, 'erp' FROM n;
                """
            let inserted = try ChildProcess.run("/usr/bin/sqlite3", ["-cmd", ".timeout 10000", server.directory.appendingPathComponent("doorbell.db").path, sql])
            #expect(inserted.status == 0, "\(inserted.stderr)")
            let dry = try await api(.POST, "\(base)/runs/replay", ["source": "api", "dry_run": true])
            #expect(dry.status == 200 && dry.json["replayed"] as? Int == 10001)
            let refused = try await api(.POST, "\(base)/runs/replay", ["source": "api"])
            #expect(refused.status == 400 && (refused.json["error"] as? String)?.contains("10000") == true, "\(refused.body)")
            let retry = try await api(.POST, "\(base)/deliveries/retry", ["event": eventID])
            #expect(retry.status == 400 && (retry.json["error"] as? String)?.contains("10000") == true, "\(retry.body)")
            #expect(try await server.store.countRuns(matching: RunQuery(statuses: [.pending])) == 0, "nothing was replayed")
            let everything = try await api(.POST, "\(base)/runs/replay", ["from_start": true])
            #expect(everything.status == 400 && (everything.json["error"] as? String)?.contains("filter besides status") == true, "\(everything.body)")
            let succeeded = try await api(.POST, "\(base)/deliveries/retry", ["status": "succeeded"])
            #expect(succeeded.status == 400)
            let narrow = try await api(.POST, "\(base)/runs/replay", ["automation": "bulk_7"])
            #expect(narrow.status == 202 && narrow.json["replayed"] as? Int == 1, "a narrow filter replays")
        }
    }

    @Test("the dashboard's timeline shows credential headers as … as the API does")
    func timelineHidesCredentials() async throws {
        try await TestServer.with(config: Self.config(tokens: [Self.tokenA], passwordHash: nil, extra: "  - { id: open, provider: none }").replacingOccurrences(of: "sources: []\n", with: "sources:\n"), environment: ["DOORBELL_STORAGE": "sqlite:doorbell.db"]) { (server: TestServer) async throws in
            let secrets = ["Authorization": "Bearer hdr-secret-1", "X-Gitlab-Token": "hdr-secret-2", "X-Auth-Token": "hdr-secret-3", "X-Webhook-Secret": "hdr-secret-4", "X-Api-Key": "hdr-secret-5"]
            let stored = try await post(server.baseURL + "/hooks/open", body: Array("{}".utf8), headers: [("Content-Type", "application/json")] + secrets.map { ($0.key, $0.value) })
            let id = try #require(stored.json["id"] as? String, "\(stored.body)")
            let session = try await DashboardClient.signIn(server.baseURL, secret: Self.tokenA)
            let page = try await DashboardClient.get(server.baseURL + "/ui/events/\(id)", session: session)
            #expect(page.status == 200)
            for value in secrets.values { #expect(!page.body.contains(value), "\(value) is hidden") }
            #expect(page.body.lowercased().contains("x-gitlab-token"), "the header's name is still shown")
            let detail = try await api(.GET, server.baseURL + "/api/v1/events/\(id)", token: Self.tokenA)
            for value in secrets.values { #expect(!detail.body.contains(value)) }
        }
    }

    @Test("/metrics reads the store once per 10 s however often or in parallel it is scraped")
    func metricsCached() async throws {
        let clock = SteppedClock(Date())
        try await TestServer.with(config: APITests.config, now: { clock.now() }) { (server: TestServer) async throws in
            let line = #"doorbell_queue_depth{kind="runs",status="succeeded"}"#
            func succeeded(_ page: String) -> Double? { MetricsLogTests.value(page, line) }
            let before = try await get(server.baseURL + "/metrics").body
            #expect(succeeded(before) == 0)
            let published = try await api(.POST, server.baseURL + "/api/v1/events", ["type": "order.created", "data": ["n": 1]])
            let id = try #require(published.json["id"] as? String)
            #expect(try await eventually { try await server.store.runs(eventID: id, limit: 10).first?.status == .succeeded })
            // Within the interval, parallel or not: the figures of the first read.
            let pages = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<10 { group.addTask { try await get(server.baseURL + "/metrics").body } }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(pages.allSatisfy { succeeded($0) == 0 }, "cached, not read per scrape")
            clock.advance(11)
            let after = try await get(server.baseURL + "/metrics").body
            #expect(succeeded(after) == 1, "read again after 10 s")
        }
    }

    @Test("ScrapeRefresh: one refresh for many concurrent callers; none again within the interval")
    func scrapeRefreshSingleFlight() async {
        let clock = SteppedClock(Date(timeIntervalSince1970: 1_800_000_000))
        let refresh = ScrapeRefresh(interval: 10, now: { clock.now() })
        let calls = CallCount()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    await refresh.refreshIfStale {
                        calls.add()
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                }
            }
        }
        #expect(calls.value == 1)
        await refresh.refreshIfStale { calls.add() }
        #expect(calls.value == 1)
        clock.advance(10)
        await refresh.refreshIfStale { calls.add() }
        #expect(calls.value == 2)
    }

    @Test("/ui/live ends within seconds of sign-out")
    func liveEndsAfterSignOut() async throws {
        try await TestServer.with(config: Self.config(tokens: [Self.tokenA], passwordHash: nil), environment: ["DOORBELL_STORAGE": "sqlite:doorbell.db"]) { (server: TestServer) async throws in
            let session = try await DashboardClient.signIn(server.baseURL, secret: Self.tokenA)
            var request = HTTPClientRequest(url: server.baseURL + "/ui/live")
            request.headers.add(name: "Cookie", value: "\(DashboardAuth.cookieName)=\(session)")
            let response = try await DashboardClient.client.execute(request, timeout: .seconds(120))
            #expect(response.status == .ok)
            // Sign out (the form's CSRF token is the session's).
            let signedOut = try await DashboardClient.send(server.baseURL + "/ui/sign-out", method: .POST, headers: [("Cookie", "\(DashboardAuth.cookieName)=\(session)")],
                                                           form: [("_csrf", DashboardAuth.csrfToken(sessionID: session))])
            #expect(signedOut.status == 303)
            let started = ContinuousClock.now
            var body = ""
            for try await chunk in response.body { body += String(buffer: chunk) }
            // The stream's own lifetime is 300 s; ending well before it means the sign-out ended it.
            #expect(ContinuousClock.now - started < .seconds(60), "the stream ended after sign-out")
            #expect(body.contains(": connected"))
        }
    }
}

/// A browser's part in the dashboard over plain HTTP: the sign-in form's double-submit cookie, the
/// session cookie, redirects not followed (so their status and cookies are seen).
enum DashboardClient {
    struct Answer {
        let status: Int
        let location: String?
        let cookies: [String: String]
        let body: String
        let retryAfter: String?
    }

    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    static func send(_ url: String, method: HTTPMethod = .GET, headers: [(String, String)] = [], form: [(String, String)]? = nil, stream: Bool = false) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(Array(form.map { "\($0.0)=\(PercentEncoding.encode($0.1))" }.joined(separator: "&").utf8))
        }
        let response = try await client.execute(request, timeout: .seconds(60))
        var cookies: [String: String] = [:]
        for header in response.headers["Set-Cookie"] {
            let pair = header.split(separator: ";").first.map(String.init) ?? ""
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { cookies[String(parts[0]).trimmingCharacters(in: .whitespaces)] = String(parts[1]) }
        }
        // A live stream is not read to its end: its status and headers are the answer.
        let body = stream ? "" : String(buffer: try await response.body.collect(upTo: 4 << 20))
        return Answer(status: Int(response.status.code), location: response.headers.first(name: "Location"), cookies: cookies, body: body,
                      retryAfter: response.headers.first(name: "Retry-After"))
    }

    /// Loads the sign-in form and posts `secret`; the answer to the POST.
    static func attempt(_ base: String, secret: String, forwardedFor: String? = nil) async throws -> Answer {
        let form = try await send(base + "/ui/sign-in")
        let token = try #require(form.cookies[DashboardAuth.signInCookieName])
        var headers = [("Cookie", "\(DashboardAuth.signInCookieName)=\(token)")]
        if let forwardedFor { headers.append(("X-Forwarded-For", forwardedFor)) }
        return try await send(base + "/ui/sign-in", method: .POST, headers: headers, form: [("_csrf", token), ("secret", secret)])
    }

    /// Signs in; the session cookie's value.
    static func signIn(_ base: String, secret: String) async throws -> String {
        let answer = try await attempt(base, secret: secret)
        #expect(answer.status == 303, "signed in: \(answer.status) \(answer.body.prefix(300))")
        return try #require(answer.cookies[DashboardAuth.cookieName])
    }

    static func get(_ url: String, session: String, stream: Bool = false) async throws -> Answer {
        try await send(url, headers: [("Cookie", "\(DashboardAuth.cookieName)=\(session)")], stream: stream)
    }
}

/// A clock the test moves by hand.
final class SteppedClock: Sendable {
    private let time: Mutex<Date>
    init(_ start: Date) { time = Mutex(start) }
    func now() -> Date { time.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { time.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

final class CallCount: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
