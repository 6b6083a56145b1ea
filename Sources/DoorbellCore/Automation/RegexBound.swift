import Foundation
import Synchronization

/// Keeps `regex` conditions from stalling ingest: patterns are compiled once, a subject is cut to
/// its first `maxSubject` characters, and matching stops when the event's `RegexBudget` is spent
/// (the match counts as no match). `Condition.decide` does not take either as a no: a value longer
/// than `maxSubject`, or a match the budget cut short, makes the condition unknown and the automation
/// does not run. `CatastrophicPattern` refuses the usual culprits at load.
public enum RegexBound {
    /// Characters of a value a regex looks at; a body field is hostile and may be megabytes long.
    public static let maxSubject = 4096
    /// How long all `regex` conditions of one event may run together before the rest count as no
    /// match: conditions run while the webhook waits, on a thread the server shares with every request.
    public static let timeLimit: Duration = .milliseconds(50)

    /// Compiled expressions by pattern: the same few patterns run for every event. Bounded, though
    /// patterns only ever come from the config.
    private static let cache = Mutex<[String: NSRegularExpression]>([:])

    static func compiled(_ pattern: String) -> NSRegularExpression? {
        if let expression = cache.withLock({ $0[pattern] }) { return expression }
        guard let expression = try? NSRegularExpression(pattern: pattern) else { return nil }
        cache.withLock { cache in
            if cache.count >= 256 { cache.removeAll() }
            cache[pattern] = expression
        }
        return expression
    }

    /// Whether `expression` matches anywhere in the first `maxSubject` characters of `text`, within
    /// `timeLimit` (ICU calls back periodically while it backtracks, so the match can be stopped).
    public static func matches(_ expression: NSRegularExpression, _ text: String, timeLimit: Duration = timeLimit) -> Bool {
        RegexBudget(timeLimit).matches(expression, text)
    }

    /// The first `maxSubject` characters, without counting the whole value first (`count` walks
    /// every character of a string that may be megabytes long).
    public static func subject(_ text: String) -> String {
        String(text.prefix(maxSubject))
    }
}

/// The time the `regex` conditions of one event may take together. Each match may use what is left;
/// once it is spent, further matches are not tried and count as no match. One per event evaluation,
/// used on one thread (not shared between tasks).
public final class RegexBudget {
    /// Nanoseconds left.
    private var remaining: UInt64

    public init(_ limit: Duration = RegexBound.timeLimit) {
        let (seconds, attoseconds) = limit.components
        remaining = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    /// Whether the budget is spent (a match was stopped by it).
    public var isSpent: Bool { remaining == 0 }

    /// Whether `expression` matches in the first `RegexBound.maxSubject` characters of `text`, in at
    /// most the time left; the time it took is taken off the budget.
    public func matches(_ expression: NSRegularExpression, _ text: String) -> Bool {
        guard remaining > 0 else { return false }
        let subject = RegexBound.subject(text)
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + remaining
        var found = false
        var stopped = false
        expression.enumerateMatches(in: subject, options: [.reportProgress], range: NSRange(subject.startIndex..., in: subject)) { result, _, stop in
            if result != nil {
                found = true
                stop.pointee = true
            } else if DispatchTime.now().uptimeNanoseconds > deadline {
                stopped = true
                stop.pointee = true
            }
        }
        let used = DispatchTime.now().uptimeNanoseconds - start
        remaining = stopped || used >= remaining ? 0 : remaining - used
        return found
    }
}
