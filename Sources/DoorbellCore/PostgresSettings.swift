import Foundation

/// `storage: postgres://user:pass@host:5432/db?sslmode=verify-full&pool_size=10`, read once at open.
///
/// The URL carries the password: it is never logged, never put in an error, never shown (errors
/// name the host and database only, `StorageLocation.description` names neither).
public struct PostgresSettings: Sendable, Equatable {
    public enum SSLMode: String, Sendable, CaseIterable {
        /// Plain TCP (loopback, a private network).
        case disable
        /// TLS when the server offers it, unverified (libpq's default).
        case prefer
        /// TLS always, the certificate not verified.
        case require
        /// TLS always, the certificate verified against the system's roots and the host name.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    /// Connections this node opens for queries; one more is held for `LISTEN`.
    public var poolSize: Int

    /// Where it connects, for messages: host, port and database, never the credentials.
    public var safeDescription: String { "PostgreSQL at \(host):\(port)/\(database)" }

    /// Parses the URL; the error names what is wrong, never the password.
    public init(url text: String) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw PostgresURLError("not a postgres:// URL")
        }
        guard let host = components.host, !host.isEmpty else { throw PostgresURLError("the postgres:// URL names no host") }
        guard let user = components.user, !user.isEmpty else { throw PostgresURLError("the postgres:// URL names no user (postgres://user:pass@host:5432/db)") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else { throw PostgresURLError("the postgres:// URL names no database (…@host:5432/db)") }
        self.host = host
        self.port = components.port ?? 5432
        self.username = user.removingPercentEncoding ?? user
        self.password = components.password.map { $0.removingPercentEncoding ?? $0 }
        self.database = database.removingPercentEncoding ?? database
        self.sslMode = .prefer
        self.poolSize = 10
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let mode = SSLMode(rawValue: value) else {
                    throw PostgresURLError("sslmode must be one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                sslMode = mode
            case "pool_size":
                guard let value = item.value.flatMap(Int.init), (1...200).contains(value) else {
                    throw PostgresURLError("pool_size must be a whole number from 1 to 200")
                }
                poolSize = value
            default:
                throw PostgresURLError("unknown postgres:// URL parameter \"\(item.name)\" (known: sslmode, pool_size)")
            }
        }
    }

}

/// What is wrong with a `postgres://` URL, in words that never include the password.
public struct PostgresURLError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Printed or dumped, the settings never show the password.
extension PostgresSettings: CustomStringConvertible, CustomReflectable {
    public var description: String { safeDescription }
    public var customMirror: Mirror {
        Mirror(self, children: ["host": host, "port": port, "username": username, "database": database, "sslMode": sslMode, "poolSize": poolSize])
    }
}
