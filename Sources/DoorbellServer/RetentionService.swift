import DoorbellCore
import DoorbellStorage
import Foundation
import Logging
import ServiceLifecycle

/// Applies `retention:` in the background: at start, then every `interval` (an hour). The store
/// prunes 100 rows per transaction and rests as long as each took, so ingest keeps answering (its
/// p99 rose 1.2x while 200,000 rows went in scripts/bench; 250-row batches cost 2.2x); a graceful
/// shutdown stops it between two batches.
///
/// Pruning is work for one node: it runs on the node holding the `retention` lease in the store
/// (`holdLease`). The holder renews it every `leaseCheck`; when it dies, another node takes the
/// lease once it lapses (`leaseLength`) and prunes from then on.
struct RetentionService: Service {
    let store: any DoorbellStore
    let policy: RetentionPolicy
    let logger: Logger
    var interval: Duration = .seconds(3600)
    let now: @Sendable () -> Date
    /// This process, as the lease's holder.
    var node = "node-" + UUID().uuidString.prefix(8).lowercased()
    /// How often a node renews (or tries to take) the lease; it lapses after `leaseLength`.
    var leaseCheck: Duration = .seconds(60)
    var leaseLength: TimeInterval = 180

    func run() async throws {
        var lastPrune: ContinuousClock.Instant?
        var leading = false
        while !Task.isShuttingDownGracefully {
            let (store, policy, now) = (store, policy, now)
            do {
                let held = try await store.holdLease("retention", owner: node, until: now().addingTimeInterval(leaseLength), now: now())
                if held != leading { logger.info(held ? "this node prunes (holds the retention lease)" : "another node prunes (retention lease held elsewhere)") }
                leading = held
                if held, lastPrune.map({ ContinuousClock.now - $0 >= interval }) ?? true {
                    lastPrune = .now
                    let counts = try await cancelWhenGracefulShutdown { try await store.prune(policy, now: now(), dryRun: false, batchSize: 100) }
                    if counts.total > 0 {
                        logger.info("pruned by retention", metadata: [
                            "events": "\(counts.events)", "runs": "\(counts.runs)", "step_outputs": "\(counts.stepOutputs)",
                            "attempts": "\(counts.attempts)", "dedupe_keys_kept": "\(counts.dedupeKeysKept)", "dedupe_keys_expired": "\(counts.dedupeKeysExpired)",
                        ])
                    }
                }
            } catch {
                if Task.isShuttingDownGracefully { return }
                logger.warning("pruning failed; trying again at the next interval", metadata: ["error": "\(error)"])
            }
            do {
                try await cancelWhenGracefulShutdown { [interval, leaseCheck] in try await Task.sleep(for: min(interval, leaseCheck)) }
            } catch {
                return
            }
        }
    }
}
