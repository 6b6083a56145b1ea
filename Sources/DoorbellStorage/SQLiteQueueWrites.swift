import DoorbellCore
import Foundation
import GRDB

/// Every transition of a claimed run or delivery — a step completed or failed, an attempt recorded,
/// a delivery deferred or paused — is one `QueueWrite`. Concurrent ones share a transaction and
/// its fsync (`GroupCommit`), as ingests do: the worker's completions stop costing one commit each.
/// Each still commits before its caller goes on, so a crash repeats at most the work in flight.
enum QueueWrite: Sendable {
    case completeStep(runID: String, stepID: String, position: Int, output: String, finished: Bool, owner: String, leaseUntil: Date)
    case failStep(runID: String, attempt: Int, error: String, dueAt: Date?, owner: String)
    case finishAttempt(AttemptRecord, AttemptOutcome, owner: String)
    case deferRun(runID: String, owner: String, until: Date)
    case pauseRun(runID: String, owner: String, reason: String)
}

extension SQLiteEventStore {
    /// Applies one write inside the batch's transaction; returns since when the endpoint has been
    /// failing for `finishAttempt`, nil otherwise.
    static func apply(_ write: QueueWrite, _ db: Database) throws -> Date? {
        let now = Date().millis
        switch write {
        case .completeStep(let runID, let stepID, let position, let output, let finished, let owner, let leaseUntil):
            try db.cachedStatement(sql: """
                INSERT INTO step_results (run_id, step_id, position, output, completed_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (run_id, step_id) DO UPDATE SET output = excluded.output, completed_at = excluded.completed_at
                """).execute(arguments: [runID, stepID, position, output, now])
            try db.cachedStatement(sql: """
                UPDATE runs SET next_step = ?, attempt = 0, last_error = NULL, status = ?, lease_until = ?, updated_at = ?
                WHERE id = ? AND lease_owner = ?
                """).execute(arguments: [position + 1, finished ? RunStatus.succeeded.rawValue : RunStatus.running.rawValue, leaseUntil.millis, now, runID, owner])
            return nil
        case .failStep(let runID, let attempt, let error, let dueAt, let owner):
            try db.cachedStatement(sql: """
                UPDATE runs SET attempt = ?, last_error = ?, status = ?, due_at = COALESCE(?, due_at),
                    lease_owner = NULL, lease_until = NULL, updated_at = ?
                WHERE id = ? AND lease_owner = ?
                """).execute(arguments: [attempt, String(error.prefix(2000)), (dueAt == nil ? RunStatus.dead : .waitingRetry).rawValue, dueAt?.millis, now, runID, owner])
            return nil
        case .deferRun(let runID, let owner, let until):
            try db.cachedStatement(sql: """
                UPDATE runs SET status = 'waiting_retry', due_at = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?
                WHERE id = ? AND lease_owner = ?
                """).execute(arguments: [until.millis, now, runID, owner])
            return nil
        case .pauseRun(let runID, let owner, let reason):
            try db.cachedStatement(sql: """
                UPDATE runs SET status = 'paused', last_error = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?
                WHERE id = ? AND lease_owner = ?
                """).execute(arguments: [reason, now, runID, owner])
            return nil
        case .finishAttempt(let attempt, let outcome, let owner):
            let error = attempt.error.map { String($0.prefix(2000)) }
            try db.cachedStatement(sql: """
                INSERT INTO attempts (run_id, number, endpoint, started_at, status, latency_ms, response, error)
                VALUES (?, (SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE run_id = ?), ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [attempt.runID, attempt.runID, attempt.endpoint, attempt.startedAt.millis, attempt.status, attempt.latencyMillis,
                                         attempt.response.map { String($0.prefix(1024)) }, error])
            let (status, failures, dueAt): (RunStatus, Int?, Int64?) = switch outcome {
            case .delivered: (.succeeded, nil, nil)
            case .retry(let at, let failures): (.waitingRetry, failures, at.millis)
            case .dead(let failures): (.dead, failures, nil)
            case .paused: (.paused, nil, nil)
            }
            try db.cachedStatement(sql: """
                UPDATE runs SET status = ?, next_step = CASE WHEN ? = 'succeeded' THEN 1 ELSE next_step END,
                    attempt = COALESCE(?, attempt), last_error = ?, due_at = COALESCE(?, due_at),
                    lease_owner = NULL, lease_until = NULL, updated_at = ?
                WHERE id = ? AND lease_owner = ?
                """).execute(arguments: [status.rawValue, status.rawValue, failures, outcome == .delivered ? nil : error, dueAt, now, attempt.runID, owner])
            if outcome == .delivered {
                try db.cachedStatement(sql: "UPDATE endpoints SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL").execute(arguments: [attempt.endpoint])
                return nil
            }
            try db.cachedStatement(sql: "UPDATE endpoints SET failing_since = COALESCE(failing_since, ?) WHERE id = ?").execute(arguments: [attempt.startedAt.millis, attempt.endpoint])
            let since = try Int64.fetchOne(db.cachedStatement(sql: "SELECT failing_since FROM endpoints WHERE id = ?"), arguments: [attempt.endpoint])
            return since.map { Date(timeIntervalSince1970: Double($0) / 1000) }
        }
    }
}
