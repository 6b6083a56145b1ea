import DoorbellCore
import Foundation
import ServiceLifecycle

/// Where events live. Every backend (SQLite now, PostgreSQL for several nodes) implements this;
/// the backend is chosen in one place (`StoreFactory`).
///
/// `ingest` returns only once the event is committed and synced: that is what lets the server
/// answer 2xx. Concurrent ingests may share one commit (group commit).
///
/// A store is a `Service`: opened (and migrated) by `StoreFactory.open`, run first by the server's
/// service group and stopped last — `run()` lasts until graceful shutdown, then closes the store,
/// after the HTTP server and the worker have finished.
public protocol EventStore: Service {
    /// Stores `event` durably, or finds the earlier event with the same source and provider id.
    /// Throws `StoreError.unavailable` when nothing could be stored, `.rejected` when the database
    /// refused this one event (a constraint) while the store works.
    func ingest(_ event: NewEvent) async throws -> IngestOutcome
    /// One event by its id (`evt_…`).
    func event(id: String) async throws -> StoredEvent?
    /// The events with these ids that are stored, by id, in one read: the worker's runs that ask at
    /// once share it (`EventReads`) instead of one read each.
    func events(ids: [String]) async throws -> [String: StoredEvent]
    /// Events newest first.
    func events(matching query: EventQuery) async throws -> [StoredEvent]
    /// How many events match (for `doorbell events list` summaries and tests).
    func countEvents(matching query: EventQuery) async throws -> Int
    /// The `window`-th newest event matching `query` (`limit` ignored), when at least one older
    /// event matches too; nil when `window` or fewer match. Where a body search that reads at most
    /// `window` bodies stops (see `eventPage`).
    func searchFloor(matching query: EventQuery, window: Int) async throws -> EventPosition?
    /// Throws when the store cannot serve requests (`/readyz`): a `StoreError` whose `summary` is
    /// safe to show anyone and whose `reason` is for the log.
    func checkReady() async throws
    /// Finishes pending commits and releases the database.
    func close() async throws
    /// Signalled when work may have become due through this store: an event stored with runs,
    /// runs planned, replayed or started, a queue write that schedules a run, an endpoint enabled.
    /// SQLite signals it in-process from its own writes; PostgreSQL also from `LISTEN`, for writes
    /// by other nodes and commands.
    var wakeUps: WakeUpChannel { get }
    /// How the store is doing beyond ready or not, for `/readyz` (e.g. PostgreSQL's `wake_ups`:
    /// listening, or polling while its LISTEN connection is down). Safe to show anyone.
    var readinessNotes: [String: String] { get }
    /// Told each group commit's size and time, for metrics; nil for a store without group commit.
    var commitObserver: CommitObserver? { get }
}

extension EventStore {
    public var readinessNotes: [String: String] { [:] }
    public var commitObserver: CommitObserver? { nil }
}

/// Everything the server needs from one backend: events, the run queue, endpoints and attempts,
/// and their upkeep (retention, size, backups).
public typealias DoorbellStore = EventStore & RunStore & DeliveryStore & MaintenanceStore & DashboardSessionStore & DashboardSummaryStore & PollerStore

/// A filter over events; nil fields match everything. The API and the dashboard share these
/// filters' names: `source`, `type`, `status`, `since`, `until`, `q`, `cursor`, `limit`.
public struct EventQuery: Sendable, Equatable {
    public var source: String?
    /// The exact type (no wildcards).
    public var type: String?
    /// Only events with at least one run (or delivery) in one of these statuses; empty: any.
    public var statuses: [RunStatus]
    /// Received at or after this time.
    public var since: Date?
    /// Received before this time.
    public var until: Date?
    /// Only events whose raw body contains these bytes (UTF-8), compared as bytes: no pattern
    /// characters, so `%` or `_` in hostile input match only themselves.
    public var bodyContains: String?
    /// Only events older than this sequence number (paging backwards: the cursor).
    public var beforeSequence: Int64?
    /// Only events at or after this sequence number: the far end of a search window.
    public var floorSequence: Int64?
    public var limit: Int

    public init(source: String? = nil, type: String? = nil, statuses: [RunStatus] = [], since: Date? = nil, until: Date? = nil, bodyContains: String? = nil, beforeSequence: Int64? = nil, limit: Int = 50) {
        self.source = source
        self.type = type
        self.statuses = statuses
        self.since = since
        self.until = until
        self.bodyContains = bodyContains
        self.beforeSequence = beforeSequence
        self.limit = limit
    }
}

/// Storage failures the server turns into 503. Cases may be added.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Nothing can be stored now (the disk, the database file).
        case unavailable
        case closed
        case incompatibleSchema
        /// This one write was refused by the database (a constraint); the store itself works and
        /// the other writes of its batch committed.
        case rejected
    }

    public let kind: Kind
    /// What went wrong underneath, for logs: may name files and carry SQLite's message, so it is
    /// never shown to an unauthenticated caller (`summary` is).
    public let reason: String
    /// A few words without paths or error text, for `/readyz` (e.g. "database file lost").
    public let summary: String

    public static func unavailable(_ reason: String, summary: String = "storage unavailable") -> StoreError { StoreError(kind: .unavailable, reason: reason, summary: summary) }
    public static let closed = StoreError(kind: .closed, reason: "the store is shutting down", summary: "shutting down")
    /// The database was written by a newer doorbell, or (for a read-only open) needs migrating first.
    public static func incompatibleSchema(_ reason: String) -> StoreError { StoreError(kind: .incompatibleSchema, reason: reason, summary: "incompatible database schema") }
    /// One write of a batch failed on its own (rolled back to its savepoint).
    public static func rejected(_ reason: String) -> StoreError { StoreError(kind: .rejected, reason: reason, summary: "write rejected") }

    public var description: String {
        switch kind {
        case .unavailable: "storage unavailable: \(reason)"
        case .rejected: "the database rejected this write (the store works; the other writes went through): \(reason)"
        case .closed, .incompatibleSchema: reason
        }
    }
}
