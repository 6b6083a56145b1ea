import AsyncHTTPClient
import DoorbellCore
import DoorbellStorage
import DoorbellVerification
import Foundation
import Logging
import NIOCore
import Synchronization

/// Carries out one attempt of a delivery: checks the endpoint's state, circuit and pace, signs the
/// body the Standard Webhooks way, posts it through the SSRF guard, stores the attempt and decides
/// what follows — delivered, retry later, dead, or paused with its endpoint.
final class Deliverer: Sendable {
    private let store: any DoorbellStore
    /// Where a delivery's event is read, once it is about to be sent.
    private let events: EventReads
    private let http: OutboundHTTP
    private let directory: EndpointDirectory
    private let settings: OutboundSettings
    private let retry: RetryPolicy
    private let breakers = Mutex<[String: CircuitBreaker]>([:])
    private let limiter = RateLimiter()
    private let signer = StandardSigner()
    private let logger: Logger
    private let now: @Sendable () -> Date
    /// Stores Doorbell's own notices (`endpoint.disabled`) with their runs and deliveries.
    private let publish: @Sendable (NewEvent) async throws -> Void
    private let metrics: WorkMetrics

    init(store: any DoorbellStore, events: EventReads, http: OutboundHTTP, directory: EndpointDirectory, settings: OutboundSettings, retry: RetryPolicy, logger: Logger, now: @escaping @Sendable () -> Date, metrics: WorkMetrics = .none, publish: @escaping @Sendable (NewEvent) async throws -> Void) {
        self.metrics = metrics
        self.store = store
        self.events = events
        self.http = http
        self.directory = directory
        self.settings = settings
        self.retry = retry
        self.logger = logger
        self.now = now
        self.publish = publish
    }

