import DoorbellCore
import Foundation

/// Endpoints and the attempts of deliveries. Deliveries themselves are runs (see `RunStore`): one
/// queue, one lease and retry machinery for automations and outbound webhooks alike.
public protocol DeliveryStore: Sendable {
    func endpoints() async throws -> [Endpoint]
    func endpoint(id: String) async throws -> Endpoint?
    /// Inserts an endpoint or replaces its settings; its health (failing since) is kept.
    func saveEndpoint(_ endpoint: Endpoint, now: Date) async throws
    /// Brings the endpoints declared in `doorbell.yml` up to date. A generated secret is kept when
    /// the file gives none; a secret changed in the file keeps signing for `overlap` seconds (rotation);
    /// a runtime disable (410, failing for days) survives restarts; one no longer in the file is
    /// removed and its waiting deliveries are paused.
    func syncConfigured(_ endpoints: [Endpoint], overlap: Double, now: Date) async throws
    func deleteEndpoint(id: String) async throws -> Bool
    /// Enabling re-queues the deliveries that waited (paused); disabling pauses the waiting ones.
    func setEndpoint(id: String, enabled: Bool, reason: String?, now: Date) async throws -> Bool
    /// Disables an enabled endpoint; false when it was already disabled (or is gone), so concurrent
    /// failures announce the disable once.
    func disableIfEnabled(id: String, reason: String, now: Date) async throws -> Bool
    /// Makes `secret` current; the previous current one expires after `overlap` seconds.
    func rotateSecret(endpointID: String, to secret: EndpointSecret, overlap: Double, now: Date) async throws -> Endpoint?
    /// Records one attempt and moves its delivery on, together with the endpoint's failure streak, in
    /// one transaction — or, when `lease` is no longer the delivery's current claim, writes nothing.
    func finishAttempt(_ attempt: AttemptRecord, outcome: AttemptOutcome, lease: Lease) async throws -> AttemptWrite
    /// Puts a claimed delivery back without counting an attempt (rate limit, open circuit).
    func deferRun(runID: String, lease: Lease, until: Date) async throws -> Transition
    /// Parks a claimed delivery whose endpoint is disabled.
    func pauseRun(runID: String, lease: Lease, reason: String) async throws -> Transition
    /// Every attempt of a delivery, oldest first.
    func attempts(runID: String) async throws -> [AttemptRecord]
    /// Start times of the endpoint's attempts since `since` (seeds the rate limiter after a restart).
    func attemptTimes(endpoint: String, since: Date) async throws -> [Date]
    /// Adds runs (usually deliveries) to an event already stored; existing ones are left alone.
    func plan(_ runs: [PlannedRun], eventID: String, now: Date) async throws -> Int
    /// Counts one send to `endpoint` against `limit` for every node sharing this store: nil when it
    /// may go now (it is counted), otherwise the earliest time a slot frees (spread over the window,
    /// so waiting deliveries do not all wake at once). N nodes together never exceed the limit.
    func reserveSend(endpoint: String, limit: RateLimit, now: Date) async throws -> Date?
    /// Records that an endpoint's circuit opened until `until` (a later time wins), so every node
    /// stops sending to it, and tells every node's worker to read endpoints again.
    func openCircuit(endpoint: String, until: Date) async throws
    /// The circuits opened through `openCircuit` that are still open at `now`, by endpoint.
    func openCircuits(now: Date) async throws -> [String: Date]
    /// Whether other processes deliver from this store too (PostgreSQL): endpoint pacing must then
    /// be counted in the store (`reserveSend`) rather than in this process's memory.
    var sharedByNodes: Bool { get }
}

extension RateLimit {
    /// When the next send may go, given the sends counted in the current window (oldest first),
    /// or nil when there is room now. Jittered over one slot, so waiting deliveries spread out.
    public func nextFree(after sent: [Date]) -> Date? {
        guard sent.count >= count else { return nil }
        return sent[sent.count - count].addingTimeInterval(window).addingTimeInterval(Double.random(in: 0..<(window / Double(count))))
    }
}

/// One HTTP try of a delivery.
public struct AttemptRecord: Sendable, Equatable {
    public var runID: String
    /// 1-based; assigned by the store.
    public var number: Int
    public var endpoint: String
    public var startedAt: Date
    /// The HTTP status, nil when no response came (timeout, refused, SSRF guard).
    public var status: Int?
    public var latencyMillis: Int
    /// The first bytes of the response body.
    public var response: String?
    public var error: String?

    public init(runID: String, number: Int = 0, endpoint: String, startedAt: Date, status: Int?, latencyMillis: Int, response: String?, error: String?) {
        self.runID = runID
        self.number = number
        self.endpoint = endpoint
        self.startedAt = startedAt
        self.status = status
        self.latencyMillis = latencyMillis
        self.response = response
        self.error = error
    }
}

/// What storing an attempt did.
public struct AttemptWrite: Sendable, Equatable {
    /// `.leaseLost`: the attempt was not recorded and nothing moved.
    public var transition: Transition
    /// Since when the endpoint has been failing (nil after a success, or when not applied).
    public var failingSince: Date?

    public init(transition: Transition, failingSince: Date?) {
        self.transition = transition
        self.failingSince = failingSince
    }
}

/// Where a delivery goes after an attempt.
public enum AttemptOutcome: Sendable, Equatable {
    case delivered
    case retry(at: Date, failures: Int)
    case dead(failures: Int)
    /// The endpoint was disabled by this attempt (410 Gone): wait for it to be enabled.
    case paused
}
