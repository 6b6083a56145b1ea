import DoorbellCore
import Foundation

/// What pollers remember between polls, in the store on every backend (so it survives restarts and
/// moves with the poller's lease to another node).
///
/// The heart is `commitPoll`: a poll's events (with their planned runs) and the poller's new state
/// — seen ids and versions, cursor, ETag, Last-Modified — commit in one transaction, and only if
/// nobody committed or reset the poller since the poll read its state (`generation`). A crash before
/// it commits nothing, so the next poll finds the same items new and emits them then, once.
public protocol PollerStore: Sendable {
    /// The poller's state; nil when it never polled. Its next poll follows `first_run` while
    /// `lastSuccessAt` is nil (never succeeded, or reset).
    func pollerState(_ poller: String) async throws -> PollerState?
    /// Every poller's state (for `pollers list`).
    func pollerStates() async throws -> [PollerState]
    /// The ids the poller remembers, each with its version's hash.
    func seenItems(_ poller: String) async throws -> [SeenItem]
    /// Commits a successful poll: its events, the items seen new or changed, and the new cursor,
    /// ETag and Last-Modified, in one transaction; then forgets the oldest remembered items beyond
    /// `maxSeen`. Answers false, writing nothing, when the poller's generation is no longer
    /// `expectedGeneration` (another poll or a reset committed meanwhile).
    func commitPoll(_ commit: PollCommit) async throws -> PollCommitOutcome
    /// Records a failed poll (the cursor and seen items stay); answers the state after it.
    func recordPollFailure(_ poller: String, error: String, at: Date, nextPollAt: Date) async throws -> PollerState
    /// Sets whether the poller is failing; true only for the caller that changed it (so
    /// `poller.failing` and `poller.recovered` are published once, whichever node sees it first).
    /// `notice` (that event) is stored in the same transaction, only when the flag changed: a crash
    /// between the two can neither lose the notice nor publish it twice.
    func setPollerFailing(_ poller: String, failing: Bool, notice: NewEvent?) async throws -> Bool
    /// Forgets the poller's cursor, validators, last success and remembered items: its next poll
    /// follows `first_run`. The row stays and its generation moves on, so a poll begun before the
    /// reset can never commit (not even after a poll after the reset brought a count back to it).
    func resetPoller(_ poller: String) async throws
}

extension PollerStore {
    public func setPollerFailing(_ poller: String, failing: Bool) async throws -> Bool {
        try await setPollerFailing(poller, failing: failing, notice: nil)
    }
}

/// One remembered item: its id and a 64-bit hash of its version.
public struct SeenItem: Sendable, Equatable {
    public var id: String
    public var version: UInt64
    public init(id: String, version: UInt64) {
        self.id = id
        self.version = version
    }
}

/// A poller's stored state and status.
public struct PollerState: Sendable, Equatable {
    public var poller: String
    /// Bumped by every committed poll; 0 before the first.
    public var generation: Int64
    public var cursor: String?
    public var etag: String?
    public var lastModified: String?
    public var lastPollAt: Date?
    public var lastSuccessAt: Date?
    public var lastError: String?
    /// Failed polls since the last success.
    public var failures: Int
    /// The first failure since the last success (nil while succeeding).
    public var failingSince: Date?
    public var failing: Bool
    public var nextPollAt: Date?
    /// Items remembered.
    public var itemsSeen: Int

    public init(
        poller: String, generation: Int64 = 0, cursor: String? = nil, etag: String? = nil, lastModified: String? = nil, lastPollAt: Date? = nil,
        lastSuccessAt: Date? = nil, lastError: String? = nil, failures: Int = 0, failingSince: Date? = nil, failing: Bool = false,
        nextPollAt: Date? = nil, itemsSeen: Int = 0
    ) {
        self.poller = poller
        self.generation = generation
        self.cursor = cursor
        self.etag = etag
        self.lastModified = lastModified
        self.lastPollAt = lastPollAt
        self.lastSuccessAt = lastSuccessAt
        self.lastError = lastError
        self.failures = failures
        self.failingSince = failingSince
        self.failing = failing
        self.nextPollAt = nextPollAt
        self.itemsSeen = itemsSeen
    }
}

/// One successful poll, to commit at once.
public struct PollCommit: Sendable {
    public var poller: String
    /// The generation the poll read; the commit applies only if it is still current.
    public var expectedGeneration: Int64
    /// Events of new and changed items, with their planned runs.
    public var events: [NewEvent]
    /// Items new or changed in this poll (upserted).
    public var seen: [SeenItem]
    /// The new cursor, ETag and Last-Modified (nil: keep what is stored).
    public var cursor: String?
    public var etag: String?
    public var lastModified: String?
    public var at: Date
    public var nextPollAt: Date
    public var maxSeen: Int

    public init(
        poller: String, expectedGeneration: Int64, events: [NewEvent], seen: [SeenItem], cursor: String?, etag: String?, lastModified: String?,
        at: Date, nextPollAt: Date, maxSeen: Int
    ) {
        self.poller = poller
        self.expectedGeneration = expectedGeneration
        self.events = events
        self.seen = seen
        self.cursor = cursor
        self.etag = etag
        self.lastModified = lastModified
        self.at = at
        self.nextPollAt = nextPollAt
        self.maxSeen = maxSeen
    }
}

/// What `commitPoll` did.
public struct PollCommitOutcome: Sendable, Equatable {
    /// False: the generation had moved on; nothing was written.
    public var committed: Bool
    /// The events stored (duplicates of earlier events — same source and provider id — excluded).
    public var stored: [IngestOutcome]
    public var state: PollerState?

    public init(committed: Bool, stored: [IngestOutcome], state: PollerState?) {
        self.committed = committed
        self.stored = stored
        self.state = state
    }
}
