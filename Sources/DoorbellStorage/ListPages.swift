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

/// Clocks of several nodes (or one stepped back) may disagree this much: a window that reached
/// back past `since` by more than this ends the search.
let clockAllowance: TimeInterval = 60

extension EventStore {
    /// A page of `events(matching:)` with its next cursor; a body search reads at most `window` bodies.
    ///
    /// The window counts events of the query's source and type below the cursor, ignoring the
    /// status and time filters: those have no index that gives arrival order, so counting with them
    /// could itself read every event. Any floor below the cursor keeps paging exact (a page covers
    /// [floor, cursor), the next one starts below the floor); the cheap one just bounds the cost.
    /// Events are stored in arrival order, so once the window reaches back past `since` (with
    /// `clockAllowance`), nothing older can match and the search ends.
    public func eventPage(matching query: EventQuery, window: Int = SearchWindow.size) async throws -> EventPage {
        var query = query
        var floor: Int64?
        var exhausted = false
        if query.bodyContains != nil {
            let counted = EventQuery(source: query.source, type: query.type, beforeSequence: query.beforeSequence)
            if let position = try await searchFloor(matching: counted, window: window) {
                floor = position.sequence
                query.floorSequence = position.sequence
                if let since = query.since, position.receivedAt < since.addingTimeInterval(-clockAllowance) { exhausted = true }
            }
        }
        let events = try await events(matching: query)
        if events.count == query.limit, let last = events.last { return EventPage(events: events, next: last.sequence, windowEnded: false) }
        // Fewer than a page: everything down to the floor was looked at; the next window starts below it.
        guard let floor, !exhausted else { return EventPage(events: events, next: nil, windowEnded: false) }
        return EventPage(events: events, next: floor, windowEnded: true)
    }
}

extension RunStore {
    /// A page of `runs(matching:)` with its next cursor; a body search reads at most `window` bodies.
    /// As `eventPage`: the window counts runs (or deliveries) below the cursor, whatever the other
    /// filters; a run is created after its event arrives, so a window reaching back past `since`
    /// ends the search.
    public func runPage(matching query: RunQuery, window: Int = SearchWindow.size) async throws -> RunPage {
        var query = query
        var floor: RunCursor?
        var exhausted = false
        if query.bodyContains != nil {
            var counted = RunQuery(deliveries: query.deliveries)
            counted.after = query.after
            if let position = try await searchFloor(matching: counted, window: window) {
                floor = position
                query.floor = position
                if let since = query.since, Date(millis: position.createdAtMillis) < since.addingTimeInterval(-clockAllowance) { exhausted = true }
            }
        }
        let runs = try await runs(matching: query)
        if runs.count == query.limit, let last = runs.last { return RunPage(runs: runs, next: last.cursor, windowEnded: false) }
        guard let floor, !exhausted else { return RunPage(runs: runs, next: nil, windowEnded: false) }
        return RunPage(runs: runs, next: floor, windowEnded: true)
    }
}
