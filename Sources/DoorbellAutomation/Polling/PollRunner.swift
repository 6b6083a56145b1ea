import AsyncHTTPClient
import DoorbellCore
import DoorbellStorage
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Carries out polls: fetches every page through the SSRF guard (`OutboundHTTP`), sorts the items
/// against what the poller remembers, and commits the new and changed items' events together with
/// the poller's new state (`PollerStore.commitPoll`). One poll of a poller at a time in this process;
/// across processes the commit is fenced by the poller's generation, so two polls never both emit.
/// A failed poll records its error and back-off and moves nothing else.
public final class PollRunner: Sendable {
    private let store: any DoorbellStore
    private let http: OutboundHTTP
    private let planner: EventPlanner
    private let logger: Logger
    private let now: @Sendable () -> Date
    /// Each poller's remembered items, with the generation they belong to.
    private let memory = Mutex<[String: (generation: Int64, seen: SeenSet)]>([:])
    private let gate = KeyedLock()

    public init(store: any DoorbellStore, http: OutboundHTTP, planner: EventPlanner, logger: Logger, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.http = http
        self.planner = planner
        self.logger = logger
        self.now = now
    }

    /// Polls now. Success and failure are recorded in the store (unless `dryRun`); a failure
    /// is also thrown. `poller.failing` / `poller.recovered` are published when the status changes.
    public func poll(_ poller: Poller, dryRun: Bool = false) async throws -> PollReport {
        await gate.lock(poller.id)
        defer { gate.unlock(poller.id) }
        let started = now()
        do {
            let report = try await attempt(poller, dryRun: dryRun, at: started)
            if !dryRun, report.committed { try await noteRecovery(poller) }
            return report
        } catch let failure as PollFailure {
            // A poll cut off by shutdown is no failure of the API: nothing recorded, it runs again.
            guard !dryRun, !Task.isCancelled else { throw failure }
            try await recordFailure(poller, failure, at: started)
            throw failure
        } catch let error as StoreError {
            throw error
        } catch {
            if Task.isCancelled { throw error }
            let failure = PollFailure(String(describing: error))
            guard !dryRun else { throw failure }
            try await recordFailure(poller, failure, at: started)
            throw failure
        }
    }

    /// Closes the outbound client (once no poll will start again).
    public func shutdown() async {
        try? await http.shutdown()
    }

    /// Forgets the poller's state here and in the store.
    public func reset(_ poller: String) async throws {
        await gate.lock(poller)
        defer { gate.unlock(poller) }
        try await store.resetPoller(poller)
        _ = memory.withLock { $0.removeValue(forKey: poller) }
    }

