import Crypto
import DoorbellAutomation
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird

/// `/api/v1`: publishing and inspecting events, runs and their replay, sources, endpoints,
/// deliveries. Every route needs `Authorization: Bearer <token>` with a token from `api.tokens`
/// (the OpenAPI document at `/api/v1/openapi.json` does not). Bodies are the Codable types in
/// `API/`; the document in `OpenAPI.swift` describes them.
struct APIController: Sendable {
    let store: any DoorbellStore
    let planner: EventPlanner
    let tokens: [[UInt8]]
    let outbound: OutboundSettings
    let configuration: Configuration
    let now: @Sendable () -> Date
    static let maxBody = 1 << 20

    init(configuration: Configuration, store: any DoorbellStore, planner: EventPlanner, now: @escaping @Sendable () -> Date) {
        self.store = store
        self.planner = planner
        self.tokens = configuration.api.tokens.map { Array($0.utf8) }
        self.outbound = configuration.outbound
        self.configuration = configuration
        self.now = now
    }

    func addRoutes(to router: Router<DoorbellRequestContext>) {
        let api = router.group("/api/v1")
        api.get("/openapi.json") { _, _ in OpenAPI.response }
        api.post("/events") { request, context in try await guarded(request) { try await publish(request, context) } }
        api.get("/events") { request, _ in try await guarded(request) { try await listEvents(request) } }
        api.get("/events/:id") { request, context in try await guarded(request) { try await showEvent(context) } }
        api.post("/events/:id/replay") { request, context in try await guarded(request) { try await replayEvent(request, context) } }
        api.get("/runs") { request, _ in try await guarded(request) { try await listRuns(request) } }
        api.post("/runs/replay") { request, _ in try await guarded(request) { try await replayRuns(request) } }
        api.get("/runs/:id") { request, context in try await guarded(request) { try await showRun(context) } }
        api.post("/runs/:id/replay") { request, context in try await guarded(request) { try await replayRun(request, context) } }
        api.get("/sources") { request, _ in try await guarded(request) { try await listSources() } }
        api.get("/endpoints") { request, _ in try await guarded(request) { JSONResponse.make(.ok, DataList(data: planner.directory.all.map { EndpointView($0) })) } }
        api.post("/endpoints") { request, _ in try await guarded(request) { try await createEndpoint(request) } }
        api.get("/endpoints/:id") { request, context in try await guarded(request) { try await withEndpoint(context) { JSONResponse.make(.ok, EndpointView($0)) } } }
        api.get("/endpoints/:id/secret") { request, context in
            try await guarded(request) { try await withEndpoint(context) { JSONResponse.make(.ok, EndpointView($0, revealSecrets: true)) } }
        }
        api.patch("/endpoints/:id") { request, context in try await guarded(request) { try await updateEndpoint(request, context) } }
        api.delete("/endpoints/:id") { request, context in try await guarded(request) { try await deleteEndpoint(context) } }
        api.post("/endpoints/:id/rotate-secret") { request, context in try await guarded(request) { try await rotate(request, context) } }
        api.post("/endpoints/:id/enable") { request, context in try await guarded(request) { try await setEnabled(true, context) } }
        api.post("/endpoints/:id/disable") { request, context in try await guarded(request) { try await setEnabled(false, context) } }
        api.get("/deliveries") { request, _ in try await guarded(request) { try await listDeliveries(request) } }
        api.get("/deliveries/:id") { request, context in try await guarded(request) { try await showDelivery(context) } }
        api.post("/deliveries/:id/retry") { request, context in try await guarded(request) { try await retryDelivery(context) } }
        api.post("/deliveries/retry") { request, _ in try await guarded(request) { try await retryDeliveries(request) } }
    }

    // MARK: authentication

