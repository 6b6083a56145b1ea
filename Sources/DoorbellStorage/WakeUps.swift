import Synchronization

/// What a wake-up says became due; a subscriber acts on all it received since it last looked.
public struct WakeUp: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// Runs or deliveries may be claimable now (or sooner than the subscriber's timer says).
    public static let runsDue = WakeUp(rawValue: 1)
    /// Endpoints changed in the store: read them again before claiming, so a delivery woken by an
    /// endpoint being enabled is not judged by the endpoint's old state.
    public static let endpointsChanged = WakeUp(rawValue: 2)
}

/// The store's wake-up channel: the store signals it when work may have become due — an event
/// stored with runs, runs planned, replayed or started, a queue write that schedules a retry or puts
/// a delivery back, an endpoint enabled — and every subscriber (the worker) looks at the queue now
/// instead of at its next timer. In-process for SQLite; a PostgreSQL store signals the same channel
/// from `LISTEN` on its own connection, so writes by other nodes wake this one too.
public final class WakeUpChannel: Sendable {
    private let subscribers = Mutex<[WakeSignal]>([])

    public init() {}

    /// A new subscription; it sees every wake-up from now on (a wake-up while nobody waits on it
    /// is kept until its next wait).
    public func subscribe() -> WakeSignal {
        let signal = WakeSignal()
        subscribers.withLock { $0.append(signal) }
        return signal
    }

    /// Ends a subscription: it is signalled no more.
    public func unsubscribe(_ signal: WakeSignal) {
        subscribers.withLock { $0.removeAll { $0 === signal } }
    }

    /// Wakes every subscriber.
    public func signal(_ kinds: WakeUp = .runsDue) {
        for subscriber in subscribers.withLock({ $0 }) { subscriber.signal(kinds) }
    }
}

/// Wakes one waiter; a signal with nobody waiting is remembered (with its kinds) until the next
/// wait or take.
public final class WakeSignal: Sendable {
    private struct State {
        var pending: WakeUp = []
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    public init() {}

    public func signal(_ kinds: WakeUp = .runsDue) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.pending.formUnion(kinds)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// The kinds signalled since the last wait or take, cleared (without waiting); empty if none.
    public func take() -> WakeUp {
        state.withLock { state in
            defer { state.pending = [] }
            return state.pending
        }
    }

    /// Returns on a signal or after `timeout`, whichever comes first, with the kinds signalled
    /// meanwhile (empty on timeout).
    @discardableResult
    public func wait(timeout: Duration) async -> WakeUp {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        return take()
    }

    private func waitForSignal() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // A pending signal is cleared by `take()` after the wait.
                let resumeNow = state.withLock { state -> Bool in
                    if !state.pending.isEmpty { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
                // Cancelled before the waiter was installed: onCancel found nothing to resume.
                if !resumeNow && Task.isCancelled { self.cancelWaiter() }
            }
        } onCancel: {
            self.cancelWaiter()
        }
    }

    private func cancelWaiter() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