    private func attempt(_ poller: Poller, dryRun: Bool, at start: Date) async throws -> PollReport {
        let state = try await store.pollerState(poller.id)
        let generation = state?.generation ?? 0
        // No success since the poller began or was reset (a reset keeps the row and its generation).
        let firstRun = state?.lastSuccessAt == nil
        let seen: SeenSet
        if let cached = memory.withLock({ $0[poller.id] }), cached.generation == generation {
            seen = cached.seen
        } else {
            seen = firstRun ? SeenSet() : SeenSet(try await store.seenItems(poller.id))
        }
        var report = PollReport(poller: poller.id, dryRun: dryRun, firstRun: firstRun)
        let values = ["cursor": state?.cursor ?? "", "last_success_at": state?.lastSuccessAt.map(Timestamp.iso8601) ?? ""]
        var url = try Self.firstURL(poller.request, values: values)
        // Page numbers and offsets are asked for explicitly from the first page on.
        switch poller.pagination {
        case .page(let param, let start): url = PollPage.replacingQuery(url, param, String(start)) ?? url
        case .offset(let param, _): url = PollPage.replacingQuery(url, param, "0") ?? url
        default: break
        }
        var headers = HTTPHeaders()
        headers.add(name: "Accept", value: "application/json")
        for (name, value) in poller.request.headers { headers.replaceOrAdd(name: name, value: PollerTemplate.render(value, values: values)) }
        if let auth = poller.request.auth { headers.replaceOrAdd(name: "Authorization", value: auth.headerValue) }
        // Conditional requests only where page 1's validator covers everything the poll reads: a
        // single page, or a walk starting at the kept {{cursor}}. Elsewhere a 304 on page 1 would
        // hide new items on later pages.
        let conditionalRequests = Self.isSinglePage(poller.pagination) || Self.usesCursor(poller.request)
        var conditional = headers
        if !firstRun, conditionalRequests {
            if let etag = state?.etag { conditional.add(name: "If-None-Match", value: etag) }
            if let modified = state?.lastModified { conditional.add(name: "If-Modified-Since", value: modified) }
        }
        var diff = PollDiff(poller: poller)
        var changes: [PolledItem] = []
        /// Unchanged items (ids and versions only), re-remembered when the store must forget some.
        var unchanged: [SeenItem] = []
        /// Bytes of the item bodies this poll will emit, against `Poller.maxPollBytes`.
        var pollBytes = 0
        var trimmed = 0
        var cursor: String?
        var etag: String?
        var lastModified: String?
        var offset = 0
        var visited: Set<String> = []
        let clock = ContinuousClock()
        var diffing: Duration = .zero
        for pageIndex in 0..<poller.maxPages {
            visited.insert(url.absoluteString)
            var request = HTTPClientRequest(url: url.absoluteString)
            request.method = HTTPMethod(rawValue: poller.request.method)
            request.headers = pageIndex == 0 ? conditional : headers
            let response: OutboundResponse
            do {
                response = try await http.fetch(request, timeout: poller.request.timeout, keep: poller.maxPageBytes + 1)
            } catch {
                throw PollFailure("\(RedactedURL(url.absoluteString)): \(Self.describe(error))")
            }
            if pageIndex == 0 && response.status == 304 {
                report.notModified = true
                break
            }
            guard (200..<300).contains(response.status) else {
                let retryAfter = StepExecutor.retryAfter(response.headers.first(name: "Retry-After"))
                throw PollFailure("\(RedactedURL(url.absoluteString)) answered HTTP \(response.status)", retryAfter: retryAfter)
            }
            guard response.ending == .complete else { throw PollFailure("\(RedactedURL(url.absoluteString)): the answer did not arrive in full within \(poller.request.timeout) s") }
            guard response.body.count <= poller.maxPageBytes else { throw PollFailure("\(RedactedURL(url.absoluteString)): a page is larger than max_page_bytes (\(poller.maxPageBytes))") }
            report.pages += 1
            if pageIndex == 0, conditionalRequests {
                etag = response.headers.first(name: "ETag")
                lastModified = response.headers.first(name: "Last-Modified")
            }
            let page: PollPage
            do {
                page = try PollPage.read(body: response.body, url: url, linkHeaders: response.headers[canonicalForm: "Link"].map(String.init), poller: poller, pageIndex: pageIndex, offset: offset)
            } catch {
                throw PollFailure("\(RedactedURL(url.absoluteString)): \(error)")
            }
            report.items += page.items.count
            let began = clock.now
            let classified = diff.classify(page.items, against: seen)
            diffing += clock.now - began
            for var item in classified {
                if item.kind == .unchanged {
                    unchanged.append(SeenItem(id: item.id, version: item.version))
                    continue
                }
                // Only the bodies of items to emit are kept, as JSON bytes; the parsed value goes.
                if Self.mayEmit(item, poller: poller, firstRun: firstRun) {
                    if let body = try? JSONText.data(item.value) {
                        if body.count <= poller.maxItemBytes {
                            item.body = body
                            pollBytes += body.count
                        } else {
                            logger.warning("poller item larger than max_item_bytes skipped", metadata: ["poller": "\(poller.id)", "item": "\(item.id)", "bytes": "\(body.count)"])
                        }
                    }
                }
                item.value = NSNull()
                changes.append(item)
            }
            // first_run {last: N}: only the last N so far keep their bodies.
            if firstRun, case .last(let count) = poller.firstRun, changes.count - count > trimmed {
                for index in trimmed..<(changes.count - count) {
                    pollBytes -= changes[index].body?.count ?? 0
                    changes[index].body = nil
                }
                trimmed = changes.count - count
            }
            if let pageCursor = page.cursor { cursor = pageCursor }
            if case .offset(_, let overlap) = poller.pagination { offset += max(1, page.items.count - overlap) }
            guard let next = page.next, !visited.contains(next.absoluteString) else { break }
            if pageIndex == poller.maxPages - 1 { report.morePages = true }
            // The rest waits for the next poll: what was read commits now (and is remembered), so
            // each poll gets further. Keeps one poll's memory bounded whatever the API lists.
            if pollBytes > Poller.maxPollBytes {
                report.morePages = true
                break
            }
            url = next
        }
        if report.morePages {
            logger.warning("poll stopped before the last page (max_pages or the poll's byte budget); the rest is read next poll", metadata: [
                "poller": "\(poller.id)", "pages": "\(report.pages)", "max_pages": "\(poller.maxPages)",
            ])
        }
        if diff.seenThisPoll.count > poller.maxSeen {
            logger.warning("one poll lists more items than max_seen; the oldest remembered are forgotten and found new again", metadata: [
                "poller": "\(poller.id)", "items": "\(diff.seenThisPoll.count)", "max_seen": "\(poller.maxSeen)",
            ])
        }
        report.diffSeconds = Double(diffing.components.seconds) + Double(diffing.components.attoseconds) / 1e18
        report.skipped = diff.skipped

        // What to emit: on a first run as `first_run` says, else new items and (with emit_changed) changed ones.
        var emitting: [PolledItem]
        if firstRun {
            switch poller.firstRun {
            case .baseline: emitting = []
            case .all: emitting = changes
            case .last(let count): emitting = Array(changes.suffix(count))
            }
        } else {
            emitting = changes.filter { $0.kind == .new || poller.emitChanged != nil }
        }
        var events: [NewEvent] = []
        /// Items to emit that could not be (too large, not serialisable): not remembered, so they
        /// are emitted once they can be.
        var notEmitted: Set<UInt64> = []
        for item in emitting {
            guard let body = item.body else {
                notEmitted.insert(item.idHash)
                continue
            }
            let changed = item.kind == .changed && !firstRun
            let event = NewEvent(
                source: poller.id, type: changed ? poller.emitChanged! : poller.emit, providerID: changed ? "\(item.id)@\(item.versionText)" : item.id,
                receivedAt: start, headers: [Header(name: "Content-Type", value: "application/json")], body: body
            )
            events.append(planner.plan(event))
            report.emitted.append(PollReport.Emitted(itemID: item.id, type: event.type, providerID: event.providerID ?? item.id, eventID: event.id, kind: changed ? "changed" : "new"))
        }
        report.newItems = changes.count { $0.kind == .new }
        report.changedItems = changes.count { $0.kind == .changed }
        guard !dryRun else { return report }

        let remembered = changes.filter { !notEmitted.contains($0.idHash) }
        var seenItems = remembered.map { SeenItem(id: $0.id, version: $0.version) }
        // The store forgets the least recently written ids beyond max_seen: when it will, the
        // unchanged ids listed now are written again, so the ones forgotten are those gone from the API.
        if seen.count + remembered.count { $0.kind == .new } > poller.maxSeen { seenItems += unchanged }
        let commit = PollCommit(
            poller: poller.id, expectedGeneration: generation, events: events, seen: seenItems,
            cursor: cursor, etag: etag, lastModified: lastModified, at: start, nextPollAt: poller.schedule.next(after: start), maxSeen: poller.maxSeen
        )
        let outcome = try await store.commitPoll(commit)
        guard outcome.committed, let newState = outcome.state else {
            logger.notice("poll not committed: another poll or a reset of this poller committed first", metadata: ["poller": "\(poller.id)"])
            memory.withLock { _ = $0.removeValue(forKey: poller.id) }
            report.emitted = []
            return report
        }
        report.committed = true
        for (index, stored) in outcome.stored.enumerated() where index < report.emitted.count {
            report.emitted[index].eventID = stored.id
            report.emitted[index].duplicate = stored.duplicate
        }
        var updated = seen
        for item in remembered { updated.remember(idHash: item.idHash, version: item.version) }
        // The store forgot its oldest items: this copy no longer matches it, read it again next time.
        if newState.itemsSeen < updated.count {
            memory.withLock { _ = $0.removeValue(forKey: poller.id) }
        } else {
            memory.withLock { $0[poller.id] = (newState.generation, updated) }
        }
        report.nextPollAt = newState.nextPollAt
        if !events.isEmpty || report.skipped > 0 {
            logger.info("polled", metadata: [
                "poller": "\(poller.id)", "pages": "\(report.pages)", "items": "\(report.items)", "emitted": "\(outcome.stored.count { !$0.duplicate })",
                "skipped_without_id": "\(report.skipped)",
            ])
        }
        return report
    }

