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
        return migrator
    }
}
