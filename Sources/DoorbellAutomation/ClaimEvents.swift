import DoorbellCore
import DoorbellStorage
import Synchronization

/// The events of one claim, read together the first time one of its runs asks: one read for the
/// claim instead of one per run (under load those queued for the reader connections), and none at
/// all for a claim whose deliveries are all put off (an open circuit, a rate limit, a paused endpoint).
final class ClaimEvents: Sendable {
    private let store: any DoorbellStore
    private let ids: [String]
    private let read = Mutex<Task<[String: StoredEvent], Never>?>(nil)

    init(store: any DoorbellStore, ids: [String]) {
        self.store = store
        self.ids = Array(Set(ids))
    }

    /// The event with `id`, from the claim's shared read, or from a read of its own when the shared
    /// one failed or did not have it (so a missing event is still told from a storage error).
    func event(id: String) async throws -> StoredEvent? {
        let shared = read.withLock { read in
            if let read { return read }
            let started = Task { [store, ids] in (try? await store.events(ids: ids)) ?? [:] }
            read = started
            return started
        }
        if let event = await shared.value[id] { return event }
        return try await store.event(id: id)
    }
}
