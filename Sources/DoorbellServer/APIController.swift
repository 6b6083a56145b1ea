import Crypto
import DoorbellAutomation
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird

/// `/api/v1`: publishing events, managing endpoints, inspecting and retrying deliveries. Every
/// route needs `Authorization: Bearer <token>` with a token from `api.tokens`.
struct APIController: Sendable {
    let store: any DoorbellStore
    let planner: EventPlanner
    let tokens: [[UInt8]]
    let outbound: OutboundSettings
    let now: @Sendable () -> Date
    static let maxBody = 1 << 20

    init(configuration: Configuration, store: any DoorbellStore, planner: EventPlanner, now: @escaping @Sendable () -> Date) {
        self.store = store
        self.planner = planner
        self.tokens = configuration.api.tokens.map { Array($0.utf8) }
        self.outbound = configuration.outbound
        self.now = now
    }

    func addRoutes(to router: Router<DoorbellRequestContext>) {
        let api = router.group("/api/v1")
        api.post("/events") { request, context in try await guarded(request) { try await publish(request, context) } }
        api.get("/events") { request, _ in try await guarded(request) { try await listEvents(request) } }
        api.get("/endpoints") { request, _ in try await guarded(request) { JSONResponse.object(.ok, ["data": planner.directory.all.map { render($0) }]) } }
        api.post("/endpoints") { request, _ in try await guarded(request) { try await createEndpoint(request) } }
        api.get("/endpoints/:id") { request, context in try await guarded(request) { try await withEndpoint(context) { JSONResponse.object(.ok, render($0)) } } }
        api.get("/endpoints/:id/secret") { request, context in
            try await guarded(request) { try await withEndpoint(context) { JSONResponse.object(.ok, render($0, revealSecrets: true)) } }
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

    private func guarded(_ request: Request, _ handler: () async throws -> Response) async throws -> Response {
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

    private struct APIError: Error {
        let status: HTTPResponse.Status
        let message: String
        init(_ status: HTTPResponse.Status, _ message: String) {
            self.status = status
            self.message = message
        }
    }

    private func jsonBody(_ request: Request) async throws -> [String: Any] {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: Self.maxBody)
        } catch {
            throw APIError(.contentTooLarge, "body larger than \(Self.maxBody) bytes")
        }
        if buffer.readableBytes == 0 { return [:] }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] else {
            throw APIError(.badRequest, "the body must be a JSON object")
        }
        return object
    }

    // MARK: events

    private func publish(_ request: Request, _ context: DoorbellRequestContext) async throws -> Response {
        let body = try await jsonBody(request)
        guard let type = body["type"] as? String else { throw APIError(.badRequest, "type: required, a string") }
        // The same rule as a received webhook's type (EventLimits), so what we publish ingest would accept.
        if let problem = EventLimits.typeProblem(type) { throw APIError(.badRequest, "type: \(problem)") }
        guard let data = body["data"], data is [String: Any] || data is [Any] else {
            throw APIError(.badRequest, "data: required, a JSON object (or array)")
        }
        var key: String?
        if let value = body["idempotency_key"] {
            guard let text = value as? String else { throw APIError(.badRequest, "idempotency_key: a string") }
            if let problem = EventLimits.providerIDProblem(text) { throw APIError(.badRequest, "idempotency_key: \(problem)") }
            key = text
        }
        if let unknown = body.keys.first(where: { !["type", "data", "idempotency_key"].contains($0) }) {
            throw APIError(.badRequest, "\(unknown): unknown field; expected type, data, idempotency_key")
        }
        let encoded = try JSONText.data(data)
        // The idempotency key is the event's provider id within source `api`: the same key twice stores once.
        let event = planner.plan(NewEvent(
            source: DeliveryPayload.apiSource, type: type, providerID: key, receivedAt: now(),
            headers: [Header(name: "Content-Type", value: "application/json")], body: [UInt8](encoded)
        ))
        let outcome = try await store.ingest(event)
        context.logger.debug("published", metadata: ["event": "\(outcome.id)", "type": "\(type)"])
        return IngestReply(id: outcome.id, duplicate: outcome.duplicate).response(status: .accepted)
    }

    /// The most rows one list answers; `?limit=` asks for fewer.
    static let maxPage = 500

    /// `?limit=`: a whole number from 1 to `maxPage` (default 50). Anything else is a 400, not
    /// clamped: a negative limit once meant "no limit" to the store.
    static func pageLimit(_ text: String?) throws -> Int {
        guard let text else { return 50 }
        guard let value = Int(text), (1...maxPage).contains(value) else {
            throw APIError(.badRequest, "limit: a whole number from 1 to \(maxPage), found '\(text.prefix(40))'")
        }
        return value
    }

