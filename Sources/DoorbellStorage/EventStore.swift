import DoorbellCore

/// Where events live. Every backend (SQLite now, PostgreSQL for several nodes) implements this;
/// the backend is chosen in one place (`StoreFactory`).
///
/// `ingest` returns only once the event is committed and synced: that is what lets the server
/// answer 2xx. Concurrent ingests may share one commit (group commit).
public protocol EventStore: Sendable {
    /// Stores `event` durably, or finds the earlier event with the same source and provider id.
    /// Throws `StoreError.unavailable` when nothing could be stored.
    func ingest(_ event: NewEvent) async throws -> IngestOutcome
    /// One event by its id (`evt_…`).
    func event(id: String) async throws -> StoredEvent?
    /// Events newest first.
    func events(matching query: EventQuery) async throws -> [StoredEvent]
    /// How many events match (for `doorbell events list` summaries and tests).
    func countEvents(matching query: EventQuery) async throws -> Int
    /// Throws when the store cannot serve requests (`/readyz`).
    func checkReady() async throws
    /// Finishes pending commits and releases the database.
    func close() async throws
}

/// Everything the server needs from one backend: events, the run queue, endpoints and attempts,
/// and their upkeep (retention, size, backups).
public typealias DoorbellStore = EventStore & RunStore & DeliveryStore & MaintenanceStore

/// A filter over events; nil fields match everything.
public struct EventQuery: Sendable, Equatable {
    public var source: String?
    public var type: String?
    /// Only events older than this sequence number (paging backwards).
    public var beforeSequence: Int64?
    public var limit: Int

    public init(source: String? = nil, type: String? = nil, beforeSequence: Int64? = nil, limit: Int = 50) {
        self.source = source
        self.type = type
        self.beforeSequence = beforeSequence
        self.limit = limit
    }
}

/// Storage failures the server turns into 503. Cases may be added.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable { case unavailable, closed, incompatibleSchema }
    private let code: Code
    /// What went wrong underneath, for logs.
    public let reason: String

    public static func unavailable(_ reason: String) -> StoreError { StoreError(code: .unavailable, reason: reason) }
    public static let closed = StoreError(code: .closed, reason: "the store is shutting down")
    /// The database was written by a newer doorbell, or (for a read-only open) needs migrating first.
    public static func incompatibleSchema(_ reason: String) -> StoreError { StoreError(code: .incompatibleSchema, reason: reason) }

    public var description: String {
        switch code {
        case .unavailable: "storage unavailable: \(reason)"
        case .closed, .incompatibleSchema: reason
        }
    }
}
