import DoorbellCore
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Pollers' state in PostgreSQL, shared by every node: the node holding a poller's lease polls, and
/// whichever node takes the lease over next finds the same cursor and remembered items.
extension PostgresStore: PollerStore {
    public func pollerState(_ poller: String) async throws -> PollerState? {
        try await rows("SELECT * FROM poller_state WHERE poller = \(poller)").first.map(Self.pollerState)
    }

    public func pollerStates() async throws -> [PollerState] {
        try await rows("SELECT * FROM poller_state ORDER BY poller").map(Self.pollerState)
    }

    public func seenItems(_ poller: String) async throws -> [SeenItem] {
        try await guarded(deadline: .seconds(30)) {
            var items: [SeenItem] = []
            for try await (id, version) in try await self.client.query("SELECT item_id, version FROM poller_items WHERE poller = \(poller)", logger: self.logger).decode((String, Int64).self) {
                items.append(SeenItem(id: id, version: UInt64(bitPattern: version)))
            }
            return items
        }
    }

    public func commitPoll(_ commit: PollCommit) async throws -> PollCommitOutcome {
        let logger = logger
        let outcome: PollCommitOutcome = try await guarded(deadline: .seconds(30)) {
            try await self.client.withTransaction(logger: logger) { connection in
                let generation = commit.expectedGeneration + 1
                // Taking the row lock first (or creating the row) fences the commit: a poll or a
                // reset committed meanwhile leaves the generation elsewhere, and nothing is written.
                var updated = false
                for try await _ in try await connection.query("""
                    UPDATE poller_state SET generation = \(generation), cursor = COALESCE(\(commit.cursor?.postgresText), cursor), etag = COALESCE(\(commit.etag?.postgresText), etag),
                        last_modified = COALESCE(\(commit.lastModified?.postgresText), last_modified), last_poll_at = \(commit.at.millis), last_success_at = \(commit.at.millis),
                        last_error = NULL, failures = 0, failing_since = NULL, next_poll_at = \(commit.nextPollAt.millis)
                    WHERE poller = \(commit.poller) AND generation = \(commit.expectedGeneration)
                    RETURNING poller
                    """, logger: logger) { updated = true }
                if !updated {
                    guard commit.expectedGeneration == 0 else { return PollCommitOutcome(committed: false, stored: [], state: nil) }
                    var inserted = false
                    for try await _ in try await connection.query("""
                        INSERT INTO poller_state (poller, generation, cursor, etag, last_modified, last_poll_at, last_success_at, next_poll_at)
                        VALUES (\(commit.poller), 1, \(commit.cursor?.postgresText), \(commit.etag?.postgresText), \(commit.lastModified?.postgresText), \(commit.at.millis), \(commit.at.millis), \(commit.nextPollAt.millis))
                        ON CONFLICT (poller) DO NOTHING RETURNING poller
                        """, logger: logger) { inserted = true }
                    guard inserted else { return PollCommitOutcome(committed: false, stored: [], state: nil) }
                }
                let stored = try await Self.insert(commit.events, connection, savepoints: false, logger: logger).map { try $0.get() }
                if !commit.seen.isEmpty {
                    // Within one statement an id may appear once: the last version wins.
                    var latest: [String: UInt64] = [:]
                    for item in commit.seen { latest[item.id] = item.version }
                    try await connection.drain("""
                        INSERT INTO poller_items (poller, item_id, version, generation)
                        SELECT \(commit.poller), t.id, t.version, \(generation) FROM unnest(\(Array(latest.keys).map(\.postgresText)), \(latest.values.map { Int64(bitPattern: $0) })) AS t(id, version)
                        ON CONFLICT (poller, item_id) DO UPDATE SET version = excluded.version, generation = excluded.generation
                        """, logger: logger)
                }
                var count = 0
                for try await n in try await connection.query("SELECT COUNT(*) FROM poller_items WHERE poller = \(commit.poller)", logger: logger).decode(Int.self) { count = n }
                if count > commit.maxSeen {
                    try await connection.drain("""
                        DELETE FROM poller_items WHERE poller = \(commit.poller) AND item_id IN
                            (SELECT item_id FROM poller_items WHERE poller = \(commit.poller) ORDER BY generation LIMIT \(Int64(count - commit.maxSeen)))
                        """, logger: logger)
                    count = commit.maxSeen
                }
                try await connection.drain("UPDATE poller_state SET items_seen = \(Int64(count)) WHERE poller = \(commit.poller)", logger: logger)
                var state: PollerState?
                for try await row in try await connection.query("SELECT * FROM poller_state WHERE poller = \(commit.poller)", logger: logger) {
                    state = try Self.pollerState(row.makeRandomAccess())
                }
                return PollCommitOutcome(committed: true, stored: stored, state: state)
            }
        }
        let created = zip(commit.events, outcome.stored).filter { !$0.1.duplicate }
        for (event, _) in created {
            var cached = event
            cached.automations = []
            recent.withLock { $0.add(StoredEvent(sequence: 0, event: cached)) }
        }
        if created.contains(where: { !$0.0.automations.isEmpty }) { wakeUps.signal() }
        return outcome
    }

