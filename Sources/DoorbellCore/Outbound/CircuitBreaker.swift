import Foundation

/// Per-endpoint health as a value: after `threshold` consecutive failures the circuit opens and
/// deliveries wait instead of hammering a dead receiver; when the cooldown has passed one probe goes
/// through (half-open); its success closes the circuit, its failure reopens it with a doubled cooldown.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case closed(failures: Int)
        case open(until: Date, cooldown: Double)
        /// One probe is in flight; everything else waits for its answer.
        case halfOpen(cooldown: Double)
    }

    public enum Permission: Sendable, Equatable {
        case allow
        /// Wait until this time and ask again.
        case wait(until: Date)
    }

    public private(set) var state: State = .closed(failures: 0)
    public let threshold: Int
    public let cooldown: Double
    public let maxCooldown: Double

    public init(threshold: Int = 5, cooldown: Double = 30, maxCooldown: Double = 600) {
        self.threshold = threshold
        self.cooldown = cooldown
        self.maxCooldown = maxCooldown
    }

    /// Whether a delivery may be attempted now.
    public mutating func permit(now: Date) -> Permission {
        switch state {
        case .closed: return .allow
        case .open(let until, let cooldown):
            guard now >= until else { return .wait(until: until) }
            state = .halfOpen(cooldown: cooldown)
            return .allow
        case .halfOpen:
            // The probe's answer decides; check again shortly.
            return .wait(until: now.addingTimeInterval(1))
        }
    }

    public mutating func recordSuccess() {
        state = .closed(failures: 0)
    }

    public mutating func recordFailure(now: Date) {
        switch state {
        case .closed(let failures):
            if failures + 1 >= threshold {
                state = .open(until: now.addingTimeInterval(cooldown), cooldown: cooldown)
            } else {
                state = .closed(failures: failures + 1)
            }
        case .halfOpen(let previous):
            let next = min(maxCooldown, previous * 2)
            state = .open(until: now.addingTimeInterval(next), cooldown: next)
        case .open:
            break
        }
    }

    /// The probe that was allowed did not go out (e.g. the rate limit held it back): the next
    /// delivery may probe instead, without a longer pause.
    public mutating func cancelProbe(now: Date) {
        if case .halfOpen(let cooldown) = state { state = .open(until: now, cooldown: cooldown) }
    }

    public var isOpen: Bool {
        if case .closed = state { return false }
        return true
    }
}
