import DoorbellCore
import Logging

/// Opens the backend a config's `storage:` names. The one place that chooses a backend.
public enum StoreFactory {
    /// `access`: `.server` for `doorbell serve`, `.readWrite` for commands that change things,
    /// `.readOnly` for commands that only look (no migrations, no writes, a clear error when the
    /// database's schema does not match this build).
    public static func open(_ location: StorageLocation, logger: Logger, access: StoreAccess = .server) throws -> any DoorbellStore {
        switch location {
        case .sqlite(let path):
            return try SQLiteEventStore(path: path, logger: logger, access: access)
        case .postgres:
            throw StoreError.unavailable("PostgreSQL storage is not available in this build yet; use storage: sqlite:<file>")
        }
    }
}
