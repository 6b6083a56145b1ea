import DoorbellCore
import Foundation
import GRDB

/// Dashboard sessions and summaries on SQLite (table `dashboard_sessions`, migration v10).
extension SQLiteEventStore: DashboardSessionStore, DashboardSummaryStore {
    public func createSession(_ session: DashboardSession) async throws {
        try monitor.beforeWrite()
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO dashboard_sessions (id_hash, principal, created_at, idle_until, expires_at) VALUES (?, ?, ?, ?, ?)
                """, arguments: [session.idHash, session.principal, session.createdAt.millis, session.idleUntil.millis, session.expiresAt.millis])
        }
    }

    public func session(idHash: String, now: Date) async throws -> DashboardSession? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM dashboard_sessions WHERE id_hash = ? AND idle_until > ? AND expires_at > ?", arguments: [idHash, now.millis, now.millis]).map { row in
                DashboardSession(
                    idHash: row["id_hash"], principal: row["principal"], createdAt: Date(millis: row["created_at"]),
                    idleUntil: Date(millis: row["idle_until"]), expiresAt: Date(millis: row["expires_at"])
                )
            }
        }
    }

    public func touchSession(idHash: String, idleUntil: Date) async throws {
        try monitor.beforeWrite()
        try await pool.write { db in
            try db.execute(sql: "UPDATE dashboard_sessions SET idle_until = MAX(idle_until, ?) WHERE id_hash = ?", arguments: [idleUntil.millis, idHash])
        }
    }

    public func deleteSession(idHash: String) async throws -> Bool {
        try monitor.beforeWrite()
        return try await pool.write { db in
            try db.execute(sql: "DELETE FROM dashboard_sessions WHERE id_hash = ?", arguments: [idHash])
            return db.changesCount > 0
        }
    }

    public func deleteExpiredSessions(now: Date) async throws -> Int {
        try monitor.beforeWrite()
        return try await pool.write { db in
            try db.execute(sql: "DELETE FROM dashboard_sessions WHERE idle_until <= ? OR expires_at <= ?", arguments: [now.millis, now.millis])
            return db.changesCount
        }
    }

    public func queueCounts() async throws -> QueueCounts {
        try await pool.read { db in
            var counts = QueueCounts()
            for row in try Row.fetchAll(db, sql: "SELECT status, endpoint IS NOT NULL AS delivery, COUNT(*) AS n FROM runs GROUP BY status, endpoint IS NOT NULL") {
                guard let status = RunStatus(rawValue: row["status"]) else { continue }
                let n: Int = row["n"]
                if (row["delivery"] as Bool) { counts.deliveries[status, default: 0] += n } else { counts.runs[status, default: 0] += n }
            }
            return counts
        }
    }

    public func sourceActivity(since: Date) async throws -> [String: SourceActivity] {
        try await pool.read { db in
            var activity: [String: SourceActivity] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT source, MAX(received_at) AS last, SUM(received_at >= ?) AS recent FROM events GROUP BY source", arguments: [since.millis]) {
                activity[row["source"]] = SourceActivity(lastReceivedAt: Date(millis: row["last"]), receivedSince: row["recent"] ?? 0)
            }
            return activity
        }
    }

    public func endpointActivity(since: Date) async throws -> [String: EndpointActivity] {
        try await pool.read { db in
            var activity: [String: EndpointActivity] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT endpoint, COUNT(*) AS n, SUM(status BETWEEN 200 AND 299) AS ok FROM attempts WHERE started_at >= ? GROUP BY endpoint
                """, arguments: [since.millis]) {
                activity[row["endpoint"]] = EndpointActivity(attempts: row["n"], succeeded: row["ok"] ?? 0)
            }
            return activity
        }
    }

    public func stepResults(runID: String) async throws -> [StepResult] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM step_results WHERE run_id = ? ORDER BY position", arguments: [runID]).map { row in
                StepResult(stepID: row["step_id"], position: row["position"], output: row["output"], completedAt: Date(millis: row["completed_at"]))
            }
        }
    }
}
