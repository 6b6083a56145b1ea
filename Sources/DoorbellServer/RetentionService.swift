import DoorbellCore
import DoorbellStorage
import Foundation
import Logging
import ServiceLifecycle

/// Applies `retention:` in the background: at start, then every `interval` (an hour). The store
/// prunes 100 rows per transaction and rests as long as each took, so ingest keeps answering (its
/// p99 rose 1.2x while 200,000 rows went in scripts/bench; 250-row batches cost 2.2x); a graceful
/// shutdown stops it between two batches.
struct RetentionService: Service {
    let store: any DoorbellStore
    let policy: RetentionPolicy
    let logger: Logger
    var interval: Duration = .seconds(3600)
    let now: @Sendable () -> Date

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            let (store, policy, now) = (store, policy, now)
            do {
                let counts = try await cancelWhenGracefulShutdown { try await store.prune(policy, now: now(), dryRun: false, batchSize: 100) }
                if counts.total > 0 {
                    logger.info("pruned by retention", metadata: [
                        "events": "\(counts.events)", "runs": "\(counts.runs)", "step_outputs": "\(counts.stepOutputs)",
                        "attempts": "\(counts.attempts)", "dedupe_keys_kept": "\(counts.dedupeKeysKept)", "dedupe_keys_expired": "\(counts.dedupeKeysExpired)",
                    ])
                }
            } catch {
                if Task.isShuttingDownGracefully { return }
                logger.warning("pruning failed; trying again at the next interval", metadata: ["error": "\(error)"])
            }
            do {
                try await cancelWhenGracefulShutdown { [interval] in try await Task.sleep(for: interval) }
            } catch {
                return
            }
        }
    }
}