    private func recordFailure(_ poller: Poller, _ failure: PollFailure, at start: Date) async throws {
        let previous = try await store.pollerState(poller.id)
        let failures = (previous?.failures ?? 0) + 1
        let delay = PollBackoff.delay(failures: failures, interval: poller.schedule.nominalInterval, cap: poller.backoffMax, retryAfter: failure.retryAfter)
        let state = try await store.recordPollFailure(poller.id, error: failure.message, at: start, nextPollAt: start.addingTimeInterval(delay))
        logger.warning("poll failed", metadata: ["poller": "\(poller.id)", "error": "\(failure.message)", "failures": "\(state.failures)", "retry_in": "\(Int(delay.rounded()))s"])
        let since = state.lastSuccessAt ?? state.failingSince ?? start
        guard !state.failing, now().timeIntervalSince(since) >= poller.failingAfter else { return }
        let notice = try notice(type: "poller.failing", poller: poller.id, at: start, data: [
            "poller": poller.id, "last_success_at": state.lastSuccessAt.map(Timestamp.iso8601) ?? NSNull(), "failing_since": Timestamp.iso8601(since),
            "failures": state.failures, "last_error": failure.message,
        ])
        guard try await store.setPollerFailing(poller.id, failing: true, notice: notice) else { return }
        logger.error("poller failing", metadata: ["poller": "\(poller.id)", "since": "\(Timestamp.iso8601(since))"])
    }

