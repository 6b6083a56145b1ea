import DoorbellCore
import DoorbellStorage
import Synchronization

/// Coalesces the worker's event reads: runs that ask for their event at about the same time (a
/// claim's runs start together) share one `events(ids:)` read instead of one read each, which under
/// load queued for the reader connections (~20 ms each). Only runs about to use their event ask (a
/// delivery put off by its circuit or rate limit reads nothing), and no event is kept once handed
/// over. The first asker reads what was asked until then; those asking during that read go into the
/// next one. A run the shared read did not answer reads its event alone, so a storage error still
/// surfaces as one and is told from a missing event.
final class EventReads: Sendable {
    private typealias Waiter = CheckedContinuation<StoredEvent?, Never>

    private struct State {
        var asked: [String: [Waiter]] = [:]
        var reading = false
    }

    private let store: any DoorbellStore
    private let state = Mutex(State())

    init(store: any DoorbellStore) {
        self.store = store
    }

    /// The stored event with `id`, or nil when there is none.
    func event(id: String) async throws -> StoredEvent? {
        let shared: StoredEvent? = await withCheckedContinuation { waiter in
            let startReading = state.withLock { state in
                state.asked[id, default: []].append(waiter)
                guard !state.reading else { return false }
                state.reading = true
                return true
            }
            if startReading { Task { await self.readAsked() } }
        }
        if let shared { return shared }
        return try await store.event(id: id)
    }

    /// Reads what was asked, batch after batch, until nothing is waiting. Every waiter is resumed.
    private func readAsked() async {
        while true {
            // Let the rest of a claim's runs ask before the read starts.
            await Task.yield()
            let batch = state.withLock { state in
                let batch = state.asked
                state.asked = [:]
                if batch.isEmpty { state.reading = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            let found = (try? await store.events(ids: Array(batch.keys))) ?? [:]
            for (id, waiters) in batch {
                for waiter in waiters { waiter.resume(returning: found[id]) }
            }
        }
    }
}
