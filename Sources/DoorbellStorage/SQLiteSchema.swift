import GRDB

/// The SQLite schema, as an ordered list of migrations. Never edit a shipped migration; add one.
enum SQLiteSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-events") { db in
            // `seq` gives arrival order; (source, provider_id) is the dedupe key. SQLite treats
            // NULLs as distinct, so events without a provider id never collide.
            try db.execute(sql: """
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    source TEXT NOT NULL,
                    type TEXT NOT NULL,
                    provider_id TEXT,
                    received_at INTEGER NOT NULL,
                    headers TEXT NOT NULL,
                    body BLOB NOT NULL,
                    UNIQUE (source, provider_id)
                );
                CREATE INDEX events_source_type ON events (source, type, seq);
                CREATE INDEX events_type ON events (type, seq);
                """)
        }
        migrator.registerMigration("v2-runs") { db in
            // A run per (event, automation); `due_at` orders the queue, the lease marks a claim.
            try db.execute(sql: """
                ALTER TABLE events ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
                CREATE TABLE runs (
                    id TEXT PRIMARY KEY,
                    event_id TEXT NOT NULL REFERENCES events (id),
                    automation TEXT NOT NULL,
                    status TEXT NOT NULL,
                    next_step INTEGER NOT NULL DEFAULT 0,
                    attempt INTEGER NOT NULL DEFAULT 0,
                    due_at INTEGER NOT NULL,
                    lease_owner TEXT,
                    lease_until INTEGER,
                    last_error TEXT,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    UNIQUE (event_id, automation)
                );
                CREATE INDEX runs_queue ON runs (status, due_at);
                CREATE TABLE step_results (
                    run_id TEXT NOT NULL REFERENCES runs (id),
                    step_id TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    output TEXT NOT NULL,
                    completed_at INTEGER NOT NULL,
                    PRIMARY KEY (run_id, step_id)
                );
                """)
        }
        migrator.registerMigration("v3-run-ordering") { db in
            // Runs sharing a key start in arrival order (since v7 by `seq`), at most `concurrency_limit` at a time.
            try db.execute(sql: """
                ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
                ALTER TABLE runs ADD COLUMN concurrency_limit INTEGER NOT NULL DEFAULT 1;
                CREATE INDEX runs_ordering ON runs (automation, concurrency_key, status) WHERE concurrency_key IS NOT NULL;
                """)
        }
        migrator.registerMigration("v4-deliveries") { db in
            // Deliveries are runs with an endpoint (one queue, one retry machinery); each HTTP try is
            // an attempt. Endpoints live here so API-added ones and runtime state survive restarts.
            try db.execute(sql: """
                ALTER TABLE runs ADD COLUMN endpoint TEXT;
                CREATE INDEX runs_endpoint ON runs (endpoint, status) WHERE endpoint IS NOT NULL;
                CREATE TABLE attempts (
                    run_id TEXT NOT NULL REFERENCES runs (id),
                    number INTEGER NOT NULL,
                    endpoint TEXT NOT NULL,
                    started_at INTEGER NOT NULL,
                    status INTEGER,
                    latency_ms INTEGER NOT NULL,
                    response TEXT,
                    error TEXT,
                    PRIMARY KEY (run_id, number)
                );
                CREATE INDEX attempts_endpoint ON attempts (endpoint, started_at);
                CREATE TABLE endpoints (
                    id TEXT PRIMARY KEY,
                    url TEXT NOT NULL,
                    events TEXT NOT NULL,
                    secrets TEXT NOT NULL,
                    rate_limit TEXT,
                    headers TEXT NOT NULL,
                    enabled INTEGER NOT NULL,
                    disabled_reason TEXT,
                    from_config INTEGER NOT NULL,
                    description TEXT,
                    failing_since INTEGER,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                );
                """)
        }
        migrator.registerMigration("v5-endpoint-retry") { db in
            // An endpoint's own retry schedule, as JSON {"schedule": [seconds…], "jitter": x}.
            try db.execute(sql: "ALTER TABLE endpoints ADD COLUMN retry TEXT")
        }
        migrator.registerMigration("v6-retention") { db in
            // Dedupe keys of events pruned before their dedupe window ended (filled by pruning only,
            // so ingest writes nothing extra), and the row readiness probes rewrite after a failed write.
            try db.execute(sql: """
                CREATE TABLE dedupe_keys (
                    source TEXT NOT NULL,
                    provider_id TEXT NOT NULL,
                    event_id TEXT NOT NULL,
                    received_at INTEGER NOT NULL,
                    PRIMARY KEY (source, provider_id)
                );
                CREATE INDEX dedupe_keys_age ON dedupe_keys (received_at);
                CREATE TABLE store_probe (id INTEGER PRIMARY KEY, written_at INTEGER NOT NULL);
                """)
        }
        migrator.registerMigration("v7-queue-contract") { db in
            // Claims are fenced: each claim increments `lease_token`, and every transition names the
            // token it was claimed with, so a worker whose lease was taken over changes nothing.
            // `seq` is the queue's own arrival order, used by per-key ordering instead of `rowid`
            // (which belongs to SQLite: VACUUM may renumber it in a table with a text primary key,
            // and another backend has none). Existing runs keep the order they had.
            try db.execute(sql: """
                ALTER TABLE runs ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE runs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
                UPDATE runs SET seq = rowid;
                CREATE INDEX runs_seq ON runs (seq);
                DROP INDEX runs_ordering;
                CREATE INDEX runs_ordering ON runs (automation, concurrency_key, status, seq) WHERE concurrency_key IS NOT NULL;
                """)
        }
        migrator.registerMigration("v8-shared-state") { db in
            // Leases for work one node does (pruning), and sends counted against endpoint rate
            // limits — kept in the store so every backend answers the same contract.
            try db.execute(sql: """
                CREATE TABLE leader_leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, token INTEGER NOT NULL, until INTEGER NOT NULL);
                CREATE TABLE send_slots (endpoint TEXT NOT NULL, sent_at INTEGER NOT NULL);
                CREATE INDEX send_slots_endpoint ON send_slots (endpoint, sent_at);
                CREATE TABLE endpoint_circuits (endpoint TEXT PRIMARY KEY, open_until INTEGER NOT NULL);
                """)
        }
        migrator.registerMigration("v9-pollers") { db in
            // Pollers' state (cursor, ETag, status) and the item ids each remembers with a 64-bit
            // hash of the item's version; `generation` orders forgetting (oldest first) and fences
            // a poll's commit against another poll or a reset in between.
            try db.execute(sql: """
                CREATE TABLE poller_state (
                    poller TEXT PRIMARY KEY,
                    generation INTEGER NOT NULL,
                    cursor TEXT,
                    etag TEXT,
                    last_modified TEXT,
                    last_poll_at INTEGER,
                    last_success_at INTEGER,
                    last_error TEXT,
                    failures INTEGER NOT NULL DEFAULT 0,
                    failing_since INTEGER,
                    failing INTEGER NOT NULL DEFAULT 0,
                    next_poll_at INTEGER,
                    items_seen INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE poller_items (
                    poller TEXT NOT NULL,
                    item_id TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    generation INTEGER NOT NULL,
                    PRIMARY KEY (poller, item_id)
                );
                CREATE INDEX poller_items_age ON poller_items (poller, generation);
                """)
        }
        migrator.registerMigration("v10-dashboard-sessions") { db in
            // Signed-in dashboard sessions, by a hash of their id (the cookie's value is never stored).
            try db.execute(sql: """
                CREATE TABLE dashboard_sessions (
                    id_hash TEXT PRIMARY KEY,
                    principal TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    idle_until INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL
                );
                """)
        }
        migrator.registerMigration("v11-list-indexes") { db in
            // The dashboard's and the API's lists walk an index in their own order and stop at a page:
            // events of one source newest first, runs and deliveries newest first by (created_at, seq),
            // and "has a run in this status" probed per event (with only `status` indexed, SQLite
            // walked every run in that status for each event: minutes at a million events).
            try db.execute(sql: """
                CREATE INDEX events_source ON events (source, seq);
                CREATE INDEX runs_event_status ON runs (event_id, status);
                CREATE INDEX runs_created ON runs (created_at, seq);
                """)
        }
        migrator.registerMigration("v12-queue-order") { db in
            // A claim takes due runs in (due_at, seq) order. With only (status, due_at) indexed, runs
            // sharing one due_at (an endpoint enabled again, a replay: thousands made due at the same
            // millisecond) were all read and sorted by seq for every claim: 18 ms a claim over 16,000,
            // inside the writer. (Running runs, whose expired leases are claimed, are few: at most the
            // workers' concurrency; SQLite reads them through the same index.) The readiness probe
            // writes `room` (see `SQLiteEventStore.probeRoom`).
            try db.execute(sql: """
                DROP INDEX runs_queue;
                CREATE INDEX runs_queue ON runs (status, due_at, seq);
                ALTER TABLE store_probe ADD COLUMN room BLOB;
                """)
        }
        return migrator
    }

    /// The `seq` of a run being inserted: after every run stored (one writer, so never shared).
    static let nextRunSequence = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM runs)"

    /// The schema a database holds, numbered by its newest migration (`v6-…` is 6), against this build's.
    struct Version: Equatable {
        /// 0 for a file without Doorbell's tables.
        var database: Int
        var binary: Int
        /// Migrations the database has that this build does not know (it was written by a newer one).
        var unknown: [String]

        static func read(_ db: Database) throws -> Version {
            let known = migrator.migrations
            let binary = known.compactMap(number).max() ?? known.count
            guard try db.tableExists("grdb_migrations") else { return Version(database: 0, binary: binary, unknown: []) }
            let applied = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
            let unknown = applied.filter { !known.contains($0) }
            return Version(database: applied.compactMap(number).max() ?? applied.count, binary: binary, unknown: unknown)
        }

        /// Why a database cannot be opened this way, or nil.
        func problem(access: StoreAccess, path: String) -> String? {
            if !unknown.isEmpty || database > binary {
                return "database schema \(database) is newer than this doorbell (\(binary)): upgrade doorbell (\(path))"
            }
            guard access == .readOnly, database < binary else { return nil }
            if database == 0 { return "\(path) is not a doorbell database yet (doorbell serve creates one)" }
            return "database schema \(database) is older than this doorbell (\(binary)): run doorbell serve once to upgrade it (\(path))"
        }

        private static func number(_ identifier: String) -> Int? {
            guard identifier.hasPrefix("v") else { return nil }
            return Int(identifier.dropFirst().prefix { $0.isNumber })
        }
    }
}