    private func noteRecovery(_ poller: Poller) async throws {
        // Most polls: nothing to do, and no write (the flag is read with the state next time).
        guard let state = try await store.pollerState(poller.id), state.failing else { return }
        let notice = try notice(type: "poller.recovered", poller: poller.id, at: now(), data: [
            "poller": poller.id, "last_success_at": state.lastSuccessAt.map(Timestamp.iso8601) ?? NSNull(),
        ])
        guard try await store.setPollerFailing(poller.id, failing: false, notice: notice) else { return }
        logger.notice("poller recovered", metadata: ["poller": "\(poller.id)"])
    }

    /// Doorbell's own notice (`doorbell:poller.failing`), planned like any event so automations
    /// match it; stored with the flag's change (`setPollerFailing`).
    private func notice(type: String, poller: String, at: Date, data: [String: Any]) throws -> NewEvent {
        let body = try JSONSerialization.data(withJSONObject: data, options: [.sortedKeys, .withoutEscapingSlashes])
        let event = NewEvent(
            source: Source.noticesID, type: type, providerID: "\(type)-\(poller)-\(at.millisSince1970)", receivedAt: at,
            headers: [Header(name: "Content-Type", value: "application/json")], body: [UInt8](body)
        )
        return planner.plan(event)
    }

    static func firstURL(_ request: PollerRequest, values: [String: String]) throws(PollFailure) -> URL {
        // A value (a cursor from the API's answer) must neither pick the host nor break out of its
        // place in the URL: never in the authority, and percent-encoded (`&`, `#`, `/` stay data).
        if let schemeEnd = request.url.range(of: "://") {
            let rest = request.url[schemeEnd.upperBound...]
            let authority = request.url[..<(rest.firstIndex(where: { "/?#".contains($0) }) ?? rest.endIndex)]
            if authority.contains("{{") { throw PollFailure("{{…}} values may not be used in the request URL's scheme, host or port") }
        }
        let encoded = values.mapValues { $0.addingPercentEncoding(withAllowedCharacters: Self.unreserved) ?? "" }
        let rendered = PollerTemplate.render(request.url, values: encoded)
        guard var components = URLComponents(string: rendered) else { throw PollFailure("the request URL is not a URL after filling in its template") }
        if !request.query.isEmpty {
            // Appended already encoded: the URL's own query stays byte for byte as written.
            var parts = (components.percentEncodedQuery ?? "").split(separator: "&").map(String.init)
            for (name, value) in request.query { parts.append(PollPage.queryPair(name, PollerTemplate.render(value, values: values))) }
            components.percentEncodedQuery = parts.joined(separator: "&")
        }
        guard let url = components.url else { throw PollFailure("the request URL is not a URL after filling in its template") }
        return url
    }

