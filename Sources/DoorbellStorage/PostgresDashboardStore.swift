import DoorbellCore
import Foundation
import PostgresNIO

/// Dashboard sessions and summaries on PostgreSQL (table `dashboard_sessions`, migration 4): every
/// node reads the same sessions, so a browser stays signed in whichever node answers.
extension PostgresStore: DashboardSessionStore, DashboardSummaryStore {
    public func createSession(_ session: DashboardSession) async throws {
        _ = try await rows("""
            INSERT INTO dashboard_sessions (id_hash, principal, created_at, idle_until, expires_at)
            VALUES (\(session.idHash), \(session.principal), \(session.createdAt.millis), \(session.idleUntil.millis), \(session.expiresAt.millis))
            """)
    }

    public func session(idHash: String, now: Date) async throws -> DashboardSession? {
        try await rows("SELECT * FROM dashboard_sessions WHERE id_hash = \(idHash) AND idle_until > \(now.millis) AND expires_at > \(now.millis)").first.map { row in
            DashboardSession(
                idHash: try row["id_hash"].decode(String.self), principal: try row["principal"].decode(String.self),
                createdAt: Date(millis: try row["created_at"].decode(Int64.self)), idleUntil: Date(millis: try row["idle_until"].decode(Int64.self)),
                expiresAt: Date(millis: try row["expires_at"].decode(Int64.self))
            )
        }
    }

    public func touchSession(idHash: String, idleUntil: Date) async throws {
        _ = try await rows("UPDATE dashboard_sessions SET idle_until = GREATEST(idle_until, \(idleUntil.millis)) WHERE id_hash = \(idHash)")
    }

    public func deleteSession(idHash: String) async throws -> Bool {
        try await !rows("DELETE FROM dashboard_sessions WHERE id_hash = \(idHash) RETURNING id_hash").isEmpty
    }

    public func deleteExpiredSessions(now: Date) async throws -> Int {
        try await rows("DELETE FROM dashboard_sessions WHERE idle_until <= \(now.millis) OR expires_at <= \(now.millis) RETURNING id_hash").count
    }

    public func queueCounts() async throws -> QueueCounts {
        var counts = QueueCounts()
        for row in try await rows("SELECT status, endpoint IS NOT NULL AS delivery, COUNT(*) AS n FROM runs GROUP BY status, endpoint IS NOT NULL") {
            guard let status = RunStatus(rawValue: try row["status"].decode(String.self)) else { continue }
            let n = Int(try row["n"].decode(Int64.self))
            if try row["delivery"].decode(Bool.self) { counts.deliveries[status, default: 0] += n } else { counts.runs[status, default: 0] += n }
        }
        return counts
    }

    public func sourceActivity(since: Date) async throws -> [String: SourceActivity] {
        var activity: [String: SourceActivity] = [:]
        for row in try await rows("""
            SELECT source, MAX(received_at) AS last, COUNT(*) FILTER (WHERE received_at >= \(since.millis)) AS recent FROM events GROUP BY source
            """) {
            activity[try row["source"].decode(String.self)] = SourceActivity(
                lastReceivedAt: Date(millis: try row["last"].decode(Int64.self)), receivedSince: Int(try row["recent"].decode(Int64.self))
            )
        }
        return activity
    }

    public func endpointActivity(since: Date) async throws -> [String: EndpointActivity] {
        var activity: [String: EndpointActivity] = [:]
        for row in try await rows("""
            SELECT endpoint, COUNT(*) AS n, COUNT(*) FILTER (WHERE status BETWEEN 200 AND 299) AS ok FROM attempts WHERE started_at >= \(since.millis) GROUP BY endpoint
            """) {
            activity[try row["endpoint"].decode(String.self)] = EndpointActivity(attempts: Int(try row["n"].decode(Int64.self)), succeeded: Int(try row["ok"].decode(Int64.self)))
        }
        return activity
    }

    public func stepResults(runID: String) async throws -> [StepResult] {
        try await rows("SELECT * FROM step_results WHERE run_id = \(runID) ORDER BY position").map { row in
            StepResult(
                stepID: try row["step_id"].decode(String.self), position: try row["position"].decode(Int.self),
                output: try row["output"].decode(String.self), completedAt: Date(millis: try row["completed_at"].decode(Int64.self))
            )
        }
    }
}
