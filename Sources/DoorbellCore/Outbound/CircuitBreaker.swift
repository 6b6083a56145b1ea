import Foundation

/// Per-endpoint health as a value: after `threshold` consecutive failures the circuit opens and
/// deliveries wait instead of hammering a dead receiver; when the cooldown has passed one probe goes
/// through (half-open); its success closes the circuit, its failure reopens it with a doubled cooldown.
///
/// Every state takes every verdict (`record(_:of:now:)` is total), and a probe whose verdict never
/// arrives is given up after `probeLimit`: no outcome of a probe can leave the circuit half-open for good.
/// Each verdict comes with the `Permit` its delivery was let through with, so while a probe is out
/// only that probe's verdict decides: a straggler (let through while the circuit was closed, or an
/// earlier probe given up as lost) can close the circuit with a success, and otherwise changes nothing.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case closed(failures: Int)
        case open(until: Date, cooldown: Double)
        /// Probe number `probe` is in flight since `since`; everything else waits for its answer.
        case halfOpen(cooldown: Double, since: Date, probe: UInt64)
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

    /// What `permit` hands a delivery it lets through, given back with its verdict.
    public struct Permit: Sendable, Equatable {
        /// The probe this delivery is, or nil for a delivery through a closed circuit.
        public let probe: UInt64?

        public init(probe: UInt64?) {
            self.probe = probe
        }
    }

    public enum Permission: Sendable, Equatable {
        case allow(Permit)
        /// Wait until this time and ask again.
        case wait(until: Date)
    }

    public private(set) var state: State = .closed(failures: 0)
    /// The number of the last probe let through: each probe gets a new one.
    public private(set) var probes: UInt64
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
        if case .halfOpen(_, _, let probe) = state { probes = probe } else { probes = 0 }
    }

    /// Whether a delivery may be attempted now. An `.allow` from an open circuit makes that delivery
    /// the probe: its verdict must be recorded with its permit (any verdict, see `Verdict`).
    public mutating func permit(now: Date) -> Permission {
        switch state {
        case .closed: return .allow(Permit(probe: nil))
        case .open(let until, let cooldown):
            guard now >= until else { return .wait(until: until) }
            return probe(cooldown: cooldown, now: now)
        case .halfOpen(let cooldown, let since, _):
            let lost = since.addingTimeInterval(probeLimit)
            guard now >= lost else {
                // The probe's answer decides; check again shortly.
                return .wait(until: min(lost, now.addingTimeInterval(1)))
            }
            return probe(cooldown: cooldown, now: now)
        }
    }

    private mutating func probe(cooldown: Double, now: Date) -> Permission {
        probes &+= 1
        state = .halfOpen(cooldown: cooldown, since: now, probe: probes)
        return .allow(Permit(probe: probes))
    }

    /// Moves the circuit on after the verdict of a delivery let through with `permit`. Total: every
    /// state × every verdict × the probe's permit or another.
    public mutating func record(_ verdict: Verdict, of permit: Permit, now: Date) {
        if case .halfOpen(_, _, let probe) = state, permit.probe != probe {
            // Not the probe's verdict: a success still proves the receiver alive; anything else
            // waits for the probe, which alone may reopen the circuit or give its slot back.
            if verdict == .success { state = .closed(failures: 0) }
            return
        }
        switch (state, verdict) {
        // The receiver answered: 2xx or 410 both prove it alive (410 disables the endpoint instead).
        case (_, .success), (_, .gone):
            state = .closed(failures: 0)
        case (.closed(let failures), .failure):
            state = failures + 1 >= threshold ? .open(until: now.addingTimeInterval(cooldown), cooldown: cooldown) : .closed(failures: failures + 1)
        case (.open, .failure):
            // A delivery that started before the circuit opened: the pause already stands.
            break
        case (.halfOpen(let previous, _, _), .failure):
            let next = min(maxCooldown, previous * 2)
            state = .open(until: now.addingTimeInterval(next), cooldown: next)
        // Nothing reached the receiver: nothing learned about its health.
        case (.closed, .buried), (.closed, .storageError), (.closed, .handedBack),
             (.open, .buried), (.open, .storageError), (.open, .handedBack):
            break
        case (.halfOpen(let cooldown, _, _), .buried), (.halfOpen(let cooldown, _, _), .storageError), (.halfOpen(let cooldown, _, _), .handedBack):
            // The probe slot is given back: the next delivery probes, without a longer pause.
            state = .open(until: now, cooldown: cooldown)
        }
    }

    public var isOpen: Bool {
        if case .closed = state { return false }
        return true
    }
}