    /// RFC 3986 unreserved characters: the only ones a template value keeps unencoded in the URL.
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    static func isSinglePage(_ pagination: PollerPagination) -> Bool {
        if case .none = pagination { return true }
        return false
    }

    /// Whether the request sends the kept `{{cursor}}` (URL, query or headers).
    static func usesCursor(_ request: PollerRequest) -> Bool {
        ([request.url] + request.query.map(\.1) + request.headers.map(\.1)).contains { PollerTemplate.names(in: $0).contains("cursor") }
    }

    /// Whether an item, new or changed, may become an event in this poll.
    static func mayEmit(_ item: PolledItem, poller: Poller, firstRun: Bool) -> Bool {
        if firstRun {
            if case .baseline = poller.firstRun { return false }
            return true
        }
        return item.kind == .new || poller.emitChanged != nil
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout { return "no answer in time" }
        return String(describing: error)
    }
}

extension Date {
    var millisSince1970: Int64 { Timestamp.saturatingMillis(self) }
}

/// A poll that failed: nothing was committed. `retryAfter`: the API asked for this many seconds.
public struct PollFailure: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let retryAfter: Double?
    public init(_ message: String, retryAfter: Double? = nil) {
        self.message = message
        self.retryAfter = retryAfter
    }
    public var description: String { message }
}

/// What a poll did (or, dry, would do).
public struct PollReport: Sendable {
    public struct Emitted: Sendable, Equatable {
        public var itemID: String
        public var type: String
        public var providerID: String
        /// The stored event's id (a duplicate's: the earlier event's); in a dry run the id it would get.
        public var eventID: String
        /// "new" or "changed".
        public var kind: String
        /// An earlier event had the same provider id: nothing new was stored.
        public var duplicate = false
    }

    public var poller: String
    public var dryRun: Bool
    public var firstRun: Bool
    public var committed = false
    /// The first page answered 304 Not Modified.
    public var notModified = false
    public var pages = 0
    public var items = 0
    public var newItems = 0
    public var changedItems = 0
    /// Items without a usable id.
    public var skipped = 0
    /// `max_pages` stopped the walk before the last page.
    public var morePages = false
    public var emitted: [Emitted] = []
    /// Time spent sorting items (not fetching or parsing).
    public var diffSeconds = 0.0
    public var nextPollAt: Date?

    public init(poller: String, dryRun: Bool, firstRun: Bool) {
        self.poller = poller
        self.dryRun = dryRun
        self.firstRun = firstRun
    }
}

/// One holder per key at a time, waiting in order (at most one poll of a poller in flight here).
final class KeyedLock: Sendable {
    private let state = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    func lock(_ key: String) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state -> Bool in
                if state[key] == nil {
                    state[key] = []
                    return true
                }
                state[key]!.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    func unlock(_ key: String) {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard var waiting = state[key] else { return nil }
            if waiting.isEmpty {
                state[key] = nil
                return nil
            }
            let first = waiting.removeFirst()
            state[key] = waiting
            return first
        }
        next?.resume()
    }
}
