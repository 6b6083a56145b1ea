import Foundation
import DoorbellCore
import Logging

/// Opens the backend a config's `storage:` names. The one place that chooses a backend.
public enum StoreFactory {
    /// Opens the store and brings its schema up to date (migrations), before anything uses it; the
    /// server then runs it as the first service of its group, which closes it at shutdown.
    /// `access`: `.server` for `doorbell serve`, `.readWrite` for commands that change things,
    /// `.readOnly` for commands that only look (no migrations, no writes, a clear error when the
    /// database's schema does not match this build).
    public static func open(_ location: StorageLocation, logger: Logger, access: StoreAccess = .server) async throws -> any DoorbellStore {
        switch location {
        case .sqlite(let path):
            try refuseEmptiedDatabase(path)
            // Opening and migrating a SQLite file blocks: off the concurrency pool's few threads.
            return try await withCheckedThrowingContinuation { (opened: CheckedContinuation<any DoorbellStore, any Error>) in
                DispatchQueue.global().async {
                    opened.resume(with: Result { try SQLiteEventStore(path: path, logger: logger, access: access) })
                }
            }
        case .postgres:
            throw StoreError.unavailable("PostgreSQL storage is not available in this build yet; use storage: sqlite:<file>")
        }
    }

    /// An empty database file beside a WAL that holds frames is a truncated database, not a new one:
    /// opening it would start empty and reset the WAL, throwing away what the WAL still holds.
    static func refuseEmptiedDatabase(_ path: String) throws {
        let files = FileManager.default
        guard let size = (try? files.attributesOfItem(atPath: path))?[.size] as? Int, size == 0,
              let walSize = (try? files.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int, walSize > 0
        else { return }
        throw StoreError.unavailable("the database file \(path) is empty but its write-ahead log \(path)-wal holds \(walSize) bytes: the database was truncated. Restore it from a backup (or a rescued copy beside it); Doorbell will not start on it, as that would discard the log")
    }
}
