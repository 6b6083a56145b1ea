import Foundation

/// Per-endpoint health as a value: after `threshold` consecutive failures the circuit opens and
/// deliveries wait instead of hammering a dead receiver; when the cooldown has passed one probe goes
/// through (half-open); its success closes the circuit, its failure reopens it with a doubled cooldown.
///
/// Every state takes every verdict (`record(_:now:)` is total), and a probe whose verdict never
/// arrives is given up after `probeLimit`: no outcome of a probe can leave the circuit half-open for good.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case closed(failures: Int)
        case open(until: Date, cooldown: Double)
        /// One probe is in flight since `since`; everything else waits for its answer.
        case halfOpen(cooldown: Double, since: Date)
    }

    /// How one delivery that `permit` let through ended, as far as the circuit is concerned.
    public enum Verdict: Sendable, Equatable, CaseIterable {
        /// The receiver answered 2xx.
        case success
        /// The receiver failed: a non-2xx status, a timeout, a refused connection.
        case failure
        /// The receiver answered 410 Gone: the endpoint is disabled; a later enable starts afresh.
        case gone
        /// The delivery was dead before anything was sent (its event or endpoint is missing).
        case buried
        /// Storage failed before anything was sent; the delivery is claimed again later.
        case storageError
        /// Nothing was sent because the rate limit held the delivery back.
        case handedBack
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
    /// A probe without a verdict after this many seconds is presumed lost (its task ended without
    /// reporting), and the next delivery probes instead. Longer than any one attempt may take.
    public let probeLimit: Double

    public init(threshold: Int = 5, cooldown: Double = 30, maxCooldown: Double = 600, probeLimit: Double = 120, state: State = .closed(failures: 0)) {
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self.maxCooldown = max(cooldown, maxCooldown)
        self.probeLimit = probeLimit
        self.state = state
    }

    /// Whether a delivery may be attempted now. An `.allow` from an open circuit makes that delivery
    /// the probe: its verdict must be recorded (any verdict, see `Verdict`).
    public mutating func permit(now: Date) -> Permission {
        switch state {
        case .closed: return .allow
        case .open(let until, let cooldown):
            guard now >= until else { return .wait(until: until) }
            state = .halfOpen(cooldown: cooldown, since: now)
            return .allow
        case .halfOpen(let cooldown, let since):
            let lost = since.addingTimeInterval(probeLimit)
            guard now >= lost else {
                // The probe's answer decides; check again shortly.
                return .wait(until: min(lost, now.addingTimeInterval(1)))
            }
            state = .halfOpen(cooldown: cooldown, since: now)
            return .allow
        }
    }

    /// Moves the circuit on after a delivery's verdict. Total: every state × every verdict.
    public mutating func record(_ verdict: Verdict, now: Date) {
        switch (state, verdict) {
        // The receiver answered: 2xx or 410 both prove it alive (410 disables the endpoint instead).
        case (_, .success), (_, .gone):
            state = .closed(failures: 0)
        case (.closed(let failures), .failure):
            state = failures + 1 >= threshold ? .open(until: now.addingTimeInterval(cooldown), cooldown: cooldown) : .closed(failures: failures + 1)
        case (.open, .failure):
            // A delivery that started before the circuit opened: the pause already stands.
            break
        case (.halfOpen(let previous, _), .failure):
            let next = min(maxCooldown, previous * 2)
            state = .open(until: now.addingTimeInterval(next), cooldown: next)
        // Nothing reached the receiver: nothing learned about its health.
        case (.closed, .buried), (.closed, .storageError), (.closed, .handedBack),
             (.open, .buried), (.open, .storageError), (.open, .handedBack):
            break
        case (.halfOpen(let cooldown, _), .buried), (.halfOpen(let cooldown, _), .storageError), (.halfOpen(let cooldown, _), .handedBack):
            // The probe slot is given back: the next delivery probes, without a longer pause.
            state = .open(until: now, cooldown: cooldown)
        }
    }

    /// `record(.success, …)`.
    public mutating func recordSuccess() {
        state = .closed(failures: 0)
    }

    /// `record(.failure, now:)`.
    public mutating func recordFailure(now: Date) {
        record(.failure, now: now)
    }

    /// `record(.handedBack, now:)`: the probe that was allowed did not go out.
    public mutating func cancelProbe(now: Date) {
        record(.handedBack, now: now)
    }

    public var isOpen: Bool {
        if case .closed = state { return false }
        return true
    }
}
