import DoorbellCore
import Foundation

/// A body-text search (`q`) reads every body it looks at: over a million events that takes seconds,
/// longer than anyone waits for a page. So one page of a search looks at no more than
/// `searchWindow` events (or runs) matching the other filters, newest first; when it found fewer
/// matches than a page holds, `next` says where the next window starts. Paging on reaches every
/// match, a window at a time, and skips none. Lists without `q` are plain index walks and page as before.
public enum SearchWindow {
    /// About 0.1–0.2 s of body reading on a small machine (measured by `scripts/bench dashboard`).
    public static let size = 50_000
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

extension EventStore {
    /// A page of `events(matching:)` with its next cursor; a body search reads at most `window` bodies.
    public func eventPage(matching query: EventQuery, window: Int = SearchWindow.size) async throws -> EventPage {
        var query = query
        var floor: Int64?
        if query.bodyContains != nil {
            floor = try await searchFloor(matching: query, window: window)
            query.floorSequence = floor
        }
        let events = try await events(matching: query)
        if events.count == query.limit, let last = events.last { return EventPage(events: events, next: last.sequence, windowEnded: false) }
        // Fewer than a page: everything down to the floor was looked at; the next window starts below it.
        return EventPage(events: events, next: floor, windowEnded: floor != nil)
    }
}

extension RunStore {
    /// A page of `runs(matching:)` with its next cursor; a body search reads at most `window` bodies.
    public func runPage(matching query: RunQuery, window: Int = SearchWindow.size) async throws -> RunPage {
        var query = query
        var floor: RunCursor?
        if query.bodyContains != nil {
            floor = try await searchFloor(matching: query, window: window)
            query.floor = floor
        }
        let runs = try await runs(matching: query)
        if runs.count == query.limit, let last = runs.last { return RunPage(runs: runs, next: last.cursor, windowEnded: false) }
        return RunPage(runs: runs, next: floor, windowEnded: floor != nil)
    }
}
