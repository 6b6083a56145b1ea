import DoorbellCore
import Foundation

/// The work queue of runs. Runs are created with their event (see `EventStore.ingest`); workers
/// claim due runs with a lease, record each step's output as it completes, and reschedule or bury
/// failures. Every transition is one transaction, so a crash repeats at most the step in flight.
public protocol RunStore: Sendable {
    /// Claims up to `limit` runs that are due (pending or waiting for a retry whose time has come) or
    /// whose lease expired (their worker died), leasing them to `owner` until `leaseUntil`.
    func claimDueRuns(owner: String, limit: Int, now: Date, leaseUntil: Date) async throws -> [RunRecord]
    /// When the earliest waiting run becomes due, for the worker's timer; nil when nothing waits.
    func nextDueDate() async throws -> Date?
    /// Outputs of the run's completed steps, by step id (JSON text).
    func stepOutputs(runID: String) async throws -> [String: String]
    /// Stores a step's output and advances the run in one transaction; `finished` marks it succeeded.
    func completeStep(runID: String, stepID: String, position: Int, output: String, finished: Bool, owner: String, leaseUntil: Date) async throws
    /// Records a failed attempt: waiting for a retry at `dueAt`, or dead when `dueAt` is nil.
    func failStep(runID: String, attempt: Int, error: String, dueAt: Date?, owner: String) async throws
    /// Extends every claim `owner` holds (one statement for all in-flight runs and deliveries).
    func renewLeases(owner: String, until: Date) async throws
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
}

extension RunQuery {
    /// Exactly this run (for replaying one delivery or run by id), finished either way.
    public static func only(_ run: RunRecord) -> RunQuery {
        RunQuery(eventID: run.eventID, automation: run.automation, statuses: [.dead, .succeeded], deliveries: run.endpoint != nil, limit: 1)
    }
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

    public init(id: String, eventID: String, automation: String, status: RunStatus, nextStep: Int, attempt: Int, dueAt: Date, lastError: String?, endpoint: String? = nil) {
        self.endpoint = endpoint
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
