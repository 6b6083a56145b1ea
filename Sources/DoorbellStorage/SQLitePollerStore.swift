import DoorbellCore
import Foundation
import GRDB

/// Pollers' state in SQLite: `poller_state` (one row per poller) and `poller_items` (its remembered
/// ids, each with its version's hash and the generation that wrote it, oldest forgotten first).
extension SQLiteEventStore: PollerStore {
    public func pollerState(_ poller: String) async throws -> PollerState? {
        try await pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM poller_state WHERE poller = ?", arguments: [poller]).map(Self.pollerState) }
    }

    public func pollerStates() async throws -> [PollerState] {
        try await pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM poller_state ORDER BY poller").map(Self.pollerState) }
    }

    public func seenItems(_ poller: String) async throws -> [SeenItem] {
        try await pool.read { db in
            var items: [SeenItem] = []
            let rows = try Row.fetchCursor(db, sql: "SELECT item_id, version FROM poller_items WHERE poller = ?", arguments: [poller])
            while let row = try rows.next() {
                items.append(SeenItem(id: row[0], version: UInt64(bitPattern: row[1])))
            }
            return items
        }
    }

    public func commitPoll(_ commit: PollCommit) async throws -> PollCommitOutcome {
        try monitor.beforeWrite()
        let outcome: PollCommitOutcome
        do {
            outcome = try await pool.write { db in
                let generation = commit.expectedGeneration + 1
                try db.execute(sql: """
                    UPDATE poller_state SET generation = ?, cursor = COALESCE(?, cursor), etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified),
                        last_poll_at = ?, last_success_at = ?, last_error = NULL, failures = 0, failing_since = NULL, next_poll_at = ?
                    WHERE poller = ? AND generation = ?
                    """, arguments: [generation, commit.cursor, commit.etag, commit.lastModified, commit.at.millis, commit.at.millis, commit.nextPollAt.millis, commit.poller, commit.expectedGeneration])
                if db.changesCount == 0 {
                    guard commit.expectedGeneration == 0 else { return PollCommitOutcome(committed: false, stored: [], state: nil) }
                    try db.execute(sql: """
                        INSERT INTO poller_state (poller, generation, cursor, etag, last_modified, last_poll_at, last_success_at, next_poll_at)
                        VALUES (?, 1, ?, ?, ?, ?, ?, ?) ON CONFLICT (poller) DO NOTHING
                        """, arguments: [commit.poller, commit.cursor, commit.etag, commit.lastModified, commit.at.millis, commit.at.millis, commit.nextPollAt.millis])
                    guard db.changesCount > 0 else { return PollCommitOutcome(committed: false, stored: [], state: nil) }
                }
                let stored = try Self.insert(commit.events, db).map(\.0)
                let upsert = try db.cachedStatement(sql: """
                    INSERT INTO poller_items (poller, item_id, version, generation) VALUES (?, ?, ?, ?)
                    ON CONFLICT (poller, item_id) DO UPDATE SET version = excluded.version, generation = excluded.generation
                    """)
                for item in commit.seen {
                    try upsert.execute(arguments: [commit.poller, item.id, Int64(bitPattern: item.version), generation])
                }
                var count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM poller_items WHERE poller = ?", arguments: [commit.poller]) ?? 0
                if count > commit.maxSeen {
                    // The least recently new or changed go first.
                    try db.execute(sql: """
                        DELETE FROM poller_items WHERE rowid IN (SELECT rowid FROM poller_items WHERE poller = ? ORDER BY generation LIMIT ?)
                        """, arguments: [commit.poller, count - commit.maxSeen])
                    count = commit.maxSeen
                }
                try db.execute(sql: "UPDATE poller_state SET items_seen = ? WHERE poller = ?", arguments: [count, commit.poller])
                let state = try Row.fetchOne(db, sql: "SELECT * FROM poller_state WHERE poller = ?", arguments: [commit.poller]).map(Self.pollerState)
                return PollCommitOutcome(committed: true, stored: stored, state: state)
            }
        } catch {
            monitor.writeFailed(String(describing: error))
            throw StoreError.unavailable(String(describing: error), summary: StoreMonitor.writeFailedSummary)
        }
        try monitor.afterCommit()
        let created = zip(commit.events, outcome.stored).filter { !$0.1.duplicate }
        for (event, _) in created {
            var cached = event
            cached.automations = []
            recent.withLock { $0.add(StoredEvent(sequence: 0, event: cached)) }
        }
        if created.contains(where: { !$0.0.automations.isEmpty }) { wakeUps.signal() }
        checkpointIfDue()
        return outcome
    }

    public func recordPollFailure(_ poller: String, error: String, at: Date, nextPollAt: Date) async throws -> PollerState {
        try monitor.beforeWrite()
        return try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO poller_state (poller, generation, last_poll_at, last_error, failures, failing_since, next_poll_at) VALUES (?, 0, ?, ?, 1, ?, ?)
                ON CONFLICT (poller) DO UPDATE SET last_poll_at = excluded.last_poll_at, last_error = excluded.last_error, failures = poller_state.failures + 1,
                    failing_since = COALESCE(poller_state.failing_since, excluded.failing_since), next_poll_at = excluded.next_poll_at
                """, arguments: [poller, at.millis, String(error.prefix(2000)), at.millis, nextPollAt.millis])
            return try Row.fetchOne(db, sql: "SELECT * FROM poller_state WHERE poller = ?", arguments: [poller]).map(Self.pollerState)!
        }
    }

    public func setPollerFailing(_ poller: String, failing: Bool, notice: NewEvent?) async throws -> Bool {
        try monitor.beforeWrite()
        let (changed, stored) = try await pool.write { db -> (Bool, [IngestOutcome]) in
            try db.execute(sql: "UPDATE poller_state SET failing = ? WHERE poller = ? AND failing = ?", arguments: [failing, poller, !failing])
            guard db.changesCount > 0 else { return (false, []) }
            guard let notice else { return (true, []) }
            return (true, try Self.insert([notice], db).map(\.0))
        }
        if let notice, stored.first?.duplicate == false {
            var cached = notice
            cached.automations = []
            recent.withLock { $0.add(StoredEvent(sequence: 0, event: cached)) }
            if !notice.automations.isEmpty { wakeUps.signal() }
        }
        return changed
    }

    public func resetPoller(_ poller: String) async throws {
        try monitor.beforeWrite()
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM poller_items WHERE poller = ?", arguments: [poller])
            try db.execute(sql: """
                UPDATE poller_state SET generation = generation + 1, cursor = NULL, etag = NULL, last_modified = NULL, last_success_at = NULL,
                    next_poll_at = NULL, items_seen = 0
                WHERE poller = ?
                """, arguments: [poller])
        }
    }

    static func pollerState(_ row: Row) -> PollerState {
        func date(_ column: String) -> Date? { (row[column] as Int64?).map(Date.init(millis:)) }
        return PollerState(
            poller: row["poller"], generation: row["generation"], cursor: row["cursor"], etag: row["etag"], lastModified: row["last_modified"],
            lastPollAt: date("last_poll_at"), lastSuccessAt: date("last_success_at"), lastError: row["last_error"], failures: row["failures"],
            failingSince: date("failing_since"), failing: row["failing"], nextPollAt: date("next_poll_at"), itemsSeen: row["items_seen"]
        )
    }
}
