import DoorbellCore
import Yams

/// `retention: { events: 30d, runs: 30d, attempts: 30d, dedupe_window: 7d }`; `forever` keeps a kind
/// of row for good. A dedupe window shorter than a day is refused: providers retry for days, and a
/// key forgotten too soon turns a retry into a second event.
enum RetentionReader {
    static func read(_ node: Node, _ reader: NodeReader) -> RetentionPolicy? {
        guard let keys = reader.mapping(node, at: "retention", allowed: ["events", "runs", "attempts", "dedupe_window"]) else { return nil }
        var policy = RetentionPolicy.default
        func age(_ key: String) -> Double?? {
            guard let node = keys[key], let text = reader.string(node, at: "retention.\(key)") else { return .none }
            if ["forever", "never"].contains(text.lowercased()) { return .some(nil) }
            guard let seconds = Units.parseDuration(text), seconds >= 3600 else {
                reader.error("retention.\(key)", "expected a duration of at least 1h such as 30d, or forever; found '\(reader.written(node))'", node)
                return .none
            }
            return .some(seconds)
        }
        if let events = age("events") { policy.events = events }
        if let runs = age("runs") { policy.runs = runs }
        if let attempts = age("attempts") { policy.attempts = attempts }
        if let node = keys["dedupe_window"], let text = reader.string(node, at: "retention.dedupe_window") {
            if let seconds = Units.parseDuration(text), seconds >= 86400 {
                policy.dedupeWindow = seconds
            } else {
                reader.error("retention.dedupe_window", "expected a duration of at least 1d such as 7d (providers retry for days), found '\(reader.written(node))'", node)
            }
        }
        return policy
    }
}
