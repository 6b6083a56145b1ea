import DoorbellCore
import Foundation
import GRDB

/// Every transition of a claimed run or delivery — a step completed or failed, an attempt recorded,
/// a delivery deferred or paused — is one `QueueWrite`. Concurrent ones share a transaction and
/// its fsync (`GroupCommit`), as ingests do: the worker's completions stop costing one commit each.
/// Each still commits before its caller goes on, so a crash repeats at most the work in flight.
///
/// Each is fenced: it first moves the run only where the run is still `running` under the very
/// claim (owner and token) it names, and writes its rows (step output, attempt, endpoint streak)
/// only when that matched. A claim that was taken over answers `.leaseLost` and leaves no trace.
enum QueueWrite: Sendable {
    case completeStep(runID: String, stepID: String, position: Int, output: String, finished: Bool, lease: Lease, leaseUntil: Date)
    case failStep(runID: String, attempt: Int, error: String, dueAt: Date?, lease: Lease)
    case finishAttempt(AttemptRecord, AttemptOutcome, lease: Lease)
    case deferRun(runID: String, lease: Lease, until: Date)
    case pauseRun(runID: String, lease: Lease, reason: String)
}

extension QueueWrite {
    /// Whether applying it leaves the run waiting to be claimed again (a retry, a delivery put
    /// back): the store's wake-up channel is signalled, so the worker recomputes its next wake.
    var schedulesRun: Bool {
        switch self {
        case .failStep(_, _, _, let dueAt, _): dueAt != nil
        case .deferRun: true
        case .finishAttempt(_, let outcome, _): if case .retry = outcome { true } else { false }
        case .completeStep, .pauseRun: false
        }
    }
}

/// The condition every transition's UPDATE ends with (arguments: run id, owner, token).
private let heldByClaim = "WHERE id = ? AND lease_owner = ? AND lease_token = ? AND status = 'running'"

extension SQLiteEventStore {
    /// Applies one write inside the batch's transaction. For `finishAttempt`, also since when the
    /// endpoint has been failing. `time` is the batch's, from the store's clock.
    static func apply(_ write: QueueWrite, _ db: Database, now time: Date) throws -> AttemptWrite {
        let now = time.millis
        func held(_ runID: String, _ lease: Lease) -> StatementArguments { [runID, lease.owner, lease.token] }
        func answered() -> AttemptWrite { AttemptWrite(transition: db.changesCount > 0 ? .applied : .leaseLost, failingSince: nil) }
        switch write {
        case .completeStep(let runID, let stepID, let position, let output, let finished, let lease, let leaseUntil):
            var arguments: StatementArguments = [position + 1, finished ? RunStatus.succeeded.rawValue : RunStatus.running.rawValue, leaseUntil.millis, now]
            arguments += held(runID, lease)
            try db.cachedStatement(sql: """
                UPDATE runs SET next_step = ?, attempt = 0, last_error = NULL, status = ?, lease_until = ?, updated_at = ?
                \(heldByClaim)
                """).execute(arguments: arguments)
            guard db.changesCount > 0 else { return answered() }
            try db.cachedStatement(sql: """
                INSERT INTO step_results (run_id, step_id, position, output, completed_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (run_id, step_id) DO UPDATE SET output = excluded.output, completed_at = excluded.completed_at
                """).execute(arguments: [runID, stepID, position, output, now])
            return AttemptWrite(transition: .applied, failingSince: nil)
        case .failStep(let runID, let attempt, let error, let dueAt, let lease):
            var arguments: StatementArguments = [attempt, String(error.prefix(2000)), (dueAt == nil ? RunStatus.dead : .waitingRetry).rawValue, dueAt?.millis, now]
            arguments += held(runID, lease)
            try db.cachedStatement(sql: """
                UPDATE runs SET attempt = ?, last_error = ?, status = ?, due_at = COALESCE(?, due_at),
                    lease_owner = NULL, lease_until = NULL, updated_at = ?
                \(heldByClaim)
                """).execute(arguments: arguments)
            return answered()
        case .deferRun(let runID, let lease, let until):
            var arguments: StatementArguments = [until.millis, now]
            arguments += held(runID, lease)
            try db.cachedStatement(sql: """
                UPDATE runs SET status = 'waiting_retry', due_at = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?
                \(heldByClaim)
                """).execute(arguments: arguments)
            return answered()
        case .pauseRun(let runID, let lease, let reason):
            var arguments: StatementArguments = [reason, now]
            arguments += held(runID, lease)
            try db.cachedStatement(sql: """
                UPDATE runs SET status = 'paused', last_error = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?
                \(heldByClaim)
                """).execute(arguments: arguments)
            return answered()
        case .finishAttempt(let attempt, let outcome, let lease):
            let error = attempt.error.map { String($0.prefix(2000)) }
            let (status, failures, dueAt): (RunStatus, Int?, Int64?) = switch outcome {
            case .delivered: (.succeeded, nil, nil)
            case .retry(let at, let failures): (.waitingRetry, failures, at.millis)
            case .dead(let failures): (.dead, failures, nil)
            case .paused: (.paused, nil, nil)
            }
            var arguments: StatementArguments = [status.rawValue, status.rawValue, failures, outcome == .delivered ? nil : error, dueAt, now]
            arguments += held(attempt.runID, lease)
            try db.cachedStatement(sql: """
                UPDATE runs SET status = ?, next_step = CASE WHEN ? = 'succeeded' THEN 1 ELSE next_step END,
                    attempt = COALESCE(?, attempt), last_error = ?, due_at = COALESCE(?, due_at),
                    lease_owner = NULL, lease_until = NULL, updated_at = ?
                \(heldByClaim)
                """).execute(arguments: arguments)
            // Taken over: the attempt is not recorded and the endpoint's streak is not touched.
            guard db.changesCount > 0 else { return AttemptWrite(transition: .leaseLost, failingSince: nil) }
            try db.cachedStatement(sql: """
                INSERT INTO attempts (run_id, number, endpoint, started_at, status, latency_ms, response, error)
                VALUES (?, (SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE run_id = ?), ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [attempt.runID, attempt.runID, attempt.endpoint, attempt.startedAt.millis, attempt.status, attempt.latencyMillis,
                                         attempt.response.map { String($0.prefix(1024)) }, error])
            if outcome == .delivered {
                try db.cachedStatement(sql: "UPDATE endpoints SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL").execute(arguments: [attempt.endpoint])
                return AttemptWrite(transition: .applied, failingSince: nil)
            }
            try db.cachedStatement(sql: "UPDATE endpoints SET failing_since = COALESCE(failing_since, ?) WHERE id = ?").execute(arguments: [attempt.startedAt.millis, attempt.endpoint])
            let since = try Int64.fetchOne(db.cachedStatement(sql: "SELECT failing_since FROM endpoints WHERE id = ?"), arguments: [attempt.endpoint])
            return AttemptWrite(transition: .applied, failingSince: since.map { Date(timeIntervalSince1970: Double($0) / 1000) })
        }
    }
}
