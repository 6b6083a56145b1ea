import DoorbellCore
import Foundation

/// Upkeep of a store: retention, its size on disk, consistent copies.
public protocol MaintenanceStore: Sendable {
    /// Deletes what `policy` lets go, in small transactions (at most `batchSize` rows each) so
    /// ingest waits at most one small batch; stops early when the task is cancelled. With `dryRun`
    /// only counts, from one read snapshot, what would go.
    func prune(_ policy: RetentionPolicy, now: Date, dryRun: Bool, batchSize: Int) async throws -> PruneCounts
    /// Bytes on disk and pages, for `doorbell check` and `/metrics`.
    func storageSize() async throws -> StorageSize
    /// Writes a consistent copy of the database to `file`, which must not exist yet.
    func backup(to file: String) async throws
    /// Takes the lease called `name` for `owner` until `until`, or keeps it when `owner` already
    /// holds it; true while `owner` holds it. Work exactly one node may do (pruning, later pollers)
    /// runs only on the holder; when the holder dies its lease lapses and another node takes it.
    func holdLease(_ name: String, owner: String, until: Date, now: Date) async throws -> Bool
}

/// What a prune deleted (or, in a dry run, would delete).
public struct PruneCounts: Sendable, Equatable {
    public var events = 0
    public var runs = 0
    public var stepOutputs = 0
    public var attempts = 0
    /// Dedupe keys kept after their event went (the event was younger than the dedupe window).
    public var dedupeKeysKept = 0
    /// Dedupe keys older than the dedupe window, forgotten.
    public var dedupeKeysExpired = 0

    public init() {}

    public var total: Int { events + runs + stepOutputs + attempts + dedupeKeysExpired }
}

/// The database's size: files on disk and SQLite's page counts.
public struct StorageSize: Sendable, Equatable {
    /// The main database file, in bytes.
    public var fileBytes: Int64
    /// The write-ahead log, in bytes (0 when absent).
    public var walBytes: Int64
    public var pageSize: Int
    public var pageCount: Int
    /// Pages freed by deletes and reused before the file grows.
    public var freePages: Int

    public init(fileBytes: Int64, walBytes: Int64, pageSize: Int, pageCount: Int, freePages: Int) {
        self.fileBytes = fileBytes
        self.walBytes = walBytes
        self.pageSize = pageSize
        self.pageCount = pageCount
        self.freePages = freePages
    }
}
