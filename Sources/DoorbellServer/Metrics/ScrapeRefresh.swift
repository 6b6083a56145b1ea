import Foundation
import Synchronization

/// The store reads behind `/metrics` (queue depth, oldest due, database size), done at most once
/// per `interval` and never twice at once: `/metrics` needs no token, and each read counts the runs
/// table, so a scraper (or anyone) calling it in a loop or in parallel must not turn into one table
/// scan per request. Concurrent scrapes wait for the one refresh under way; later ones within the
/// interval get the values it set.
final class ScrapeRefresh: Sendable {
    let interval: TimeInterval
    let now: @Sendable () -> Date
    private let state = Mutex<(last: Date?, running: Task<Void, Never>?)>((nil, nil))

    init(interval: TimeInterval = 10, now: @escaping @Sendable () -> Date) {
        self.interval = interval
        self.now = now
    }

    /// Runs `refresh` unless one ran less than `interval` ago; waits for one already running.
    func refreshIfStale(_ refresh: @escaping @Sendable () async -> Void) async {
        let time = now()
        let task: Task<Void, Never>? = state.withLock { state in
            if let running = state.running { return running }
            if let last = state.last, time.timeIntervalSince(last) < interval, time >= last { return nil }
            let started = Task { await refresh() }
            state = (time, started)
            return started
        }
        guard let task else { return }
        await task.value
        state.withLock { state in
            if state.running == task { state.running = nil }
        }
    }
}
