#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How many connections the server takes at once, so the cap applies before the process runs out
/// of file descriptors: past the open-file limit `accept` fails (EMFILE) and new clients see resets
/// while the cap still looks unreached, and the database, logs and outbound requests fail with it.
/// Half the descriptors are for client connections, the rest for everything else.
struct ConnectionBudget: Equatable {
    /// The cap the server applies.
    var maxConnections: Int
    /// Why the configured cap is unsafe, for a warning at start.
    var warning: String?

    /// The most connections a default config takes.
    static let defaultCap = 1024

    /// The cap for `configured` (`server.max_connections`, nil when not set) under an open-file
    /// limit of `openFiles`: by default at most half of it; a configured value is kept, but above
    /// half the limit it earns a warning.
    static func decide(configured: Int?, openFiles: Int) -> ConnectionBudget {
        let allowed = max(1, openFiles / 2)
        guard let configured else { return ConnectionBudget(maxConnections: min(defaultCap, allowed)) }
        guard configured > allowed else { return ConnectionBudget(maxConnections: configured) }
        return ConnectionBudget(
            maxConnections: configured,
            warning: "server.max_connections is \(configured) but the open-file limit is \(openFiles) (ulimit -n): "
                + "past about \(allowed) connections accepting fails (EMFILE) before the cap applies; raise the limit or lower max_connections"
        )
    }

    /// Raises this process's soft open-file limit to its hard limit (an unprivileged process may)
    /// and returns the soft limit now in force, or nil when it cannot be read.
    static func raiseOpenFileLimit() -> Int? {
        #if os(Linux)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            // An unlimited hard limit: ask for a large finite one (the kernel refuses more than nr_open).
            raised.rlim_cur = limit.rlim_max == rlim_t.max ? max(limit.rlim_cur, 1 << 20) : limit.rlim_max
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// Raises the open-file limit and decides the cap for `configured`.
    static func atStart(configured: Int?) -> ConnectionBudget {
        decide(configured: configured, openFiles: raiseOpenFileLimit() ?? defaultCap)
    }
}
