import Foundation

/// An automation: `on` (source:type patterns) + optional `if` condition + ordered steps.
public struct Automation: Sendable, Equatable {
    public var id: String
    public var on: [EventPattern]
    public var condition: Condition?
    public var steps: [Step]
    /// The retry schedule for this automation's steps (a step may override it).
    public var retry: RetryPolicy
    /// Per-key ordering: runs with the same rendered key start in arrival order, `limit` at a time.
    public var concurrency: ConcurrencyRule?

    public init(id: String, on: [EventPattern], condition: Condition? = nil, steps: [Step], retry: RetryPolicy = .default, concurrency: ConcurrencyRule? = nil) {
        self.id = id
        self.on = on
        self.condition = condition
        self.steps = steps
        self.retry = retry
        self.concurrency = concurrency
    }

    /// Whether an event of `source` and `type` is one this automation listens to (the `if` is separate).
    public func listens(source: String, type: String) -> Bool {
        on.contains { $0.matches(source: source, type: type) }
    }
}

/// `source:type` with `*` wildcards in either part; a pattern without `:` matches the type from any source.
public struct EventPattern: Sendable, Equatable, CustomStringConvertible {
    public let source: String
    public let type: String
    public let description: String

    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        if let colon = trimmed.firstIndex(of: ":") {
            source = String(trimmed[..<colon])
            type = String(trimmed[trimmed.index(after: colon)...])
        } else {
            source = "*"
            type = trimmed
        }
        guard !source.isEmpty, !type.isEmpty else { return nil }
        description = trimmed
    }

    public func matches(source: String, type: String) -> Bool {
        Self.glob(self.source, source) && Self.glob(self.type, type)
    }

    /// `*` matches any run of characters (including dots), everything else literally.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false)
        if parts.count == 1 { return pattern == text }
        var rest = Substring(text)
        for (index, part) in parts.enumerated() {
            if index == 0 {
                guard rest.hasPrefix(part) else { return false }
                rest = rest.dropFirst(part.count)
            } else if index == parts.count - 1 {
                return part.isEmpty || (rest.hasSuffix(part) && rest.count >= part.count)
            } else if !part.isEmpty {
                guard let range = rest.range(of: part) else { return false }
                rest = rest[range.upperBound...]
            }
        }
        return true
    }
}

/// The wait before each attempt (so its length is the number of attempts), with ±jitter.
public struct RetryPolicy: Sendable, Equatable {
    public var schedule: [Double]
    public var jitter: Double

    public init(schedule: [Double], jitter: Double) {
        self.schedule = schedule
        self.jitter = jitter
    }

    /// Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h; ±20 %.
    public static let `default` = RetryPolicy(schedule: [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400], jitter: 0.2)

    /// Seconds to wait before attempt number `attempt` (0-based; attempt 0 is the first try), or nil
    /// when the attempts are used up. `retryAfter` (a server's `Retry-After`) wins when it is longer.
    public func delay(beforeAttempt attempt: Int, retryAfter: Double? = nil, random: Double = Double.random(in: -1...1)) -> Double? {
        guard attempt < schedule.count else { return nil }
        let base = schedule[attempt] * (1 + jitter * random)
        return max(base, retryAfter ?? 0)
    }
}

/// `concurrency: {key, limit}`.
public struct ConcurrencyRule: Sendable, Equatable {
    /// A template over the event, e.g. `{{body.data.object.customer}}`.
    public var key: String
    public var limit: Int

    public init(key: String, limit: Int = 1) {
        self.key = key
        self.limit = limit
    }
}

/// A run to create with an event: which automation, and its ordering key when it has one — or a
/// delivery to an endpoint (deliveries are runs of the same queue, with one step: the HTTP post).
public struct PlannedRun: Sendable, Equatable {
    public var automation: String
    public var concurrencyKey: String?
    public var concurrencyLimit: Int
    /// Set for a delivery: the endpoint it goes to.
    public var endpoint: String?
    /// A delivery to a disabled endpoint waits, paused, until the endpoint is enabled.
    public var paused: Bool

    public init(automation: String, concurrencyKey: String? = nil, concurrencyLimit: Int = 1) {
        self.automation = automation
        self.concurrencyKey = concurrencyKey
        self.concurrencyLimit = concurrencyLimit
        self.endpoint = nil
        self.paused = false
    }

    /// A delivery of the event to `endpoint`. Its queue name keeps one delivery per (event, endpoint).
    public static func delivery(to endpoint: String, paused: Bool = false) -> PlannedRun {
        var run = PlannedRun(automation: deliveryPrefix + endpoint)
        run.endpoint = endpoint
        run.paused = paused
        return run
    }

    public static let deliveryPrefix = "endpoint:"
}
