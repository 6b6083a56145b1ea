import AsyncHTTPClient
import DoorbellCore
import DoorbellStorage
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Claims due runs — automation runs and deliveries, one queue — and carries them out. Push-based:
/// storing an event calls `wake()`; otherwise the worker sleeps until the next due retry or lease
/// expiry, never on a fixed interval. On graceful shutdown it stops claiming and lets running steps finish.
public final class RunWorker: Service, Sendable {
    public typealias Store = DoorbellStore

    private let store: any Store
    private let automations: [String: Automation]
    private let executor: StepExecutor
    private let deliverer: Deliverer
    private let directory: EndpointDirectory
    private let http: OutboundHTTP
    private let now: @Sendable () -> Date
    private let logger: Logger
    private let owner = "worker-" + UUID().uuidString.prefix(8).lowercased()
    private let concurrency: Int
    private let lease: Double
    private let signal = WakeSignal()
    private let inFlight = Mutex(0)
    static let idleCheck = 5.0

    public init(
        store: any Store, planner: EventPlanner, filesDirectory: String, logger: Logger, concurrency: Int = 64, lease: Double = 60,
        outbound: OutboundSettings = .init(), retry: RetryPolicy = .default, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.store = store
        self.automations = Dictionary(planner.matcher.automations.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let http = OutboundHTTP(policy: outbound.addressPolicy, concurrency: concurrency)
        self.http = http
        self.directory = planner.directory
        self.now = now
        self.logger = logger
        self.concurrency = concurrency
        self.lease = lease
        let signal = self.signal
        let storeEmitted: @Sendable (NewEvent) async throws -> IngestOutcome = { event in
            let outcome = try await store.ingest(event)
            if !outcome.duplicate && !event.automations.isEmpty { signal.signal() }
            return outcome
        }
        self.executor = StepExecutor(
            http: http, filesDirectory: filesDirectory, storeEmitted: storeEmitted,
            planRuns: { runs, eventID in
                let created = try await store.plan(runs, eventID: eventID, now: now())
                if created > 0 { signal.signal() }
                return created
            },
            planner: planner, maxChainDepth: 8
        )
        self.deliverer = Deliverer(
            store: store, http: http, directory: planner.directory, settings: outbound, retry: retry, logger: logger, now: now,
            publish: { event in _ = try await storeEmitted(planner.plan(event)) }
        )
    }

    /// Something became due (an event with runs was stored): look now.
    public func wake() {
        signal.signal()
    }

    public func run() async throws {
        // Outlives the claim loop: runs still finishing during a graceful shutdown keep their leases.
        let renewal = renewLeases()
        defer { renewal.cancel() }
        await withGracefulShutdownHandler {
            // Discarding: a plain task group keeps every finished child until it is awaited, which
            // grew memory with every run processed.
            await withDiscardingTaskGroup { group in
                var lastReload = Date()
                while !Task.isShuttingDownGracefully && !Task.isCancelled {
                    let busy = inFlight.withLock { $0 }
                    let free = concurrency - busy
                    var claimed: [RunRecord] = []
                    // Claim in batches: a claim is a write transaction, so while work is in flight
                    // wait until a quarter of the slots are free instead of claiming one at a time.
                    let mayClaim = free > 0 && (busy == 0 || free >= max(1, concurrency / 4))
                    if mayClaim {
                        let now = self.now()
                        do {
                            claimed = try await store.claimDueRuns(owner: owner, limit: free, now: now, leaseUntil: now.addingTimeInterval(lease))
                        } catch {
                            logger.error("cannot claim runs", metadata: ["error": "\(error)"])
                        }
                    }
                    for record in claimed {
                        inFlight.withLock { $0 += 1 }
                        group.addTask {
                            await self.execute(record)
                            self.inFlight.withLock { $0 -= 1 }
                            self.signal.signal()
                        }
                    }
                    if !claimed.isEmpty && claimed.count == free { continue }
                    // Without room to claim, only a finishing run (which signals) can change anything:
                    // asking the store when the next run is due would just spin on a backlog.
                    await signal.wait(timeout: mayClaim ? await sleepTime(claimedNothing: claimed.isEmpty) : .seconds(Self.idleCheck))
                    if Date().timeIntervalSince(lastReload) >= Self.idleCheck {
                        // Endpoints added, enabled or rotated by the CLI in another process.
                        lastReload = Date()
                        try? await directory.reload(from: store)
                    }
                }
            }
        } onGracefulShutdown: {
            self.signal.signal()
        }
        try await http.shutdown()
    }

    /// Until the next due run or lease expiry, and at most `idleCheck` — the safety net for work made
    /// due by another process (`doorbell` CLI replay) that cannot wake this one.
    /// Runs that are due but were not claimable (held back by a concurrency key) would make this
    /// spin; after an empty claim the wait is at least 50 ms (a finishing run signals sooner).
    private func sleepTime(claimedNothing: Bool) async -> Duration {
        guard let due = try? await store.nextDueDate() else { return .seconds(Self.idleCheck) }
        let seconds = min(Self.idleCheck, max(claimedNothing ? 0.05 : 0.001, due.timeIntervalSince(now()) + 0.002))
        return .milliseconds(Int64(seconds * 1000))
    }

    /// Renews every claim this worker holds, every lease/3, in one statement — so a long step or a
    /// slow delivery is not taken over by another worker (which would send it twice).
    private func renewLeases() -> Task<Void, any Error> {
        Task { [store, owner, lease, now] in
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(Int64(lease * 1000 / 3)))
                try? await store.renewLeases(owner: owner, until: now().addingTimeInterval(lease))
            }
        }
    }

    /// Runs the claimed run from its next step until it finishes, waits for a retry, or dies.
    private func execute(_ record: RunRecord) async {
        if record.endpoint != nil {
            do {
                try await deliverer.deliver(record, owner: owner)
            } catch {
                // Storage failed: the lease expires and the delivery is tried again (same webhook-id).
                logger.error("delivery interrupted by storage", metadata: ["delivery": "\(record.id)", "error": "\(error)"])
            }
            return
        }
        // Metadata is built only when a line is actually logged (a copied logger with metadata set
        // cost more per run than most steps).
        let logger = self.logger
        func runMetadata(_ extra: Logger.Metadata) -> Logger.Metadata {
            extra.merging(["run": "\(record.id)", "automation": "\(record.automation)"]) { first, _ in first }
        }
        guard let automation = automations[record.automation] else {
            try? await store.failStep(runID: record.id, attempt: record.attempt, error: "automation '\(record.automation)' is no longer configured", dueAt: nil, owner: owner)
            return
        }
        do {
            guard let stored = try await store.event(id: record.eventID) else {
                try await store.failStep(runID: record.id, attempt: record.attempt, error: "event \(record.eventID) not found", dueAt: nil, owner: owner)
                return
            }
            var outputs: [String: Any] = [:]
            // A run that has not completed a step yet has no outputs to read back.
            for (stepID, json) in record.nextStep == 0 ? [:] : try await store.stepOutputs(runID: record.id) {
                outputs[stepID] = (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])) ?? [:]
            }
            var progress = RunProgress(status: .running, nextStep: record.nextStep, attempt: record.attempt)
            // The body is parsed once per run; only `steps` changes from one step to the next.
            var context = EventContext.make(stored.event)
            var action = progress.start(stepCount: automation.steps.count)
            while case .runStep(let index) = action {
                let step = automation.steps[index]
                context["steps"] = outputs
                let input = StepInput(runID: record.id, event: stored.event, context: context)
                do {
                    let output = try await executor.run(step, input)
                    outputs[step.id] = output
                    action = progress.record(.succeeded, stepCount: automation.steps.count, policy: step.retry ?? automation.retry)
                    let json = try JSONText.string(output)
                    try await store.completeStep(runID: record.id, stepID: step.id, position: index, output: json, finished: action == .finished, owner: owner, leaseUntil: now().addingTimeInterval(lease))
                    logger.debug("step succeeded", metadata: runMetadata(["step": "\(step.id)"]))
                } catch {
                    let failure = error as? StepFailure ?? StepFailure("\(error)", retryable: true)
                    action = progress.record(.failed(error: "\(step.id): \(failure.description)", retryable: failure.retryable, retryAfter: failure.retryAfter), stepCount: automation.steps.count, policy: step.retry ?? automation.retry)
                    switch action {
                    case .retry(let after):
                        logger.warning("step failed; will retry", metadata: runMetadata(["step": "\(step.id)", "in": "\(after) s", "error": "\(failure)"]))
                        try await store.failStep(runID: record.id, attempt: progress.attempt, error: progress.lastError ?? "", dueAt: now().addingTimeInterval(after), owner: owner)
                    case .dead(let reason):
                        logger.error("run dead", metadata: runMetadata(["step": "\(step.id)", "error": "\(reason)"]))
                        try await store.failStep(runID: record.id, attempt: progress.attempt, error: reason, dueAt: nil, owner: owner)
                    case .runStep, .finished:
                        break
                    }
                }
            }
            if action == .finished && automation.steps.isEmpty {
                try await store.completeStep(runID: record.id, stepID: "-", position: -1, output: "{}", finished: true, owner: owner, leaseUntil: Date())
            }
        } catch {
            // Storage failed mid-run: the lease expires and the run is claimed again; completed steps stay done.
            logger.error("run interrupted by storage", metadata: runMetadata(["error": "\(error)"]))
        }
    }
}

/// Wakes one waiter; a signal with nobody waiting is remembered until the next wait.
final class WakeSignal: Sendable {
    private struct State {
        var signaled = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.signaled = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns on a signal or after `timeout`, whichever comes first.
    func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.signaled {
                        state.signaled = false
                        return true
                    }
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
