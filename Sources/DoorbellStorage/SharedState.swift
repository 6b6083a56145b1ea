import DoorbellCore
import Foundation
import GRDB
import PostgresNIO

/// State every node must agree on: who holds a singleton's lease, and how many sends an endpoint's
/// rate limit has left. Both backends keep it in tables; on PostgreSQL that is what makes it hold
/// across nodes.

extension SQLiteEventStore {
    /// One process serves a SQLite file, so its pacing stays in that process's memory (faster, and
    /// seeded from stored attempts after a restart); `reserveSend` is the same rule in the store.
    public var sharedByNodes: Bool { false }

    public func holdLease(_ name: String, owner: String, until: Date, now: Date) async throws -> Bool {
        try monitor.beforeWrite()
        return try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO leader_leases (name, owner, token, until) VALUES (?, ?, 1, ?)
                ON CONFLICT (name) DO UPDATE SET
                    token = leader_leases.token + CASE WHEN leader_leases.owner = excluded.owner THEN 0 ELSE 1 END,
                    owner = excluded.owner, until = excluded.until
                WHERE leader_leases.owner = excluded.owner OR leader_leases.until < ?
                """, arguments: [name, owner, until.millis, now.millis])
            return db.changesCount > 0
        }
    }

    public func openCircuit(endpoint: String, until: Date) async throws {
        try monitor.beforeWrite()
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO endpoint_circuits (endpoint, open_until) VALUES (?, ?)
                ON CONFLICT (endpoint) DO UPDATE SET open_until = MAX(open_until, excluded.open_until)
                """, arguments: [endpoint, until.millis])
        }
        wakeUps.signal(.endpointsChanged)
    }

    public func openCircuits(now: Date) async throws -> [String: Date] {
        try await pool.read { db in
            var open: [String: Date] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT endpoint, open_until FROM endpoint_circuits WHERE open_until > ?", arguments: [now.millis]) {
                open[row["endpoint"]] = Date(millis: row["open_until"])
            }
            return open
        }
    }

    public func reserveSend(endpoint: String, limit: RateLimit, now: Date) async throws -> Date? {
        try monitor.beforeWrite()
        return try await pool.write { db in
            try db.execute(sql: "DELETE FROM send_slots WHERE endpoint = ? AND sent_at <= ?", arguments: [endpoint, now.addingTimeInterval(-limit.window).millis])
            let sent = try Int64.fetchAll(db, sql: "SELECT sent_at FROM send_slots WHERE endpoint = ? ORDER BY sent_at", arguments: [endpoint]).map(Date.init(millis:))
            if let next = limit.nextFree(after: sent) { return next }
            try db.execute(sql: "INSERT INTO send_slots (endpoint, sent_at) VALUES (?, ?)", arguments: [endpoint, now.millis])
            return nil
        }
    }
}

extension PostgresStore {
    public var sharedByNodes: Bool { true }

    /// One statement: taken when free or lapsed, kept by its holder, refused to anyone else.
    public func holdLease(_ name: String, owner: String, until: Date, now: Date) async throws -> Bool {
        try await !rows("""
            INSERT INTO leader_leases (name, owner, token, until) VALUES (\(name), \(owner), 1, \(until.millis))
            ON CONFLICT (name) DO UPDATE SET
                token = leader_leases.token + CASE WHEN leader_leases.owner = excluded.owner THEN 0 ELSE 1 END,
                owner = excluded.owner, until = excluded.until
            WHERE leader_leases.owner = excluded.owner OR leader_leases.until < \(now.millis)
            RETURNING owner
            """).isEmpty
    }

    public func openCircuit(endpoint: String, until: Date) async throws {
        let logger = logger
        try await transaction { connection in
            try await connection.drain("""
                INSERT INTO endpoint_circuits (endpoint, open_until) VALUES (\(endpoint), \(until.millis))
                ON CONFLICT (endpoint) DO UPDATE SET open_until = GREATEST(endpoint_circuits.open_until, excluded.open_until)
                """, logger: logger)
            try await Self.notify(.endpointsChanged, connection, logger: logger)
        }
        wakeUps.signal(.endpointsChanged)
    }

    public func openCircuits(now: Date) async throws -> [String: Date] {
        var open: [String: Date] = [:]
        for row in try await rows("SELECT endpoint, open_until FROM endpoint_circuits WHERE open_until > \(now.millis)") {
            open[try row["endpoint"].decode(String.self)] = Date(millis: try row["open_until"].decode(Int64.self))
        }
        return open
    }

    /// Under a transaction-scoped advisory lock on the endpoint's name, so two nodes counting a
    /// send at the same moment see each other's: N nodes together stay within the limit.
    public func reserveSend(endpoint: String, limit: RateLimit, now: Date) async throws -> Date? {
        let logger = logger
        return try await transaction { connection in
            try await connection.drain("SELECT pg_advisory_xact_lock(\(PostgresSchema.rateLock), hashtext(\(endpoint)))", logger: logger)
            try await connection.query("DELETE FROM send_slots WHERE endpoint = \(endpoint) AND sent_at <= \(now.addingTimeInterval(-limit.window).millis)", logger: logger)
            var sent: [Date] = []
            for try await millis in try await connection.query("SELECT sent_at FROM send_slots WHERE endpoint = \(endpoint) ORDER BY sent_at", logger: logger).decode(Int64.self) {
                sent.append(Date(millis: millis))
            }
            if let next = limit.nextFree(after: sent) { return next }
            try await connection.query("INSERT INTO send_slots (endpoint, sent_at) VALUES (\(endpoint), \(now.millis))", logger: logger)
            return nil
        }
    }
}
