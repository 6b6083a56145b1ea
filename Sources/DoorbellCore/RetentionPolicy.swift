/// `retention:` — how long stored history is kept. Each age is in seconds; nil keeps that kind of
/// row forever. Only finished work is pruned: an event stays while any of its runs or deliveries is
/// pending, running, waiting for a retry or paused (dead counts as finished).
public struct RetentionPolicy: Sendable, Equatable {
    /// Events older than this go, with their runs, step outputs and attempts.
    public var events: Double?
    /// Finished runs and deliveries last updated longer ago than this go (their event may stay).
    public var runs: Double?
    /// Attempts of finished deliveries older than this go.
    public var attempts: Double?
    /// A provider's event id keeps deduplicating at least this long, even when its event went sooner:
    /// longer than providers retry (Stripe retries for 3 days, Shopify 48 h, GitHub not at all).
    public var dedupeWindow: Double

    public init(events: Double? = 30 * 86400, runs: Double? = 30 * 86400, attempts: Double? = 30 * 86400, dedupeWindow: Double = 7 * 86400) {
        self.events = events
        self.runs = runs
        self.attempts = attempts
        self.dedupeWindow = dedupeWindow
    }

    /// 30 days of events, runs and attempts; dedupe keys for 7 days.
    public static let `default` = RetentionPolicy()
}
