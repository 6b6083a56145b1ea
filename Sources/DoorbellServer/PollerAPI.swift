import Crypto
import DoorbellAutomation
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird

/// `/api/v1/pollers`: status, poll now (or a dry run), reset. Bearer token as the rest of the API.
struct PollerAPI: Sendable {
    let service: PollerService
    let store: any DoorbellStore
    let tokens: [[UInt8]]

    init(configuration: Configuration, service: PollerService, store: any DoorbellStore) {
        self.service = service
        self.store = store
        self.tokens = configuration.api.tokens.map { Array($0.utf8) }
    }

    func addRoutes(to router: Router<DoorbellRequestContext>) {
        let api = router.group("/api/v1/pollers")
        api.get("") { request, _ in try await guarded(request) { try await list() } }
        api.get("/:id") { request, context in try await guarded(request) { try await show(context) } }
        api.post("/:id/run") { request, context in try await guarded(request) { try await run(request, context) } }
        api.post("/:id/reset") { request, context in try await guarded(request) { try await reset(context) } }
    }

    private func list() async throws -> Response {
        let states = Dictionary(try await store.pollerStates().map { ($0.poller, $0) }, uniquingKeysWith: { first, _ in first })
        return JSONResponse.make(.ok, PollerList(data: service.pollers.map { PollerStatus($0, state: states[$0.id]) }))
    }

    private func show(_ context: DoorbellRequestContext) async throws -> Response {
        let poller = try found(context)
        return JSONResponse.make(.ok, PollerStatus(poller, state: try await store.pollerState(poller.id)))
    }

    private func run(_ request: Request, _ context: DoorbellRequestContext) async throws -> Response {
        let poller = try found(context)
        let body = try await request.body.collect(upTo: 64 * 1024)
        var dryRun = false
        if body.readableBytes > 0 {
            guard let decoded = try? JSONDecoder().decode(PollRunRequest.self, from: Data(buffer: body)) else {
                return JSONResponse.error(.badRequest, "expected {\"dry_run\": true|false} or no body")
            }
            dryRun = decoded.dryRun ?? false
        }
        do {
            let report = try await service.runner.poll(poller, dryRun: dryRun)
            return JSONResponse.make(.ok, PollRunResponse(report))
        } catch let failure as PollFailure {
            return JSONResponse.error(.badGateway, "poll failed: \(failure.message)")
        }
    }

    private func reset(_ context: DoorbellRequestContext) async throws -> Response {
        let poller = try found(context)
        try await service.runner.reset(poller.id)
        return JSONResponse.make(.ok, PollerResetResponse(id: poller.id, reset: true))
    }

    private func found(_ context: DoorbellRequestContext) throws -> Poller {
        guard let id = context.parameters.get("id"), let poller = service.poller(id: id) else { throw NotFound() }
        return poller
    }

    private struct NotFound: Error {}

    private func guarded(_ request: Request, _ handler: () async throws -> Response) async throws -> Response {
        guard !tokens.isEmpty else { return JSONResponse.error(.unauthorized, "the API is off: no api.tokens in doorbell.yml") }
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            return JSONResponse.error(.unauthorized, "missing Authorization: Bearer <token>")
        }
        // Constant-time, as the rest of the API: digests compared byte by byte, every token.
        let digest = Array(SHA256.hash(data: Array(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)))
        var matched = false
        for token in tokens {
            let expected = Array(SHA256.hash(data: token))
            var difference: UInt8 = 0
            for index in 0..<expected.count { difference |= expected[index] ^ digest[index] }
            matched = matched || difference == 0
        }
        guard matched else { return JSONResponse.error(.unauthorized, "unknown API token") }
        do {
            return try await handler()
        } catch is NotFound {
            return JSONResponse.error(.notFound, "no such poller")
        } catch let error as StoreError {
            return JSONResponse.error(.serviceUnavailable, error.summary)
        }
    }
}