    /// Every store transition goes through `settle` (the worker's: storage errors retried as writes,
    /// a lost lease ends the delivery with nothing more written or sent).
    func deliver(_ record: RunRecord, lease: Lease, settle: (String, () async throws -> Transition) async -> Bool) async throws {
        guard let endpointID = record.endpoint else { return }
        // Built only when a line is logged.
        func metadata(_ extra: Logger.Metadata = [:]) -> Logger.Metadata {
            extra.merging(["delivery": "\(record.id)", "endpoint": "\(endpointID)"]) { first, _ in first }
        }
        /// A delivery that cannot be attempted at all: recorded as a failed attempt, and dead.
        func bury(_ reason: String) async throws {
            let attempt = AttemptRecord(runID: record.id, endpoint: endpointID, startedAt: now(), status: nil, latencyMillis: 0, response: nil, error: reason)
            _ = await settle(record.id) { try await store.finishAttempt(attempt, outcome: .dead(failures: record.attempt + 1), lease: lease).transition }
        }
        guard var endpoint = directory.endpoint(id: endpointID) else {
            // Its circuit goes with it: the map holds only endpoints that still exist.
            _ = breakers.withLock { $0.removeValue(forKey: endpointID) }
            return try await bury("endpoint '\(endpointID)' no longer exists")
        }
        if !endpoint.enabled {
            // The directory may be older than the row that made this delivery due: an endpoint enabled
            // a moment ago resumes its deliveries, and a claim can race the worker's reload. Read it
            // again before parking the delivery (rare: only on the way to parking).
            try await directory.reload(from: store)
            if let fresh = directory.endpoint(id: endpointID) { endpoint = fresh }
        }
        guard endpoint.enabled else {
            _ = await settle(record.id) { try await store.pauseRun(runID: record.id, lease: lease, reason: "endpoint '\(endpointID)' disabled: \(endpoint.disabledReason ?? "by a person")") }
            return
        }
        let start = now()
        // Another node opened this endpoint's circuit: hold back here too (not an attempt).
        if let until = directory.sharedCircuitOpen(endpointID, at: start) {
            _ = await settle(record.id) { try await store.deferRun(runID: record.id, lease: lease, until: until) }
            return
        }
        let permit: CircuitBreaker.Permit
        switch breakers.withLock({ breakers in
            var breaker = breakers[endpointID] ?? CircuitBreaker(threshold: settings.circuitFailures, cooldown: settings.circuitCooldown, probeLimit: settings.timeout + 60)
            defer { breakers[endpointID] = breaker }
            return breaker.permit(now: start)
        }) {
        case .allow(let granted): permit = granted
        case .wait(let until):
            _ = await settle(record.id) { try await store.deferRun(runID: record.id, lease: lease, until: until) }
            return
        }
        // Allowed: this delivery may be a half-open circuit's probe. Every way out of here reports a
        // verdict — storage throwing before the send included — so no probe leaves the circuit waiting.
        // The verdict carries the permit: a delivery that was not the probe cannot decide for it.
        var reported = false
        /// Until when this verdict opened the circuit (it was not open before), if it did.
        var opened: Date?
        func report(_ verdict: CircuitBreaker.Verdict) {
            reported = true
            opened = breakers.withLock { breakers -> Date? in
                var wasOpen = false
                if case .open? = breakers[endpointID]?.state { wasOpen = true }
                breakers[endpointID]?.record(verdict, of: permit, now: now())
                // Closed or half-open before, open now: this failure opened it (again).
                guard !wasOpen, case .open(let until, _)? = breakers[endpointID]?.state else { return nil }
                return until
            }
        }
        defer { if !reported { report(.storageError) } }
        if !store.sharedByNodes, limiter.needsSeed(endpointID), let limit = endpoint.rateLimit {
            limiter.seed(endpointID, times: try await store.attemptTimes(endpoint: endpointID, since: start.addingTimeInterval(-limit.window)))
        }
        // A "slow down" from the receiver (429, Retry-After) is this node's; the rate limit itself is
        // counted in the store when other nodes deliver from it too, so together they keep it.
        var until = limiter.acquire(endpointID, limit: store.sharedByNodes ? nil : endpoint.rateLimit, now: start)
        if until == nil, store.sharedByNodes, let limit = endpoint.rateLimit {
            until = try await store.reserveSend(endpoint: endpointID, limit: limit, now: start)
        }
        if let until {
            // Not an attempt: nothing was sent. A half-open circuit's probe slot is given back.
            report(.handedBack)
            _ = await settle(record.id) { try await store.deferRun(runID: record.id, lease: lease, until: until) }
            return
        }
        guard let stored = try await events.event(id: record.eventID) else {
            report(.buried)
            return try await bury("event \(record.eventID) not found")
        }
        let result = await send(stored.event, to: endpoint, at: start)
        // Recorded before storing the attempt: the answer is what the circuit goes by.
        switch result.verdict {
        case .delivered: report(.success)
        case .gone: report(.gone)
        case .failed: report(.failure)
        }
        // Every node stops sending to it, not only this one (stores shared by nodes).
        if let opened, store.sharedByNodes {
            do {
                try await store.openCircuit(endpoint: endpointID, until: opened)
            } catch {
                logger.warning("could not share the endpoint's open circuit; other nodes keep their own", metadata: metadata(["error": "\(error)"]))
            }
        }
        let latency = Int(now().timeIntervalSince(start) * 1000)
        metrics.attempt(endpoint: endpointID, status: result.status, took: .milliseconds(latency))
        var attempt = AttemptRecord(runID: record.id, endpoint: endpointID, startedAt: start, status: result.status, latencyMillis: latency, response: result.excerpt, error: result.error)
        let failures = record.attempt + 1
        let outcome: AttemptOutcome
        switch result.verdict {
        case .delivered:
            outcome = .delivered
        case .gone:
            outcome = .paused
        case .failed(let retryable, let retryAfter, let slowDown):
            if slowDown || retryAfter != nil {
                limiter.slowDown(endpointID, until: start.addingTimeInterval(retryAfter ?? 1))
            }
            if retryable, let delay = (endpoint.retry ?? retry).delay(beforeAttempt: failures, retryAfter: retryAfter) {
                outcome = .retry(at: start.addingTimeInterval(delay), failures: failures)
            } else {
                if retryable { attempt.error = "\(attempt.error ?? "failed") (gave up after \(failures) attempts)" }
                outcome = .dead(failures: failures)
            }
        }
        var written = AttemptWrite(transition: .leaseLost, failingSince: nil)
        let recorded = attempt
        // Lease lost: another worker holds the delivery now; its own attempt decides what follows.
        guard await settle(record.id, {
            written = try await store.finishAttempt(recorded, outcome: outcome, lease: lease)
            return written.transition
        }) else { return }
        let failingSince = written.failingSince
        switch outcome {
        case .delivered:
            logger.debug("delivered", metadata: metadata(["status": "\(result.status ?? 0)", "ms": "\(latency)"]))
        case .paused:
            logger.warning("endpoint answered 410 Gone: disabling it", metadata: metadata())
            try await disable(endpoint, reason: "answered 410 Gone", since: nil)
        case .retry, .dead:
            logger.warning("delivery attempt failed", metadata: metadata(["error": "\(attempt.error ?? "")"]))
            if let failingSince, start.timeIntervalSince(failingSince) >= settings.disableAfter {
                try await disable(endpoint, reason: "failing without a success since \(failingSince)", since: failingSince)
            }
        }
    }