    private func listEvents(_ request: Request) async throws -> Response {
        let query = EventQuery(
            source: request.uri.queryParameters["source"].map(String.init), type: request.uri.queryParameters["type"].map(String.init),
            limit: try Self.pageLimit(request.uri.queryParameters["limit"].map(String.init))
        )
        let events = try await store.events(matching: query)
        return JSONResponse.object(.ok, ["data": events.map { stored -> [String: Any] in
            ["id": stored.event.id, "source": stored.event.source, "type": stored.event.type, "received_at": Timestamp.iso8601(stored.event.receivedAt)]
        }])
    }

    // MARK: endpoints

    private func withEndpoint(_ context: DoorbellRequestContext, _ body: (Endpoint) async throws -> Response) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let endpoint = try await store.endpoint(id: id) else { throw APIError(.notFound, "unknown endpoint '\(id)'") }
        return try await body(endpoint)
    }

    private func createEndpoint(_ request: Request) async throws -> Response {
        let body = try await jsonBody(request)
        if let id = body["id"], !(id is String) { throw APIError(.badRequest, "id: a string") }
        var endpoint = Endpoint(id: (body["id"] as? String) ?? "ep_" + EventID.generate(prefix: "").suffix(10).lowercased(), url: "")
        try apply(body, to: &endpoint, creating: true)
        if try await store.endpoint(id: endpoint.id) != nil { throw APIError(.conflict, "endpoint '\(endpoint.id)' exists") }
        if endpoint.secrets.isEmpty { endpoint.secrets = [EndpointSecret.generate()] }
        try validate(endpoint)
        try await store.saveEndpoint(endpoint, now: now())
        try await planner.directory.reload(from: store)
        return JSONResponse.object(.created, render(endpoint, revealSecrets: true))
    }

    private func updateEndpoint(_ request: Request, _ context: DoorbellRequestContext) async throws -> Response {
        let body = try await jsonBody(request)
        return try await withEndpoint(context) { endpoint in
            guard !endpoint.fromConfig else { throw APIError(.conflict, "endpoint '\(endpoint.id)' is declared in doorbell.yml; change it there") }
            var endpoint = endpoint
            try apply(body, to: &endpoint, creating: false)
            try validate(endpoint)
            try await store.saveEndpoint(endpoint, now: now())
            try await planner.directory.reload(from: store)
            return JSONResponse.object(.ok, render(endpoint))
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
        let body = try await jsonBody(request)
        return try await withEndpoint(context) { endpoint in
            if let unknown = body.keys.sorted().first(where: { !["secret", "overlap"].contains($0) }) {
                throw APIError(.badRequest, "\(unknown): unknown field; expected secret, overlap")
            }
            var secret = EndpointSecret.generate()
            if let value = body["secret"], !(value is NSNull) {
                guard let given = value as? String else { throw APIError(.badRequest, "secret: a string (whsec_… or whsk_…)") }
                guard EndpointSecret.looksValid(given) else { throw APIError(.badRequest, "secret: expected whsec_<base64 of 24–64 bytes> or whsk_<base64 Ed25519 key>") }
                secret = EndpointSecret(secret: given)
            }
            var overlap = outbound.rotationOverlap
            if let value = body["overlap"], !(value is NSNull) {
                guard let text = value as? String else { throw APIError(.badRequest, "overlap: a duration as a string, such as \"24h\"") }
                guard let seconds = Units.parseDuration(text), seconds >= 0 else { throw APIError(.badRequest, "overlap: not a duration: '\(text.prefix(40))'") }
                overlap = seconds
            }
            guard let rotated = try await store.rotateSecret(endpointID: endpoint.id, to: secret, overlap: overlap, now: now()) else {
                throw APIError(.notFound, "unknown endpoint '\(endpoint.id)'")
            }
            try await planner.directory.reload(from: store)
            return JSONResponse.object(.ok, render(rotated, revealSecrets: true))
        }
    }

    private func setEnabled(_ enabled: Bool, _ context: DoorbellRequestContext) async throws -> Response {
        try await withEndpoint(context) { endpoint in
            _ = try await store.setEndpoint(id: endpoint.id, enabled: enabled, reason: enabled ? nil : "disabled through the API", now: now())
            try await planner.directory.reload(from: store)
            return JSONResponse.object(.ok, render(try await store.endpoint(id: endpoint.id) ?? endpoint))
        }
    }

    private func apply(_ body: [String: Any], to endpoint: inout Endpoint, creating: Bool) throws {
        let allowed = ["id", "url", "events", "secret", "rate_limit", "headers", "enabled", "description", "retry"]
        if let unknown = body.keys.first(where: { !allowed.contains($0) }) {
            throw APIError(.badRequest, "\(unknown): unknown field; expected one of \(allowed.joined(separator: ", "))")
        }
        if !creating, body["id"] != nil { throw APIError(.badRequest, "id: cannot be changed") }
        if !creating, body["secret"] != nil { throw APIError(.badRequest, "secret: use POST /api/v1/endpoints/{id}/rotate-secret") }
        if let url = body["url"] { guard let text = url as? String else { throw APIError(.badRequest, "url: a string") }; endpoint.url = text }
        if creating && endpoint.url.isEmpty { throw APIError(.badRequest, "url: required") }
        if let events = body["events"] { guard let list = events as? [String] else { throw APIError(.badRequest, "events: a list of strings") }; endpoint.events = list }
        if let secret = body["secret"] { guard let text = secret as? String else { throw APIError(.badRequest, "secret: a string") }; endpoint.secrets = [EndpointSecret(secret: text)] }
        if let limit = body["rate_limit"] {
            if limit is NSNull { endpoint.rateLimit = nil } else {
                guard let text = (limit as? String) ?? (Self.isNumber(limit) ? (limit as? Int).map(String.init) : nil), let parsed = RateLimit(text) else {
                    throw APIError(.badRequest, "rate_limit: deliveries per time such as \"10/s\", \"600/m\"")
                }
                endpoint.rateLimit = parsed
            }
        }
        if let headers = body["headers"] { guard let map = headers as? [String: String] else { throw APIError(.badRequest, "headers: an object of strings") }; endpoint.headers = map }
        if let enabled = body["enabled"] { guard let flag = enabled as? Bool else { throw APIError(.badRequest, "enabled: true or false") }; endpoint.enabled = flag; endpoint.disabledReason = flag ? nil : "disabled through the API" }
        if let description = body["description"] {
            guard description is NSNull || description is String else { throw APIError(.badRequest, "description: a string or null") }
            endpoint.description = description as? String
        }
        if let retry = body["retry"] {
            if retry is NSNull { endpoint.retry = nil } else {
                guard let object = retry as? [String: Any], let list = object["schedule"] as? [Any], !list.isEmpty else {
                    throw APIError(.badRequest, "retry: {\"schedule\": [\"0s\", \"5s\", …], \"jitter\": 0.2}")
                }
                var schedule: [Double] = []
                for item in list {
                    guard let seconds = (item as? String).flatMap(Units.parseDuration) ?? (Self.isNumber(item) ? (item as? NSNumber)?.doubleValue : nil), seconds >= 0 else {
                        throw APIError(.badRequest, "retry.schedule: '\(item)' is not a duration")
                    }
                    schedule.append(seconds)
                }
                if let value = object["jitter"], !Self.isNumber(value) { throw APIError(.badRequest, "retry.jitter: a number from 0 to 1") }
                if let unknown = object.keys.sorted().first(where: { !["schedule", "jitter"].contains($0) }) {
                    throw APIError(.badRequest, "retry.\(unknown): unknown field; expected schedule, jitter")
                }
                let jitter = (object["jitter"] as? NSNumber)?.doubleValue ?? RetryPolicy.default.jitter
                guard (0...1).contains(jitter) else { throw APIError(.badRequest, "retry.jitter: a fraction from 0 to 1") }
                endpoint.retry = RetryPolicy(schedule: schedule, jitter: jitter)
            }
        }
    }

    private func validate(_ endpoint: Endpoint) throws {
        if let problem = endpoint.problems().first { throw APIError(.badRequest, "\(problem.field): \(problem.message)") }
    }

    /// An endpoint as the API shows it. Its URL (a Slack-style URL is a token) and header values
    /// (`Authorization`) are secrets like its signing secret: shown whole only by `…/secret`.
    func render(_ endpoint: Endpoint, revealSecrets: Bool = false) -> [String: Any] {
        var object: [String: Any] = [
            "id": endpoint.id, "url": revealSecrets ? endpoint.url : RedactedURL(endpoint.url).description, "events": endpoint.events,
            "headers": revealSecrets ? endpoint.headers : endpoint.headers.mapValues { _ in "…" }, "enabled": endpoint.enabled,
            "from_config": endpoint.fromConfig,
        ]
        object["rate_limit"] = endpoint.rateLimit?.description ?? NSNull()
        object["disabled_reason"] = endpoint.disabledReason ?? NSNull()
        object["description"] = endpoint.description ?? NSNull()
        object["retry"] = endpoint.retry.map { ["schedule": $0.schedule, "jitter": $0.jitter] as [String: Any] } ?? NSNull()
        object["secrets"] = endpoint.secrets.map { secret -> [String: Any] in
            [
                "secret": revealSecrets ? secret.secret : String(secret.secret.prefix(10)) + "…",
                "expires_at": secret.expiresAt.map(Timestamp.iso8601) ?? NSNull(),
            ]
        }
        return object
    }

    // MARK: deliveries

    private func deliveryQuery(_ parameters: [String: String]) throws -> RunQuery {
        var query = RunQuery(endpoint: parameters["endpoint"], deliveries: true, limit: try Self.pageLimit(parameters["limit"]))
        query.eventID = parameters["event"]
        if let status = parameters["status"] {
            query.statuses = try status.split(separator: ",").map { text in
                guard let value = RunStatus(rawValue: String(text)) else { throw APIError(.badRequest, "status: unknown '\(text)'; expected \(RunStatus.allCases.map(\.rawValue).joined(separator: ", "))") }
                return value
            }
        }
        for (name, keyPath) in [("since", \RunQuery.since), ("until", \RunQuery.until)] {
            if let text = parameters[name] {
                guard let date = Timestamp.parse(text) else { throw APIError(.badRequest, "\(name): expected an ISO 8601 time, found '\(text)'") }
                query[keyPath: keyPath] = date
            }
        }
        return query
    }

    private func listDeliveries(_ request: Request) async throws -> Response {
        var parameters: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { parameters[String(key)] = String(value) }
        let runs = try await store.runs(matching: try deliveryQuery(parameters))
        return JSONResponse.object(.ok, ["data": runs.map(renderDelivery)])
    }

    private func showDelivery(_ context: DoorbellRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let run = try await store.run(id: id), run.endpoint != nil else { throw APIError(.notFound, "unknown delivery '\(id)'") }
        var object = renderDelivery(run)
        object["attempts"] = try await store.attempts(runID: id).map { attempt -> [String: Any] in
            [
                "number": attempt.number, "started_at": Timestamp.iso8601(attempt.startedAt), "status": attempt.status ?? NSNull(),
                "latency_ms": attempt.latencyMillis, "response": attempt.response ?? NSNull(), "error": attempt.error ?? NSNull(),
            ]
        }
        return JSONResponse.object(.ok, object)
    }

    private func retryDelivery(_ context: DoorbellRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let run = try await store.run(id: id), run.endpoint != nil else { throw APIError(.notFound, "unknown delivery '\(id)'") }
        // A single retry is explicit: a delivered one is sent again too (same webhook-id).
        let count = try await store.replay(matching: .only(run), fromStart: true, now: now())
        return JSONResponse.object(count > 0 ? .accepted : .conflict, ["retried": count, "status": run.status.rawValue])
    }

    private func retryDeliveries(_ request: Request) async throws -> Response {
        let body = try await jsonBody(request)
        var parameters: [String: String] = [:]
        let allowed = ["endpoint", "event", "status", "since", "until"]
        for (key, value) in body.sorted(by: { $0.key < $1.key }) {
            guard allowed.contains(key) else { throw APIError(.badRequest, "\(key): unknown field; expected one of \(allowed.joined(separator: ", "))") }
            guard let text = value as? String else { throw APIError(.badRequest, "\(key): a string") }
            parameters[key] = text
        }
        var query = try deliveryQuery(parameters)
        if query.statuses.isEmpty { query.statuses = [.dead] }
        query.limit = Int.max
        let count = try await store.replay(matching: query, fromStart: true, now: now())
        return JSONResponse.object(.accepted, ["retried": count])
    }

    /// A JSON number, not a boolean (which JSONSerialization also hands over as an NSNumber).
    static func isNumber(_ value: Any) -> Bool {
        guard let number = value as? NSNumber else { return false }
        return type(of: number) != type(of: NSNumber(value: true))
    }

    private func renderDelivery(_ run: RunRecord) -> [String: Any] {
        [
            "id": run.id, "event_id": run.eventID, "endpoint": run.endpoint ?? "", "status": run.status.rawValue,
            "failures": run.attempt, "next_attempt_at": Timestamp.iso8601(run.dueAt), "last_error": run.lastError ?? NSNull(),
        ]
    }
}
