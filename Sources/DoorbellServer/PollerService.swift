import DoorbellAutomation
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Logging
import ServiceLifecycle

/// Runs every configured poller on its schedule. A poller polls only on the node holding its lease
/// (`poller:<id>` in the store): with several nodes each poller runs on one at a time, and another
/// takes over once a dead holder's lease lapses. When the next poll is due comes from the store
/// (`next_poll_at`, set by the last success or the back-off after a failure), so a restart or a new
/// holder keeps the schedule. Graceful shutdown stops between polls; a poll cut off commits nothing.
public final class PollerService: Service, Sendable {
    public let pollers: [Poller]
    public let runner: PollRunner
    private let store: any DoorbellStore
    private let logger: Logger
    private let now: @Sendable () -> Date
    /// This process as a lease holder: the same host and port after a restart is the same node, and
    /// takes its leases back at once.
    private let node: String
    /// A lease lasts this long unless renewed (every third of it, also during a long poll).
    private let leaseLength: TimeInterval

    public init(pollers: [Poller], runner: PollRunner, store: any DoorbellStore, node: String, logger: Logger, leaseLength: TimeInterval = 30, now: @escaping @Sendable () -> Date = { Date() }) {
        self.pollers = pollers
        self.runner = runner
        self.store = store
        self.node = node
        self.logger = logger
        self.leaseLength = leaseLength
        self.now = now
    }

    public func poller(id: String) -> Poller? { pollers.first { $0.id == id } }

    public func run() async throws {
        guard !pollers.isEmpty else {
            try? await gracefulShutdown()
            await runner.shutdown()
            return
        }
        try? await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for poller in self.pollers { group.addTask { await self.loop(poller) } }
            }
        }
        await runner.shutdown()
    }

    private func loop(_ poller: Poller) async {
        let lease = "poller:\(poller.id)"
        var holding = false
        /// Polls in a row whose store write failed, and when the next may start: the store could not
        /// take the back-off, so it is kept here (the API is not asked again every wake-up).
        var storeFailures = 0
        var notBefore: Date?
        while !Task.isCancelled {
            var wait = leaseLength / 3
            do {
                let at = now()
                let held = try await store.holdLease(lease, owner: node, until: at.addingTimeInterval(leaseLength), now: at)
                if held != holding { logger.info(held ? "this node polls" : "another node polls", metadata: ["poller": "\(poller.id)"]) }
                holding = held
                if held {
                    let due = try await store.pollerState(poller.id)?.nextPollAt ?? at
                    if let notBefore, notBefore > at {
                        wait = min(wait, notBefore.timeIntervalSince(at))
                    } else if due <= at {
                        // A poll whose store write failed moved nothing: try again after the back-off, not at once.
                        if await pollHoldingLease(poller, lease: lease) {
                            storeFailures = 0
                            notBefore = nil
                            let next = try await store.pollerState(poller.id)?.nextPollAt ?? now().addingTimeInterval(poller.schedule.nominalInterval)
                            wait = min(wait, max(0.05, next.timeIntervalSince(now())))
                        } else {
                            storeFailures += 1
                            let delay = PollBackoff.delay(failures: storeFailures, interval: poller.schedule.nominalInterval, cap: poller.backoffMax, retryAfter: nil)
                            notBefore = now().addingTimeInterval(delay)
                            wait = min(wait, delay)
                        }
                    } else {
                        wait = min(wait, due.timeIntervalSince(at))
                    }
                }
            } catch {
                logger.warning("poller cannot reach the store; trying again", metadata: ["poller": "\(poller.id)", "error": "\(error)"])
            }
            do { try await Task.sleep(for: .milliseconds(Int64(max(0.05, wait) * 1000))) } catch { return }
        }
    }

    /// Polls while renewing the lease, so a long walk over many pages keeps it.
    /// False when the store failed (nothing recorded).
    private func pollHoldingLease(_ poller: Poller, lease: String) async -> Bool {
        let renewal = Task { [store, node, leaseLength, now] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(leaseLength / 3 * 1000)))
                if Task.isCancelled { return }
                let at = now()
                _ = try? await store.holdLease(lease, owner: node, until: at.addingTimeInterval(leaseLength), now: at)
            }
        }
        defer { renewal.cancel() }
        do {
            _ = try await runner.poll(poller)
            return true
        } catch is PollFailure {
            // Logged and recorded (with its back-off) by the runner.
            return true
        } catch {
            // The store failed: nothing was committed, and `next_poll_at` did not move, so the poll
            // is tried again at the next wake-up.
            logger.warning("poll not recorded: the store failed", metadata: ["poller": "\(poller.id)", "error": "\(error)"])
            return false
        }
    }
}

extension PollerService {
    /// The service for a configuration's pollers, with its own outbound client behind the same SSRF
    /// guard (`outbound.allow_private`) as steps and deliveries.
    public static func make(configuration: Configuration, store: any DoorbellStore, planner: EventPlanner, logger: Logger, now: @escaping @Sendable () -> Date = { Date() }) -> PollerService {
        // A fixed port names the node across restarts (it takes its leases back at once); with a
        // kernel-chosen port (0) two processes on one host must not share a name.
        let port = configuration.server.port
        let node = "\(ProcessInfo.processInfo.hostName):\(port == 0 ? "0-" + UUID().uuidString.prefix(8).lowercased() : String(port))"
        return PollerService(pollers: configuration.pollers, runner: makeRunner(configuration: configuration, store: store, planner: planner, logger: logger, now: now), store: store, node: node, logger: logger, now: now)
    }

    public static func makeRunner(configuration: Configuration, store: any DoorbellStore, planner: EventPlanner, logger: Logger, now: @escaping @Sendable () -> Date = { Date() }) -> PollRunner {
        PollRunner(store: store, http: OutboundHTTP(policy: configuration.outbound.addressPolicy, concurrency: 4), planner: planner, logger: logger, now: now)
    }
}

extension PollerService {
    /// One poll outside the server (`doorbell pollers run`): the same runner, planner and SSRF guard
    /// as `serve`. Without the lease: the commit is fenced by the poller's generation, so a poll
    /// racing the server's commits nothing twice. Throws `PollFailure` when the poll fails.
    public static func pollOnce(_ poller: Poller, configuration: Configuration, store: any DoorbellStore, dryRun: Bool, logger: Logger) async throws -> PollRunResponse {
        let directory = EndpointDirectory(try await store.endpoints())
        let planner = EventPlanner(automations: configuration.automations, directory: directory, sources: configuration.sources)
        let runner = makeRunner(configuration: configuration, store: store, planner: planner, logger: logger)
        do {
            let report = try await runner.poll(poller, dryRun: dryRun)
            await runner.shutdown()
            return PollRunResponse(report)
        } catch {
            await runner.shutdown()
            throw error
        }
    }
}
