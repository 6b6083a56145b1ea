/// `storage:` — the embedded SQLite file or a shared PostgreSQL database.
public enum StorageLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(url: String)

    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .postgres: "postgres (shared database)"
        }
    }
}
