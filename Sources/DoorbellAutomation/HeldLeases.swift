import DoorbellStorage
import Foundation

/// The claims a worker has in flight and until when each lease lasts by the worker's own clock.
/// A value: the worker keeps it behind a lock and asks it, before every step, whether it still
/// holds the run. A lease is gone when the store says so (a transition answered `.leaseLost`, a
/// renewal left the run out) — then nothing more is written for the run — or when its time ran
/// out locally (renewals kept failing, so another worker may already have claimed the run) — then
/// no further step starts, and only a write the store's fence accepts can extend it again.
struct HeldLeases: Sendable {
    private struct Held: Sendable {
        var lease: Lease
        var until: Date
        var lost = false
    }

    private var held: [String: Held] = [:]

    /// Run ids in flight, held or not: the claim query must not hand any of them out again.
    var inFlight: Set<String> { Set(held.keys) }

    mutating func claimed(_ runID: String, lease: Lease, until: Date) {
        held[runID] = Held(lease: lease, until: until)
    }

    /// The run finished here (or was abandoned): it may be claimed again.
    mutating func released(_ runID: String) {
        held[runID] = nil
    }

    /// Whether the worker may still run a step of, or write for, this run.
    func holds(_ runID: String, now: Date) -> Bool {
        guard let entry = held[runID] else { return false }
        return !entry.lost && entry.until > now
    }

    mutating func lost(_ runID: String) {
        held[runID]?.lost = true
    }

    /// Whether the store has said the lease is gone (a lapse by the local clock alone is not that).
    func isLost(_ runID: String) -> Bool {
        held[runID]?.lost ?? true
    }

    /// A transition the store applied under `lease` also extended it to `until`.
    mutating func extended(_ runID: String, lease: Lease, until: Date) {
        guard let entry = held[runID], entry.lease == lease, !entry.lost else { return }
        held[runID]?.until = max(entry.until, until)
    }

    /// The leases worth renewing at `now`: those still held. One that lapsed locally is not renewed
    /// even if the store would allow it — the worker has already given it up.
    func renewable(now: Date) -> [String: Lease] {
        var leases: [String: Lease] = [:]
        for (runID, entry) in held where !entry.lost && entry.until > now { leases[runID] = entry.lease }
        return leases
    }

    /// A renewal of `asked`, sent at a time that makes the new lease last `until`, answered with the
    /// ids the store extended; the others are lost.
    mutating func renewed(_ asked: [String: Lease], extended: Set<String>, until: Date) {
        for (runID, lease) in asked where held[runID]?.lease == lease {
            if extended.contains(runID) {
                held[runID]?.until = until
            } else {
                held[runID]?.lost = true
            }
        }
    }
}
