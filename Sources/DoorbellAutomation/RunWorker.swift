import AsyncHTTPClient
import DoorbellCore
import DoorbellStorage
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Claims due runs — automation runs and deliveries, one queue — and carries them out. Push-based:
/// it subscribes to the store's wake-ups (`EventStore.wakeUps`: an event stored with runs, a retry
/// scheduled, an endpoint enabled); otherwise it sleeps until the next due retry or lease expiry,
/// never on a fixed interval. On graceful shutdown it stops claiming and lets running steps finish.
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
    /// This worker's subscription to the store's wake-ups; the worker also signals it itself when
    /// one of its runs finishes (a slot came free) and on shutdown.
    private let signal: WakeSignal
    private let inFlight = Mutex(0)
    /// The claims in flight; asked before every step and every write (see `HeldLeases`).
    private let held = Mutex(HeldLeases())
    /// Runs' event reads, shared when they come together (a claim's runs start at once).
    private let events: EventReads
    /// Runs, steps and delivery attempts counted for `/metrics`.
    private let metrics: WorkMetrics
    /// The fallback poll: at this interval the worker looks at the queue and reloads endpoints
    /// even without a wake-up, for changes made by other processes (the `doorbell` CLI), which the
    /// SQLite store's in-process channel cannot carry. PostgreSQL will carry them by LISTEN/NOTIFY.
    static let idleCheck = 5.0

    public init(
        store: any Store, planner: EventPlanner, filesDirectory: String, logger: Logger, concurrency: Int = 64, lease: Double = 60,
        outbound: OutboundSettings = .init(), retry: RetryPolicy = .default, metrics: WorkMetrics = .none, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.metrics = metrics
        self.store = store
        let events = EventReads(store: store)
        self.events = events
        self.automations = Dictionary(planner.matcher.automations.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let http = OutboundHTTP(policy: outbound.addressPolicy, concurrency: concurrency)
        self.http = http
        self.directory = planner.directory
        self.now = now
        self.logger = logger
        self.concurrency = concurrency
        self.lease = lease
        // Subscribed before anything runs, so a wake-up between now and `run()` is kept.
        self.signal = store.wakeUps.subscribe()
        // The store wakes the worker for runs it stores (its wake-up channel).
        let storeEmitted: @Sendable (NewEvent) async throws -> IngestOutcome = { event in try await store.ingest(event) }
        self.executor = StepExecutor(
            http: http, filesDirectory: filesDirectory, storeEmitted: storeEmitted,
            planRuns: { runs, eventID in try await store.plan(runs, eventID: eventID, now: now()) },
            planner: planner, maxChainDepth: 8
        )
        self.deliverer = Deliverer(
            store: store, events: events, http: http, directory: planner.directory, settings: outbound, retry: retry, logger: logger, now: now, metrics: metrics,
            publish: { event in _ = try await storeEmitted(planner.plan(event)) }
        )
    }

    /// Look at the queue now (tests; the running server is woken through the store's channel).
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
                        let leaseUntil = now.addingTimeInterval(lease)
                        do {
                            // A run still in flight here is never handed out again, even if its
                            // lease lapsed: that execution has not yet noticed and given it up.
                            claimed = try await store.claimDueRuns(owner: owner, limit: free, now: now, leaseUntil: leaseUntil, excluding: held.withLock { $0.inFlight })
                        } catch {
                            logger.error("cannot claim runs", metadata: ["error": "\(error)"])
                        }
                        held.withLock { held in
                            for record in claimed {
                                if let lease = record.lease { held.claimed(record.id, lease: lease, until: leaseUntil) }
                            }
                        }
                    }
                    for record in claimed {
                        inFlight.withLock { $0 += 1 }
                        group.addTask {
                            await self.execute(record)
                            self.held.withLock { $0.released(record.id) }
                            self.inFlight.withLock { $0 -= 1 }
                            self.signal.signal()
                        }
                    }
                    if !claimed.isEmpty && claimed.count == free { continue }
                    // Without room to claim, only a finishing run (which signals) can change anything:
                    // asking the store when the next run is due would just spin on a backlog.
                    let woke = await signal.wait(timeout: mayClaim ? await sleepTime(claimedNothing: claimed.isEmpty) : .seconds(Self.idleCheck))
                    // Endpoints changed through this store (read before the deliveries they woke
                    // are claimed), or by the CLI in another process (the fallback poll).
                    if woke.contains(.endpointsChanged) || Date().timeIntervalSince(lastReload) >= Self.idleCheck {
                        lastReload = Date()
                        try? await directory.reload(from: store)
                    }
                }
            }
        } onGracefulShutdown: {
            self.signal.signal()
        }
        store.wakeUps.unsubscribe(signal)
        try await http.shutdown()
    }

    /// Until the next due run or lease expiry, and at most `idleCheck` — the fallback poll for work
    /// made due by another process (`doorbell` CLI replay, endpoint changes), whose writes cannot
    /// signal this process's in-process wake-up channel (SQLite). A PostgreSQL store replaces this
    /// with LISTEN/NOTIFY on the same channel; the poll then only covers a dropped listener.
    /// Runs that are due but were not claimable (held back by a concurrency key) would make this
    /// spin; after an empty claim the wait is at least 50 ms (a finishing run signals sooner).
    private func sleepTime(claimedNothing: Bool) async -> Duration {
        guard let due = try? await store.nextDueDate() else { return .seconds(Self.idleCheck) }
        let seconds = min(Self.idleCheck, max(claimedNothing ? 0.05 : 0.001, due.timeIntervalSince(now()) + 0.002))
        return .milliseconds(Int64(seconds * 1000))
    }

    /// Renews every claim this worker holds, every lease/3, in one statement — so a long step or a
    /// slow delivery is not taken over by another worker (which would send it twice). A failed
    /// renewal is retried soon (every lease/20); a claim the store did not extend is lost, and one
    /// whose lease ran out by this worker's clock is given up (see `HeldLeases`).
    private func renewLeases() -> Task<Void, any Error> {
        Task { [self] in
            var wait = lease / 3
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
                let sent = now()
                let asked = held.withLock { $0.renewable(now: sent) }
                guard !asked.isEmpty else {
                    wait = lease / 3
                    continue
                }
                do {
                    let extended = try await store.renewLeases(asked, until: sent.addingTimeInterval(lease))
                    held.withLock { $0.renewed(asked, extended: extended, until: sent.addingTimeInterval(lease)) }
                    wait = lease / 3
                } catch {
                    logger.warning("lease renewal failed; retrying", metadata: ["runs": "\(asked.count)", "error": "\(error)"])
                    wait = max(0.05, lease / 20)
                }
            }
        }
    }

    /// Gives up a run whose lease is gone: nothing more is run or written for it.
    private func abandon(_ runID: String) {
        held.withLock { $0.lost(runID) }
        logger.warning("lease lost for run \(runID), abandoned", metadata: ["run": "\(runID)"])
    }

    /// Writes a transition of a held run. The store's fence decides whether it applies, so it is
    /// tried even when the lease lapsed by this worker's clock (a clock jump, a suspended VM): if
    /// nobody claimed the run meanwhile, the finished work is kept instead of repeated. It is not
    /// tried when the store already said the lease is gone. The work it records is done, so a
    /// storage error repeats only the write (backoff 50 ms to 2 s): the step is neither run again
    /// nor counted as a failed attempt — until the lease lapses locally (renewals fail too while
    /// storage is down); then the run is abandoned, and after its lease another claim resumes it
    /// at this step. Returns whether the transition applied; when not, the run is abandoned.
    func settle(_ runID: String, _ write: () async throws -> Transition) async -> Bool {
        var backoff = 0.05
        while !held.withLock({ $0.isLost(runID) }) {
            do {
                if try await write() == .applied { return true }
                break
            } catch {
                guard held.withLock({ $0.holds(runID, now: now()) }) else { break }
                if Task.isCancelled {
                    // Stopped, not taken over: after its lease the run is claimed again, at this step.
                    logger.warning("run \(runID) stopped before its result was stored", metadata: ["run": "\(runID)"])
                    return false
                }
                logger.error("storing run \(runID) failed; retrying the write", metadata: ["run": "\(runID)", "in": "\(backoff) s", "error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(Int64(backoff * 1000)))
                backoff = min(backoff * 2, 2)
            }
        }
        abandon(runID)
        return false
    }

    /// Runs the claimed run from its next step until it finishes, waits for a retry, or dies —
    /// checking before each step that its lease is still held, and stopping (writing nothing
    /// more) as soon as it is not.
    private func execute(_ record: RunRecord) async {
        guard let lease = record.lease else { return }
        if record.endpoint != nil {
            do {
                try await deliverer.deliver(record, lease: lease, settle: settle)
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
        func bury(_ reason: String) async {
            if await settle(record.id, { try await store.failStep(runID: record.id, attempt: record.attempt, error: reason, dueAt: nil, lease: lease) }) {
                metrics.run(record.automation, .dead)
            }
        }
        guard let automation = automations[record.automation] else {
            return await bury("automation '\(record.automation)' is no longer configured")
        }
        do {
            guard let stored = try await events.event(id: record.eventID) else {
                return await bury("event \(record.eventID) not found")
            }
            var outputs: [String: Any] = [:]
            // A run that has not completed a step yet has no outputs to read back.
            for (stepID, json) in record.nextStep == 0 ? [:] : try await store.stepOutputs(runID: record.id) {
                outputs[stepID] = (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])) ?? [:]
            }
            if record.nextStep == 0 && record.attempt == 0 { metrics.run(record.automation, .started) }
            var progress = RunProgress(status: .running, nextStep: record.nextStep, attempt: record.attempt)
            // The body is parsed at most once per run (when a template first reads it); only
            // `steps` changes from one step to the next.
            var context = EventContext.make(stored.event, lazyBody: true)
            var action = progress.start(stepCount: automation.steps.count)
            while case .runStep(let index) = action {
                guard held.withLock({ $0.holds(record.id, now: now()) }) else { return abandon(record.id) }
                let step = automation.steps[index]
                context["steps"] = outputs
                let input = StepInput(runID: record.id, event: stored.event, context: context)
                // Only the step itself can fail the step: what storing its result does is the
                // write's business (`settle`), never a failed attempt.
                let result: Result<(output: Any, json: String), any Error>
                let started = ContinuousClock.now
                do {
                    let output = try await executor.run(step, input)
                    result = .success((output, try JSONText.string(output)))
                } catch {
                    result = .failure(error)
                }
                metrics.step(kind: step.action.kind, took: ContinuousClock.now - started)
                switch result {
                case .success(let done):
                    outputs[step.id] = done.output
                    action = progress.record(.succeeded, stepCount: automation.steps.count, policy: step.retry ?? automation.retry)
                    let finished = action == .finished
                    let leaseUntil = now().addingTimeInterval(self.lease)
                    guard await settle(record.id, {
                        try await store.completeStep(runID: record.id, stepID: step.id, position: index, output: done.json, finished: finished, lease: lease, leaseUntil: leaseUntil)
                    }) else { return }
                    // Applied under our claim, which it extended: the lease holds until then.
                    held.withLock { $0.extended(record.id, lease: lease, until: leaseUntil) }
                    if finished { metrics.run(record.automation, .succeeded) }
                    logger.debug("step succeeded", metadata: runMetadata(["step": "\(step.id)"]))
                case .failure(let error):
                    let failure = error as? StepFailure ?? StepFailure("\(error)", retryable: true)
                    action = progress.record(.failed(error: "\(step.id): \(failure.description)", retryable: failure.retryable, retryAfter: failure.retryAfter), stepCount: automation.steps.count, policy: step.retry ?? automation.retry)
                    switch action {
                    case .retry(let after):
                        logger.warning("step failed; will retry", metadata: runMetadata(["step": "\(step.id)", "in": "\(after) s", "error": "\(failure)"]))
                        let attempt = progress.attempt, lastError = progress.lastError ?? ""
                        if await settle(record.id, { try await store.failStep(runID: record.id, attempt: attempt, error: lastError, dueAt: now().addingTimeInterval(after), lease: lease) }) {
                            metrics.run(record.automation, .failed)
                        }
                    case .dead(let reason):
                        logger.error("run dead", metadata: runMetadata(["step": "\(step.id)", "error": "\(reason)"]))
                        let attempt = progress.attempt
                        if await settle(record.id, { try await store.failStep(runID: record.id, attempt: attempt, error: reason, dueAt: nil, lease: lease) }) {
                            metrics.run(record.automation, .dead)
                        }
                    case .runStep, .finished:
                        break
                    }
                }
            }
            if action == .finished && automation.steps.isEmpty {
                if await settle(record.id, { try await store.completeStep(runID: record.id, stepID: "-", position: -1, output: "{}", finished: true, lease: lease, leaseUntil: now()) }) {
                    metrics.run(record.automation, .succeeded)
                }
            }
        } catch {
            // Reading the run's event or outputs failed: the lease expires and the run is claimed
            // again; completed steps stay done.
            logger.error("run interrupted by storage", metadata: runMetadata(["error": "\(error)"]))
        }
    }
}