    public func recordPollFailure(_ poller: String, error: String, at: Date, nextPollAt: Date) async throws -> PollerState {
        let text = String(error.prefix(2000)).postgresText
        let rows = try await rows("""
            INSERT INTO poller_state (poller, generation, last_poll_at, last_error, failures, failing_since, next_poll_at)
            VALUES (\(poller), 0, \(at.millis), \(text), 1, \(at.millis), \(nextPollAt.millis))
            ON CONFLICT (poller) DO UPDATE SET last_poll_at = excluded.last_poll_at, last_error = excluded.last_error, failures = poller_state.failures + 1,
                failing_since = COALESCE(poller_state.failing_since, excluded.failing_since), next_poll_at = excluded.next_poll_at
            RETURNING *
            """)
        guard let row = rows.first else { throw StoreError.unavailable("recording a poll failure returned no row") }
        return try Self.pollerState(row)
    }

    public func setPollerFailing(_ poller: String, failing: Bool, notice: NewEvent?) async throws -> Bool {
        let logger = logger
        let (changed, stored): (Bool, [IngestOutcome]) = try await guarded(deadline: .seconds(30)) {
            try await self.client.withTransaction(logger: logger) { connection in
                var changed = false
                for try await _ in try await connection.query(
                    "UPDATE poller_state SET failing = \(failing) WHERE poller = \(poller) AND failing = \(!failing) RETURNING poller", logger: logger
                ) { changed = true }
                guard changed, let notice else { return (changed, []) }
                return (true, try await Self.insert([notice], connection, savepoints: false, logger: logger).map { try $0.get() })
            }
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
        let logger = logger
        try await transaction { connection in
            try await connection.drain("DELETE FROM poller_items WHERE poller = \(poller)", logger: logger)
            try await connection.drain("""
                UPDATE poller_state SET generation = generation + 1, cursor = NULL, etag = NULL, last_modified = NULL, last_success_at = NULL,
                    next_poll_at = NULL, items_seen = 0
                WHERE poller = \(poller)
                """, logger: logger)
        }
    }

    static func pollerState(_ row: PostgresRandomAccessRow) throws -> PollerState {
        func date(_ column: String) throws -> Date? { try row[column].decode(Int64?.self).map(Date.init(millis:)) }
        return PollerState(
            poller: try row["poller"].decode(String.self), generation: try row["generation"].decode(Int64.self), cursor: try row["cursor"].decode(String?.self),
            etag: try row["etag"].decode(String?.self), lastModified: try row["last_modified"].decode(String?.self), lastPollAt: try date("last_poll_at"),
            lastSuccessAt: try date("last_success_at"), lastError: try row["last_error"].decode(String?.self), failures: try row["failures"].decode(Int.self),
            failingSince: try date("failing_since"), failing: try row["failing"].decode(Bool.self), nextPollAt: try date("next_poll_at"),
            itemsSeen: try row["items_seen"].decode(Int.self)
        )
    }
}
