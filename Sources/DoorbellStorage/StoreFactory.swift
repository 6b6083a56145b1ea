import DoorbellCore
import Logging

/// Opens the backend a config's `storage:` names. The one place that chooses a backend.
public enum StoreFactory {
    public static func open(_ location: StorageLocation, logger: Logger) throws -> any DoorbellStore {
        switch location {
        case .sqlite(let path):
            return try SQLiteEventStore(path: path, logger: logger)
        case .postgres:
            throw StoreError.unavailable("PostgreSQL storage is not available in this build yet; use storage: sqlite:<file>")
        }
    }
}