/// One poller's status: `GET /api/v1/pollers`, `doorbell pollers list --json`. Absent times are null.
public struct PollerStatus: Codable, Sendable, Equatable {
    public var id: String
    public var schedule: String
    public var lastPollAt: String?
    public var lastSuccessAt: String?
    public var lastError: String?
    public var itemsSeen: Int
    public var nextPollAt: String?
    public var failing: Bool

    enum CodingKeys: String, CodingKey {
        case id, schedule, failing
        case lastPollAt = "last_poll_at", lastSuccessAt = "last_success_at", lastError = "last_error", itemsSeen = "items_seen", nextPollAt = "next_poll_at"
    }

    public init(_ poller: Poller, state: PollerState?) {
        id = poller.id
        schedule = poller.schedule.description
        lastPollAt = state?.lastPollAt.map(Timestamp.iso8601)
        lastSuccessAt = state?.lastSuccessAt.map(Timestamp.iso8601)
        lastError = state?.lastError
        itemsSeen = state?.itemsSeen ?? 0
        nextPollAt = state?.nextPollAt.map(Timestamp.iso8601)
        failing = state?.failing ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(schedule, forKey: .schedule)
        try container.encode(lastPollAt, forKey: .lastPollAt)
        try container.encode(lastSuccessAt, forKey: .lastSuccessAt)
        try container.encode(lastError, forKey: .lastError)
        try container.encode(itemsSeen, forKey: .itemsSeen)
        try container.encode(nextPollAt, forKey: .nextPollAt)
        try container.encode(failing, forKey: .failing)
    }
}

/// `GET /api/v1/pollers` → `{"data": [status…]}`.
public struct PollerList: Codable, Sendable {
    public var data: [PollerStatus]
}

/// `POST /api/v1/pollers/{id}/run` body (optional).
public struct PollRunRequest: Codable, Sendable {
    public var dryRun: Bool?
    enum CodingKeys: String, CodingKey { case dryRun = "dry_run" }
}

/// What a poll emitted (or, dry, would emit).
public struct PollRunResponse: Codable, Sendable {
    public struct Emitted: Codable, Sendable {
        public var itemID: String
        public var type: String
        public var providerID: String
        public var eventID: String
        /// "new" or "changed".
        public var kind: String
        /// An event with this provider id existed: nothing new was stored.
        public var duplicate: Bool
        enum CodingKeys: String, CodingKey {
            case type, kind, duplicate
            case itemID = "item_id", providerID = "provider_id", eventID = "event_id"
        }
    }

    public var poller: String
    public var dryRun: Bool
    /// False for a dry run, and when another poll or a reset committed first.
    public var committed: Bool
    public var firstRun: Bool
    public var notModified: Bool
    /// `max_pages` (or the poll's byte budget) stopped the walk before the last page.
    public var morePages: Bool
    public var pages: Int
    public var items: Int
    public var newItems: Int
    public var changedItems: Int
    public var emitted: [Emitted]
    /// Time spent sorting items against what the poller remembers (not fetching or parsing).
    public var diffSeconds: Double

    enum CodingKeys: String, CodingKey {
        case poller, committed, pages, items, emitted
        case dryRun = "dry_run", firstRun = "first_run", notModified = "not_modified", newItems = "new_items", changedItems = "changed_items", morePages = "more_pages"
        case diffSeconds = "diff_seconds"
    }

    public init(_ report: PollReport) {
        poller = report.poller
        dryRun = report.dryRun
        committed = report.committed
        firstRun = report.firstRun
        notModified = report.notModified
        morePages = report.morePages
        pages = report.pages
        items = report.items
        newItems = report.newItems
        changedItems = report.changedItems
        diffSeconds = report.diffSeconds
        emitted = report.emitted.map { Emitted(itemID: $0.itemID, type: $0.type, providerID: $0.providerID, eventID: $0.eventID, kind: $0.kind, duplicate: $0.duplicate) }
    }
}

/// `POST /api/v1/pollers/{id}/reset`.
public struct PollerResetResponse: Codable, Sendable {
    public var id: String
    public var reset: Bool
}
