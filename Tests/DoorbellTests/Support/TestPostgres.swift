import Foundation
import Logging
import PostgresNIO

/// The real PostgreSQL the tests run against. `scripts/test` starts one throwaway cluster per run
/// (`scripts/pg-cluster`) and passes its admin URL in `DOORBELL_TEST_POSTGRES_URL`; each test takes
/// a fresh database of its own, so tests running in parallel never see each other's rows.
enum TestPostgres {
    /// Without the variable the PostgreSQL tests fail (never skip): a run that silently left out
    /// the PostgreSQL store would look green.
    static func adminURL() throws -> String {
        try environment("DOORBELL_TEST_POSTGRES_URL")
    }

    /// `scripts/pg-cluster`, for tests that start a cluster of their own to restart or kill it.
    static func clusterScript() throws -> String {
        try environment("DOORBELL_PG_CLUSTER_SCRIPT")
    }

    /// A new empty database on the shared cluster; returns its URL (same credentials).
    static func freshDatabase() async throws -> String {
        try await freshDatabase(adminURL: adminURL())
    }

    /// A new empty database named `doorbell_test_<random hex>` on the cluster at `adminURL`.
    static func freshDatabase(adminURL: String) async throws -> String {
        let admin = try ParsedURL(adminURL)
        // Lowercase hex only: an unquoted identifier is folded to lowercase, the URL is not.
        let name = "doorbell_test_" + (0..<8).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        try await withClient(url: adminURL) { client in
            try await client.perform(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        }
        return admin.replacingDatabase(with: name).string
    }

    /// Runs `body` with a short-lived client for `url`; the client's `run()` lives only as long.
    @discardableResult
    static func withClient<T>(url: String, _ body: (PostgresClient) async throws -> T) async throws -> T {
        let client = PostgresClient(configuration: try ParsedURL(url).clientConfiguration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// One connection attempt, no pool retries: the way to ask "does the server accept connections now?".
    static func connect(url: String) async throws -> PostgresConnection {
        try await PostgresConnection.connect(configuration: ParsedURL(url).connectionConfiguration, id: 1, logger: logger)
    }

    /// Errors only: the pool warns when a query races the first moments of `run()`, which is harmless here.
    static let logger: Logger = {
        var logger = Logger(label: "doorbell.tests.postgres")
        logger.logLevel = .error
        return logger
    }()

    private static func environment(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            throw TestFailure("\(name) is not set: run the tests through scripts/test, which starts PostgreSQL for them")
        }
        return value
    }
}

extension PostgresClient {
    /// Runs a statement and reads its result to the end. The pool takes a connection back only when
    /// the rows have been read, so a discarded `query(_:)` result keeps it leased and `run()` never ends.
    func perform(_ query: PostgresQuery) async throws {
        for try await _ in try await self.query(query) {}
    }
}

extension TestPostgres {
    /// A `postgres://user:password@host:port/database` URL taken apart with URLComponents.
    struct ParsedURL {
        private var components: URLComponents
        let host: String
        let port: Int
        let username: String
        let password: String?
        let database: String

        init(_ string: String) throws {
            guard let components = URLComponents(string: string), ["postgres", "postgresql"].contains(components.scheme),
                  let host = components.host, let username = components.user
            else { throw TestFailure("not a postgres:// URL with a host and a user") }  // never echo it: it holds a password
            self.components = components
            self.host = host
            self.port = components.port ?? 5432
            self.username = username
            self.password = components.password
            self.database = String(components.path.drop { $0 == "/" })
        }

        var string: String { components.string! }

        func replacingDatabase(with name: String) -> ParsedURL {
            var copy = self
            copy.components.path = "/" + name
            return try! ParsedURL(copy.string)
        }

        var clientConfiguration: PostgresClient.Configuration {
            PostgresClient.Configuration(host: host, port: port, username: username, password: password, database: database, tls: .disable)
        }

        var connectionConfiguration: PostgresConnection.Configuration {
            PostgresConnection.Configuration(host: host, port: port, username: username, password: password, database: database, tls: .disable)
        }
    }
}

/// A PostgreSQL cluster of a test's own, for tests that stop, kill or restart the server (the shared
/// one must stay up for everyone else). Runs `scripts/pg-cluster` as a child process.
struct PostgresCluster: Sendable {
    let directory: URL
    /// The admin URL (role `doorbell`, database `postgres`); unchanged across restarts.
    let url: String

    /// Initialises and starts a cluster in a new temporary folder.
    static func start() async throws -> PostgresCluster {
        let directory = try TemporaryFolder.make()
        let url = try run("start", directory)
        return PostgresCluster(directory: directory, url: url)
    }

    /// Stops it cleanly (`pg_ctl -m fast`: sessions ended, checkpoint written).
    func stop() throws { _ = try Self.run("stop", directory) }

    /// Stops it at once, as a crash would (`-m immediate`: no checkpoint; the next start recovers from the WAL).
    func kill() throws { _ = try Self.run("kill", directory) }

    /// Starts it again in the same folder on the same port, so `url` and database URLs stay valid.
    func startAgain() throws { _ = try Self.run("start", directory) }

    /// Stops it if it still runs and deletes its folder; for `defer`.
    func remove() {
        _ = try? Self.run("kill", directory)
        try? FileManager.default.removeItem(at: directory)
    }

    /// A new empty database on this cluster; returns its URL.
    func freshDatabase() async throws -> String {
        try await TestPostgres.freshDatabase(adminURL: url)
    }

    /// Runs `scripts/pg-cluster COMMAND DIR`; returns the admin URL (DIR/url) for `start`.
    /// Spawned and waited for with posix_spawn/waitpid, not Foundation's Process: its wait never
    /// ended here (the exited script stayed a zombie, once a postmaster had started from it).
    private static func run(_ command: String, _ directory: URL) throws -> String {
        let script = try TestPostgres.clusterScript()
        let log = directory.deletingLastPathComponent().appendingPathComponent(directory.lastPathComponent + ".pg-cluster.log").path
        let arguments = ["/bin/sh", "-c", "exec \"$0\" \"$@\" >\"$LOG\" 2>&1", script, command, directory.path]
        var argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var environment = ProcessInfo.processInfo.environment.merging(["LOG": log]) { $1 }.map { strdup("\($0)=\($1)") } + [nil]
        defer { environment.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, &argv, &environment)
        guard spawned == 0 else { throw TestFailure("could not run pg-cluster: errno \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: log)
        guard status == 0 else { throw TestFailure("pg-cluster \(command) failed (\(status)): \(output)") }
        return command == "start" ? try String(contentsOf: directory.appendingPathComponent("url"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) : ""
    }
}
