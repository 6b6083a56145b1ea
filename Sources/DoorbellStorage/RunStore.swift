import DoorbellCore
import Foundation

/// The work queue of runs. Runs are created with their event (see `EventStore.ingest`); workers
/// claim due runs with a lease, record each step's output as it completes, and reschedule or bury
/// failures. Every transition is one transaction, so a crash repeats at most the step in flight.
///
/// The contract every backend keeps when workers race: each claim hands out a new `Lease` (a
/// fencing token), and a transition made under a lease that is no longer the run's current one
/// changes nothing and answers `.leaseLost` — so a worker whose lease expired and was taken over
/// can never overwrite the work of the one that took it.
public protocol RunStore: Sendable {
    /// Claims up to `limit` runs that are due (pending or waiting for a retry whose time has come) or
    /// whose lease expired (their worker died), leasing them to `owner` until `leaseUntil`. Runs in
    /// `excluding` (the caller's own in-flight runs) are never claimed, even when their lease expired.
    /// Runs sharing a concurrency key are claimed in sequence order, at most `limit` of a key at once.
    func claimDueRuns(owner: String, limit: Int, now: Date, leaseUntil: Date, excluding: Set<String>) async throws -> [RunRecord]
    /// When the earliest waiting run becomes due, for the worker's timer; nil when nothing waits.
    func nextDueDate() async throws -> Date?
    /// Outputs of the run's completed steps, by step id (JSON text).
    func stepOutputs(runID: String) async throws -> [String: String]
    /// Stores a step's output and advances the run in one transaction; `finished` marks it succeeded.
    /// Nothing is stored unless `lease` is still the run's current claim.
    func completeStep(runID: String, stepID: String, position: Int, output: String, finished: Bool, lease: Lease, leaseUntil: Date) async throws -> Transition
    /// Records a failed attempt: waiting for a retry at `dueAt`, or dead when `dueAt` is nil.
    func failStep(runID: String, attempt: Int, error: String, dueAt: Date?, lease: Lease) async throws -> Transition
    /// Extends the given claims (run id → lease) in one statement; returns the ids whose lease was
    /// still current and is now extended. A run missing from the answer is lost to this worker.
    func renewLeases(_ leases: [String: Lease], until: Date) async throws -> Set<String>
    /// Runs of an event, or all recent runs.
    func runs(eventID: String?, limit: Int) async throws -> [RunRecord]
    /// Runs matching a filter, newest first.
    func runs(matching query: RunQuery) async throws -> [RunRecord]
    /// One run by id.
    func run(id: String) async throws -> RunRecord?
    /// Replays every run the query selects (dead ones resume at their failed step; with `fromStart`,
    /// runs start again at step one); returns how many.
    func replay(matching query: RunQuery, fromStart: Bool, now: Date) async throws -> Int
    /// Starts `automation` for an event that has no run of it yet (e.g. an automation added later).
    func startRun(eventID: String, automation: String, now: Date) async throws -> Bool
    /// How many runs match (ignoring `limit` and the cursor), e.g. what a bulk replay would touch.
    func countRuns(matching query: RunQuery) async throws -> Int
    /// The cursor of the `window`-th run in list order (newest first) matching `query` (`limit`
    /// ignored), when at least one older run matches too; nil when `window` or fewer match. Where a
    /// body search that reads at most `window` bodies stops (see `runPage`).
    func searchFloor(matching query: RunQuery, window: Int) async throws -> RunCursor?
}

/// A filter over runs (and their events); nil fields match everything.
public struct RunQuery: Sendable, Equatable {
    public var eventID: String?
    public var automation: String?
    public var source: String?
    public var type: String?
    public var statuses: [RunStatus]
    public var since: Date?
    public var until: Date?
    /// Only deliveries to this endpoint.
    public var endpoint: String?
    /// true: only deliveries; false: only automation runs; nil: both.
    public var deliveries: Bool?
    /// Only runs whose event's raw body contains these bytes (see `EventQuery.bodyContains`).
    public var bodyContains: String?
    /// Only runs after this one in the list's order (newest first): the page cursor.
    public var after: RunCursor?
    /// Only runs up to and including this one in the list's order: the far end of a search window.
    public var floor: RunCursor?
    public var limit: Int

    public init(eventID: String? = nil, automation: String? = nil, source: String? = nil, type: String? = nil, statuses: [RunStatus] = [], since: Date? = nil, until: Date? = nil, endpoint: String? = nil, deliveries: Bool? = nil, limit: Int = 50) {
        self.endpoint = endpoint
        self.deliveries = deliveries
        self.eventID = eventID
        self.automation = automation
        self.source = source
        self.type = type
        self.statuses = statuses
        self.since = since
        self.until = until
        self.limit = limit
    }

    /// Whether a filter reads the run's event (so a store must join it).
    public var readsEvents: Bool { source != nil || type != nil || since != nil || until != nil || bodyContains != nil }
}

extension RunQuery {
    /// Exactly this run (for replaying one delivery or run by id), finished either way.
    public static func only(_ run: RunRecord) -> RunQuery {
        RunQuery(eventID: run.eventID, automation: run.automation, statuses: [.dead, .succeeded], deliveries: run.endpoint != nil, limit: 1)
    }
}

/// One claim of a run: the worker that holds it and the fencing token the claim set. Every claim of
/// a run increments its token, so an older claim can be told from the current one even when both
/// came from the same worker.
public struct Lease: Sendable, Hashable, CustomStringConvertible {
    public var owner: String
    public var token: Int64

    public init(owner: String, token: Int64) {
        self.owner = owner
        self.token = token
    }

    public var description: String { "\(owner)#\(token)" }
}

/// Whether a transition on a claimed run or delivery took effect.
public enum Transition: Sendable, Equatable {
    case applied
    /// The lease it was made under is no longer the run's current claim (it expired and another
    /// worker claimed the run, or the run moved on): nothing was written.
    case leaseLost
}

/// A run as stored.
public struct RunRecord: Sendable, Equatable {
    public var id: String
    public var eventID: String
    public var automation: String
    public var status: RunStatus
    public var nextStep: Int
    public var attempt: Int
    public var dueAt: Date
    public var lastError: String?
    /// Set for a delivery: the endpoint it goes to.
    public var endpoint: String?
    /// The current claim, while a worker holds the run (for a claimed record: the caller's own).
    public var lease: Lease?
    /// The queue's arrival order.
    public var sequence: Int64
    public var createdAt: Date
    /// The last transition.
    public var updatedAt: Date

    /// Where a list that ends with this run continues.
    public var cursor: RunCursor { RunCursor(createdAtMillis: Timestamp.saturatingMillis(createdAt), sequence: sequence) }

    public init(id: String, eventID: String, automation: String, status: RunStatus, nextStep: Int, attempt: Int, dueAt: Date, lastError: String?, endpoint: String? = nil, lease: Lease? = nil, sequence: Int64 = 0, createdAt: Date = Date(timeIntervalSince1970: 0), updatedAt: Date = Date(timeIntervalSince1970: 0)) {
        self.endpoint = endpoint
        self.lease = lease
        self.sequence = sequence
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.id = id
        self.eventID = eventID
        self.automation = automation
        self.status = status
        self.nextStep = nextStep
        self.attempt = attempt
        self.dueAt = dueAt
        self.lastError = lastError
    }
}
