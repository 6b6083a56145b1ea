import DoorbellCore
import Foundation
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
            // Opening and migrating a SQLite file blocks: off the concurrency pool's few threads.
            return try await withCheckedThrowingContinuation { (opened: CheckedContinuation<any DoorbellStore, any Error>) in
                DispatchQueue.global().async {
                    opened.resume(with: Result { try SQLiteEventStore(path: path, logger: logger, access: access) })
                }
            }
        case .postgres(let url):
            let settings: PostgresSettings
            do {
                settings = try PostgresSettings(url: url)
            } catch {
                throw StoreError.unavailable("storage: \(error)")
            }
            return try await PostgresStore.open(settings, logger: logger, access: access)
        }
    }
}
