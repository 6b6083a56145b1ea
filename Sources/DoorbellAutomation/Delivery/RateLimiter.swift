import DoorbellCore
import Foundation
import Synchronization

/// Per-endpoint pacing: a sliding log of send times (at most `count` in any `window`), plus a
/// "slow down until" set by 429/502/504 or `Retry-After`. After a restart the log is seeded from the
/// stored attempts, so a restart does not reset the limit.
final class RateLimiter: Sendable {
    private struct Pace {
        var sent: [Date] = []
        var slowUntil: Date?
        var seeded = false
    }

    private let paces = Mutex<[String: Pace]>([:])

    func needsSeed(_ endpoint: String) -> Bool {
        paces.withLock { !($0[endpoint]?.seeded ?? false) }
    }

    func seed(_ endpoint: String, times: [Date]) {
        paces.withLock { paces in
            var pace = paces[endpoint] ?? Pace()
            if !pace.seeded {
                pace.sent = (pace.sent + times).sorted()
                pace.seeded = true
            }
            paces[endpoint] = pace
        }
    }

    /// nil: send now (the send is recorded); otherwise the earliest time worth trying again.
    func acquire(_ endpoint: String, limit: RateLimit?, now: Date) -> Date? {
        paces.withLock { paces in
            var pace = paces[endpoint] ?? Pace()
            defer { paces[endpoint] = pace }
            if let until = pace.slowUntil {
                if until > now { return until }
                pace.slowUntil = nil
            }
            guard let limit else { return nil }
            let windowStart = now.addingTimeInterval(-limit.window)
            pace.sent.removeAll { $0 <= windowStart }
            // Spread the waiting deliveries over the next window instead of waking them all at once.
            if let free = limit.nextFree(after: pace.sent) { return free }
            pace.sent.append(now)
            return nil
        }
    }

    /// The receiver asked for a pause (429, 502, 504, `Retry-After`).
    func slowDown(_ endpoint: String, until: Date) {
        paces.withLock { paces in
            var pace = paces[endpoint] ?? Pace()
            pace.slowUntil = max(pace.slowUntil ?? until, until)
            paces[endpoint] = pace
        }
    }
}
