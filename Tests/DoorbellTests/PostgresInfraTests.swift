import Foundation
import PostgresNIO
import Testing

/// The test PostgreSQL itself (scripts/pg-cluster, TestPostgres): the store's tests rely on a fresh
/// database being theirs alone, and the restart tests on a cluster that comes back with its data.
@Suite(.timeLimit(.minutes(2))) struct PostgresInfraTests {
    @Test func freshDatabasesAreEmptyWritableAndSeparate() async throws {
        let first = try await TestPostgres.freshDatabase()
        let second = try await TestPostgres.freshDatabase()
        #expect(first != second)

        #expect(try await tableNames(url: first).isEmpty)
        try await TestPostgres.withClient(url: first) { client in
            try await client.perform("CREATE TABLE marker (id integer PRIMARY KEY)")
            try await client.perform("INSERT INTO marker VALUES (1)")
        }
        #expect(try await tableNames(url: first) == ["marker"])
        #expect(try await tableNames(url: second).isEmpty)
    }

    @Test func clusterRestartsOnTheSameURLWithItsData() async throws {
        let cluster = try await PostgresCluster.start()
        defer { cluster.remove() }
        let database = try await cluster.freshDatabase()
        try await TestPostgres.withClient(url: database) { client in
            try await client.perform("CREATE TABLE marker (id integer PRIMARY KEY)")
            try await client.perform("INSERT INTO marker VALUES (7)")
        }

        try cluster.stop()
        await #expect(throws: (any Error).self) { try await TestPostgres.connect(url: database).close() }

        try cluster.startAgain()
        #expect(try await markerIDs(url: database) == [7])

        // A crash (no checkpoint) keeps what was committed: the WAL was flushed at commit.
        try await TestPostgres.withClient(url: database) { client in
            try await client.perform("INSERT INTO marker VALUES (8)")
        }
        try cluster.kill()
        try cluster.startAgain()
        #expect(try await markerIDs(url: database) == [7, 8])
    }

    /// The ids in `marker`, read over one fresh connection (the server was just restarted).
    private func markerIDs(url: String) async throws -> [Int] {
        let connection = try await TestPostgres.connect(url: url)
        var ids: [Int] = []
        do {
            for try await id in try await connection.query("SELECT id FROM marker ORDER BY id", logger: TestPostgres.logger).decode(Int.self) {
                ids.append(id)
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
        return ids
    }

    /// Names of the tables in the database's `public` schema.
    private func tableNames(url: String) async throws -> [String] {
        try await TestPostgres.withClient(url: url) { client in
            var names: [String] = []
            let rows = try await client.query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
            for try await name in rows.decode(String.self) { names.append(name) }
            return names
        }
    }
}