    /// Disables the endpoint, pauses what waits for it, and publishes `endpoint.disabled`.
    private func disable(_ endpoint: Endpoint, reason: String, since: Date?) async throws {
        let at = now()
        guard try await store.disableIfEnabled(id: endpoint.id, reason: reason, now: at) else { return }
        try await directory.reload(from: store)
        logger.error("endpoint disabled", metadata: ["endpoint": "\(endpoint.id)", "reason": "\(reason)"])
        var data: [String: Any] = ["endpoint": endpoint.id, "url": RedactedURL(endpoint.url).description, "reason": reason, "disabled_at": Timestamp.iso8601(at)]
        if let since { data["failing_since"] = Timestamp.iso8601(since) }
        let body = try JSONSerialization.data(withJSONObject: data, options: [.sortedKeys, .withoutEscapingSlashes])
        try await publish(NewEvent(
            source: DeliveryPayload.noticeSource, type: "endpoint.disabled", providerID: "endpoint.disabled-\(endpoint.id)-\(at.timeIntervalSince1970)",
            receivedAt: at, headers: [Header(name: "Content-Type", value: "application/json")], body: [UInt8](body)
        ))
    }

    private enum Verdict {
        case delivered
        case gone
        case failed(retryable: Bool, retryAfter: Double?, slowDown: Bool)
    }

    private struct SendResult {
        var verdict: Verdict
        var status: Int?
        var excerpt: String?
        var error: String?
    }

    private func send(_ event: NewEvent, to endpoint: Endpoint, at start: Date) async -> SendResult {
        let body = DeliveryPayload.body(for: event)
        var request = HTTPClientRequest(url: endpoint.url)
        request.method = .POST
        for (name, value) in endpoint.headers { request.headers.add(name: name, value: value) }
        let contentType = DeliveryPayload.isOwn(event) ? "application/json" : (event.headers.first { $0.name == "content-type" }?.value ?? "application/json")
        request.headers.replaceOrAdd(name: "Content-Type", value: contentType)
        request.headers.replaceOrAdd(name: "User-Agent", value: "Doorbell-Webhooks/1")
        let timestamp = Int(start.timeIntervalSince1970)
        // webhook-id is the event's id: the same on every retry and replay, so receivers can dedupe.
        request.headers.replaceOrAdd(name: "webhook-id", value: event.id)
        request.headers.replaceOrAdd(name: "webhook-timestamp", value: String(timestamp))
        request.headers.replaceOrAdd(name: "webhook-signature", value: signer.signatureHeader(id: event.id, timestamp: timestamp, body: body, secrets: endpoint.signingSecrets(now: start)))
        request.body = .bytes(body)
        do {
            // The status decides; of the body only the first KiB is kept (the attempt's excerpt), the
            // rest is read and discarded within the timeout, so a 2xx of any size is a delivery.
            let response = try await http.fetch(request, timeout: settings.timeout, keep: 1024)
            let status = response.status
            let excerpt = String(decoding: response.body, as: UTF8.self)
            switch status {
            case 200..<300: return SendResult(verdict: .delivered, status: status, excerpt: excerpt)
            case 410: return SendResult(verdict: .gone, status: status, excerpt: excerpt, error: "answered 410 Gone: endpoint disabled")
            default:
                let retryAfter = StepExecutor.retryAfter(response.headers.first(name: "Retry-After"))
                let retryable = !(400..<500).contains(status) || [408, 409, 425, 429].contains(status)
                let what = (300..<400).contains(status) ? "redirect not followed" : "not 2xx"
                return SendResult(
                    verdict: .failed(retryable: retryable, retryAfter: retryAfter, slowDown: [429, 502, 504].contains(status)),
                    status: status, excerpt: excerpt, error: "answered \(status) (\(what))"
                )
            }
        } catch let refusal as OutboundRefusal {
            return SendResult(verdict: .failed(retryable: false, retryAfter: nil, slowDown: false), error: refusal.description)
        } catch {
            return SendResult(verdict: .failed(retryable: true, retryAfter: nil, slowDown: false), error: String(describing: error).redactingURLs)
        }
    }
}
