import Logging
import PostgresNIO

/// The PostgreSQL schema, as numbered migrations. Never edit a shipped one; add one. The same tables
/// and columns as SQLite's (times as milliseconds since 1970, so both backends share their logic),
/// created in one step because no PostgreSQL database predates this backend.
enum PostgresSchema {
    struct Migration {
        var version: Int
        var name: String
        var statements: [String]
    }

    static let migrations: [Migration] = [
        Migration(version: 1, name: "queue-contract", statements: [
            // `seq` is arrival order; (source, provider_id) the dedupe key (NULLs never collide).
            """
            CREATE TABLE events (
                seq BIGSERIAL PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                source TEXT NOT NULL,
                type TEXT NOT NULL,
                provider_id TEXT,
                received_at BIGINT NOT NULL,
                headers TEXT NOT NULL,
                body BYTEA NOT NULL,
                depth INTEGER NOT NULL DEFAULT 0,
                UNIQUE (source, provider_id)
            )
            """,
            "CREATE INDEX events_source_type ON events (source, type, seq)",
            "CREATE INDEX events_type ON events (type, seq)",
            "CREATE INDEX events_received ON events (received_at)",
            // One queue for automation runs and deliveries; `lease_token` fences every transition,
            // `seq` orders runs sharing a concurrency key.
            """
            CREATE TABLE runs (
                seq BIGSERIAL NOT NULL,
                id TEXT PRIMARY KEY,
                event_id TEXT NOT NULL REFERENCES events (id),
                automation TEXT NOT NULL,
                status TEXT NOT NULL,
                next_step INTEGER NOT NULL DEFAULT 0,
                attempt INTEGER NOT NULL DEFAULT 0,
                due_at BIGINT NOT NULL,
                lease_owner TEXT,
                lease_until BIGINT,
                lease_token BIGINT NOT NULL DEFAULT 0,
                last_error TEXT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                concurrency_key TEXT,
                concurrency_limit INTEGER NOT NULL DEFAULT 1,
                endpoint TEXT,
                UNIQUE (event_id, automation)
            )
            """,
            "CREATE INDEX runs_queue ON runs (status, due_at, seq)",
            "CREATE INDEX runs_leases ON runs (lease_until, seq) WHERE status = 'running'",
            "CREATE INDEX runs_seq ON runs (seq)",
            "CREATE INDEX runs_ordering ON runs (automation, concurrency_key, status, seq) WHERE concurrency_key IS NOT NULL",
            "CREATE INDEX runs_endpoint ON runs (endpoint, status) WHERE endpoint IS NOT NULL",
            "CREATE INDEX runs_created ON runs (created_at)",
            """
            CREATE TABLE step_results (
                run_id TEXT NOT NULL REFERENCES runs (id),
                step_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                output TEXT NOT NULL,
                completed_at BIGINT NOT NULL,
                PRIMARY KEY (run_id, step_id)
            )
            """,
            """
            CREATE TABLE attempts (
                run_id TEXT NOT NULL REFERENCES runs (id),
                number INTEGER NOT NULL,
                endpoint TEXT NOT NULL,
                started_at BIGINT NOT NULL,
                status INTEGER,
                latency_ms INTEGER NOT NULL,
                response TEXT,
                error TEXT,
                PRIMARY KEY (run_id, number)
            )
            """,
            "CREATE INDEX attempts_endpoint ON attempts (endpoint, started_at)",
            "CREATE INDEX attempts_started ON attempts (started_at)",
            """
            CREATE TABLE endpoints (
                id TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                events TEXT NOT NULL,
                secrets TEXT NOT NULL,
                rate_limit TEXT,
                headers TEXT NOT NULL,
                enabled BOOLEAN NOT NULL,
                disabled_reason TEXT,
                from_config BOOLEAN NOT NULL,
                description TEXT,
                failing_since BIGINT,
                retry TEXT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )
            """,
            // Keys of events pruned before their dedupe window ended.
            """
            CREATE TABLE dedupe_keys (
                source TEXT NOT NULL,
                provider_id TEXT NOT NULL,
                event_id TEXT NOT NULL,
                received_at BIGINT NOT NULL,
                PRIMARY KEY (source, provider_id)
            )
            """,
            "CREATE INDEX dedupe_keys_age ON dedupe_keys (received_at)",
            // Work exactly one node does (pruning, the auto-disable scan, pollers) is held by the
            // node whose row here is current; a node that dies lets it lapse.
            """
            CREATE TABLE leader_leases (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                token BIGINT NOT NULL,
                until BIGINT NOT NULL
            )
            """,
        ]),
        Migration(version: 2, name: "shared-endpoint-state", statements: [
            // Sends counted against an endpoint's rate limit by every node (a sliding window).
            "CREATE TABLE send_slots (endpoint TEXT NOT NULL, sent_at BIGINT NOT NULL)",
            "CREATE INDEX send_slots_endpoint ON send_slots (endpoint, sent_at)",
            // An endpoint's circuit opened by one node holds for all of them.
            "CREATE TABLE endpoint_circuits (endpoint TEXT PRIMARY KEY, open_until BIGINT NOT NULL)",
        ]),
        Migration(version: 3, name: "pollers", statements: [
            // Pollers' state and remembered items (see SQLite's v9-pollers).
            """
            CREATE TABLE poller_state (
                poller TEXT PRIMARY KEY,
                generation BIGINT NOT NULL,
                cursor TEXT,
                etag TEXT,
                last_modified TEXT,
                last_poll_at BIGINT,
                last_success_at BIGINT,
                last_error TEXT,
                failures BIGINT NOT NULL DEFAULT 0,
                failing_since BIGINT,
                failing BOOLEAN NOT NULL DEFAULT false,
                next_poll_at BIGINT,
                items_seen BIGINT NOT NULL DEFAULT 0
            )
            """,
            """
            CREATE TABLE poller_items (
                poller TEXT NOT NULL,
                item_id TEXT NOT NULL,
                version BIGINT NOT NULL,
                generation BIGINT NOT NULL,
                PRIMARY KEY (poller, item_id)
            )
            """,
            "CREATE INDEX poller_items_age ON poller_items (poller, generation)",
        ]),
        Migration(version: 4, name: "dashboard-sessions", statements: [
            // Signed-in dashboard sessions, by a hash of their id, shared by every node.
            """
            CREATE TABLE dashboard_sessions (
                id_hash TEXT PRIMARY KEY,
                principal TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                idle_until BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            )
            """,
        ]),
        Migration(version: 5, name: "list-indexes", statements: [
            // The dashboard's and the API's lists walk an index in their own order and stop at a page:
            // events of one source newest first, runs and deliveries newest first by (created_at, seq),
            // and "has a run in this status" probed per event. Without them each page sorted or
            // scanned every row (seconds at a million events).
            "CREATE INDEX events_source ON events (source, seq)",
            "CREATE INDEX runs_event_status ON runs (event_id, status)",
            "CREATE INDEX runs_created_seq ON runs (created_at, seq)",
            "DROP INDEX runs_created",
        ]),
    ]