    func guarded(_ request: Request, _ handler: () async throws -> Response) async throws -> Response {
        guard !tokens.isEmpty else { return JSONResponse.error(.unauthorized, "the API is off: no api.tokens in doorbell.yml") }
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            return JSONResponse.error(.unauthorized, "missing Authorization: Bearer <token>")
        }
        let given = Array(header.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)
        // Constant-time: compare digests, so neither length nor content leaks through timing.
        let digest = Array(SHA256.hash(data: given))
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
        } catch let error as APIError {
            return JSONResponse.error(error.status, error.message)
        } catch let error as StoreError {
            return JSONResponse.error(.serviceUnavailable, error.description)
        }
    }

    // MARK: events

    private func publish(_ request: Request, _ context: DoorbellRequestContext) async throws -> Response {
        let body = try await decodeBody(PublishEventRequest.self, request, limit: Self.maxBody)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let encoded = try encoder.encode(body.data)
        // The idempotency key is the event's provider id within source `api`: the same key twice stores once.
        let event = planner.plan(NewEvent(
            source: DeliveryPayload.apiSource, type: body.type, providerID: body.idempotencyKey, receivedAt: now(),
            headers: [Header(name: "Content-Type", value: "application/json")], body: [UInt8](encoded)
        ))
        let outcome = try await store.ingest(event)
        context.logger.debug("published", metadata: ["event": "\(outcome.id)", "type": "\(body.type)"])
        return IngestReply(id: outcome.id, duplicate: outcome.duplicate).response(status: .accepted)
    }

    private func listEvents(_ request: Request) async throws -> Response {
        let query = try APIFilters(request).eventQuery
        let page = try await store.eventPage(matching: query)
        return JSONResponse.make(.ok, Page(data: page.events.map(EventSummary.init), nextCursor: page.next.map(String.init)))
    }

    // MARK: endpoints

    private func withEndpoint(_ context: DoorbellRequestContext, _ body: (Endpoint) async throws -> Response) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let endpoint = try await store.endpoint(id: id) else { throw APIError(.notFound, "unknown endpoint '\(id.prefix(200))'") }
        return try await body(endpoint)
    }

    private func createEndpoint(_ request: Request) async throws -> Response {
        let body = try await decodeBody(EndpointRequest.self, request, limit: Self.maxBody)
        var endpoint = Endpoint(id: body.id ?? "ep_" + EventID.generate(prefix: "").suffix(10).lowercased(), url: "")
        try body.apply(to: &endpoint, creating: true)
        if try await store.endpoint(id: endpoint.id) != nil { throw APIError(.conflict, "endpoint '\(endpoint.id)' exists") }
        if endpoint.secrets.isEmpty { endpoint.secrets = [EndpointSecret.generate()] }
        try validate(endpoint)
        try await store.saveEndpoint(endpoint, now: now())
        try await planner.directory.reload(from: store)
        return JSONResponse.make(.created, EndpointView(endpoint, revealSecrets: true))
    }

    private func updateEndpoint(_ request: Request, _ context: DoorbellRequestContext) async throws -> Response {
        let body = try await decodeBody(EndpointRequest.self, request, limit: Self.maxBody)
        return try await withEndpoint(context) { endpoint in
            guard !endpoint.fromConfig else { throw APIError(.conflict, "endpoint '\(endpoint.id)' is declared in doorbell.yml; change it there") }
            var endpoint = endpoint
            try body.apply(to: &endpoint, creating: false)
            try validate(endpoint)
            try await store.saveEndpoint(endpoint, now: now())
            try await planner.directory.reload(from: store)
            return JSONResponse.make(.ok, EndpointView(endpoint))
        }
    }

    private func deleteEndpoint(_ context: DoorbellRequestContext) async throws -> Response {
        try await withEndpoint(context) { endpoint in
            guard !endpoint.fromConfig else { throw APIError(.conflict, "endpoint '\(endpoint.id)' is declared in doorbell.yml; remove it there") }
            _ = try await store.setEndpoint(id: endpoint.id, enabled: false, reason: "deleted", now: now())
            _ = try await store.deleteEndpoint(id: endpoint.id)
            try await planner.directory.reload(from: store)
            return Response(status: .noContent)
        }
    }

    private func rotate(_ request: Request, _ context: DoorbellRequestContext) async throws -> Response {
        let body = try await decodeBody(RotateSecretRequest.self, request, limit: Self.maxBody)
        return try await withEndpoint(context) { endpoint in
            let secret = body.secret.map { EndpointSecret(secret: $0) } ?? EndpointSecret.generate()
            guard let rotated = try await store.rotateSecret(endpointID: endpoint.id, to: secret, overlap: body.overlap ?? outbound.rotationOverlap, now: now()) else {
                throw APIError(.notFound, "unknown endpoint '\(endpoint.id)'")
            }
            try await planner.directory.reload(from: store)
            return JSONResponse.make(.ok, EndpointView(rotated, revealSecrets: true))
        }
    }

    private func setEnabled(_ enabled: Bool, _ context: DoorbellRequestContext) async throws -> Response {
        try await withEndpoint(context) { endpoint in
            _ = try await store.setEndpoint(id: endpoint.id, enabled: enabled, reason: enabled ? nil : "disabled through the API", now: now())
            try await planner.directory.reload(from: store)
            return JSONResponse.make(.ok, EndpointView(try await store.endpoint(id: endpoint.id) ?? endpoint))
        }
    }

    private func validate(_ endpoint: Endpoint) throws {
        if let problem = endpoint.problems().first { throw APIError(.badRequest, "\(problem.field): \(problem.message)") }
    }

    // MARK: deliveries

    private func listDeliveries(_ request: Request) async throws -> Response {
        let query = try APIFilters(request).runQuery(deliveries: true)
        let page = try await store.runPage(matching: query)
        return JSONResponse.make(.ok, Page(data: page.runs.map { DeliveryView($0) }, nextCursor: page.next?.description))
    }

    private func showDelivery(_ context: DoorbellRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let run = try await store.run(id: id), run.endpoint != nil else { throw APIError(.notFound, "unknown delivery '\(id.prefix(200))'") }
        return JSONResponse.make(.ok, DeliveryView(run, attempts: try await store.attempts(runID: id).map(AttemptView.init)))
    }

    private func retryDelivery(_ context: DoorbellRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let run = try await store.run(id: id), run.endpoint != nil else { throw APIError(.notFound, "unknown delivery '\(id.prefix(200))'") }
        // A single retry is explicit: a delivered one is sent again too (same webhook-id).
        let count = try await store.replay(matching: .only(run), fromStart: true, now: now())
        return JSONResponse.make(count > 0 ? .accepted : .conflict, DeliveryRetried(retried: count, status: run.status.rawValue))
    }

    private func retryDeliveries(_ request: Request) async throws -> Response {
        let body = try await decodeBody(BulkRetryRequest.self, request, limit: Self.maxBody)
        var query = try APIFilters(body.filter).runQuery(deliveries: true)
        // Dead ones unless a status is named; never one still pending or in flight.
        if query.statuses.isEmpty { query.statuses = [.dead] }
        guard let selection = query.replayable(fromStart: true) else { return JSONResponse.make(.accepted, DeliveriesRetried(retried: 0, dryRun: body.dryRun ? true : nil)) }
        if body.dryRun { return JSONResponse.make(.ok, DeliveriesRetried(retried: try await store.countRuns(matching: selection), dryRun: true)) }
        try await checkBulk(selection, filter: body.filter, noun: "deliveries")
        let count = try await store.replay(matching: selection, fromStart: true, now: now())
        return JSONResponse.make(.accepted, DeliveriesRetried(retried: count))
    }
}
