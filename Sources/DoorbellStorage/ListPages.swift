import DoorbellCore
import Foundation

/// A body-text search (`q`) reads every body it looks at: over a million events that takes seconds,
/// longer than anyone waits for a page. So one page of a search looks at no more than
/// `SearchWindow.size` events (or runs) below its cursor, newest first (see `eventPage` for which
/// filters the window counts); when it found fewer
/// matches than a page holds, `next` says where the next window starts. Paging on reaches every
/// match, a window at a time, and skips none. Lists without `q` are plain index walks and page as before.
public enum SearchWindow {
    /// About 0.1–0.2 s of body reading on a small machine (measured by `scripts/bench dashboard`).
    public static let size = 50_000
}

/// Where an event stands in arrival order.
public struct EventPosition: Sendable, Equatable {
    public var sequence: Int64
    public var receivedAt: Date

    public init(sequence: Int64, receivedAt: Date) {
        self.sequence = sequence
        self.receivedAt = receivedAt
    }
}

/// One page of events, newest first.
public struct EventPage: Sendable {
    public var events: [StoredEvent]
    /// The cursor (`beforeSequence`) of the next page; nil on the last.
    public var next: Int64?
    /// A search stopped at the end of its window before the page was full: older events were not
    /// looked at yet, and `next` continues there.
    public var windowEnded: Bool
}

/// One page of runs or deliveries, newest first.
public struct RunPage: Sendable {
    public var runs: [RunRecord]
    /// The cursor (`after`) of the next page; nil on the last.
    public var next: RunCursor?
    /// As `EventPage.windowEnded`.
    public var windowEnded: Bool
}

/// Where a search window stopped: the floor's cursor, and whether the window reached back past
/// `since` (then nothing older can match and the search ends).
struct WindowFloor<Cursor> {
    /// Clocks of several nodes (or one stepped back) may disagree this much.
    static var clockAllowance: TimeInterval { 60 }

    let cursor: Cursor
    let pastSince: Bool

    init(_ cursor: Cursor, at time: Date, since: Date?) {
        self.cursor = cursor
        self.pastSince = since.map { time < $0.addingTimeInterval(-Self.clockAllowance) } ?? false
    }

    /// The next page's cursor for a page of `count` rows ending at `last`: after a full page, its last
    /// row; after a short one, everything down to the floor was looked at, so the next window starts
    /// below it — unless there is no floor (nothing older) or the window passed `since`.
    static func next(count: Int, limit: Int, last: Cursor?, floor: WindowFloor?) -> (next: Cursor?, windowEnded: Bool) {
        if count == limit, let last { return (last, false) }
        guard let floor, !floor.pastSince else { return (nil, false) }
        return (floor.cursor, true)
    }
}

extension EventStore {
    /// A page of `events(matching:)` with its next cursor; a body search reads at most `window` bodies.
    ///
    /// The window counts events of the query's source and type below the cursor, ignoring the
    /// status and time filters: those have no index that gives arrival order, so counting with them
    /// could itself read every event. Any floor below the cursor keeps paging exact (a page covers
    /// [floor, cursor), the next one starts below the floor); the cheap one just bounds the cost.
    /// Events are stored in arrival order, so once the window reaches back past `since` (with
    /// `WindowFloor.clockAllowance`), nothing older can match and the search ends.
    public func eventPage(matching query: EventQuery, window: Int = SearchWindow.size) async throws -> EventPage {
        var query = query
        var floor: WindowFloor<Int64>?
        if query.bodyContains != nil {
            let counted = EventQuery(source: query.source, type: query.type, beforeSequence: query.beforeSequence)
            if let position = try await searchFloor(matching: counted, window: window) {
                floor = WindowFloor(position.sequence, at: position.receivedAt, since: query.since)
                query.floorSequence = position.sequence
            }
        }
        let events = try await events(matching: query)
        let (next, windowEnded) = WindowFloor.next(count: events.count, limit: query.limit, last: events.last?.sequence, floor: floor)
        return EventPage(events: events, next: next, windowEnded: windowEnded)
    }
}

extension RunStore {
    /// A page of `runs(matching:)` with its next cursor; a body search reads at most `window` bodies.
    /// As `eventPage`: the window counts runs (or deliveries) below the cursor, whatever the other
    /// filters; a run is created after its event arrives, so a window reaching back past `since`
    /// ends the search.
    public func runPage(matching query: RunQuery, window: Int = SearchWindow.size) async throws -> RunPage {
        var query = query
        var floor: WindowFloor<RunCursor>?
        if query.bodyContains != nil {
            var counted = RunQuery(deliveries: query.deliveries)
            counted.after = query.after
            if let position = try await searchFloor(matching: counted, window: window) {
                floor = WindowFloor(position, at: Date(millis: position.createdAtMillis), since: query.since)
                query.floor = position
            }
        }
        let runs = try await runs(matching: query)
        let (next, windowEnded) = WindowFloor.next(count: runs.count, limit: query.limit, last: runs.last?.cursor, floor: floor)
        return RunPage(runs: runs, next: next, windowEnded: windowEnded)
    }
}