    static var latest: Int { migrations.map(\.version).max() ?? 0 }

    /// The advisory lock key migrations and other store-wide critical sections take (any constant
    /// unlikely to be used by another application sharing the database).
    static let migrationLock: Int64 = 0x646f_6f72_6265_6c6c  // "doorbell"
    /// Serialises claims across nodes, so per-key order and limits hold exactly (one short
    /// statement per claimed batch).
    static let claimLock: Int64 = 0x646f_6f72_636c_6d31
    /// With an endpoint's name hashed, serialises the sends counted against its rate limit.
    static let rateLock: Int32 = 0x7261_7465  // "rate"
    /// Serialises endpoint syncs: nodes starting together generate one secret per endpoint.
    static let endpointLock: Int64 = 0x646f_6f72_656e_6470

    /// Brings the database up to date in one transaction under an advisory lock, so nodes starting
    /// together migrate once. A database newer than this build is refused.
    static func migrate(_ client: PostgresClient, readOnly: Bool, where location: String, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { connection in
            // A migration may take long on a large database: no server-side timeout inside it.
            try await connection.drain("SET LOCAL statement_timeout = 0", logger: logger)
            try await connection.drain("SET LOCAL lock_timeout = 0", logger: logger)
            try await connection.drain("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            if !readOnly {
                try await connection.query("""
                    CREATE TABLE IF NOT EXISTS doorbell_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                    """, logger: logger)
            }
            let exists = try await connection.query("SELECT to_regclass('doorbell_migrations') IS NOT NULL", logger: logger)
            var hasTable = false
            for try await (present) in exists.decode(Bool.self) { hasTable = present }
            var applied: Set<Int> = []
            if hasTable {
                for try await (version) in try await connection.query("SELECT version FROM doorbell_migrations", logger: logger).decode(Int.self) { applied.insert(version) }
            }
            let newest = applied.max() ?? 0
            if newest > latest {
                throw StoreError.incompatibleSchema("database schema \(newest) is newer than this doorbell (\(latest)): upgrade doorbell (\(location))")
            }
            if readOnly {
                if newest == 0 { throw StoreError.incompatibleSchema("\(location) is not a doorbell database yet (doorbell serve creates one)") }
                if newest < latest { throw StoreError.incompatibleSchema("database schema \(newest) is older than this doorbell (\(latest)): run doorbell serve once to upgrade it (\(location))") }
                return
            }
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO doorbell_migrations (version, name) VALUES (\(migration.version), \(migration.name))", logger: logger)
                logger.info("migrated the PostgreSQL schema", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            }
        }
    }
}
