import DoorbellAutomation
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import DoorbellVerification
import Foundation
import Hummingbird
import Logging

/// `POST /hooks/{source}`: address check, bounded body read, signature verification, event
/// identity, durable store; 2xx only after the store has committed.
struct IngestController: Sendable {
    /// A configured source with its scheme and allowlist prepared once at start-up.
    struct PreparedSource: Sendable {
        let source: Source
        let scheme: (any SignatureScheme)?
        let allowed: [CIDR]
    }

    let sources: [String: PreparedSource]
    let publicURL: String?
    let clientAddress: ClientAddress
    let store: any EventStore
    let metrics: IngestMetrics
    let planner: EventPlanner
    let now: @Sendable () -> Date

    init(configuration: Configuration, store: any EventStore, planner: EventPlanner, metrics: IngestMetrics, now: @escaping @Sendable () -> Date) {
        var prepared: [String: PreparedSource] = [:]
        for source in configuration.sources {
            prepared[source.id] = PreparedSource(
                source: source,
                // Keys derived from the source's secrets once here, not per request.
                scheme: source.provider.scheme(hmac: source.hmac)?.preparing(secrets: source.secrets),
                allowed: source.allowIPs.compactMap(CIDR.init)
            )
        }
        self.sources = prepared
        self.publicURL = configuration.server.publicURL
        self.clientAddress = ClientAddress(trustedProxies: configuration.server.trustedProxies.compactMap(CIDR.init))
        self.store = store
        self.metrics = metrics
        self.planner = planner
        self.now = now
    }

    func addRoutes(to router: Router<DoorbellRequestContext>) {
        router.post("/hooks/:source") { request, context in
            try await self.ingest(request, context: context)
        }
    }

    func ingest(_ request: Request, context: DoorbellRequestContext) async throws -> Response {
        let sourceID = context.parameters.get("source") ?? ""
        guard let prepared = sources[sourceID] else {
            return JSONResponse.error(.notFound, "unknown source '\(sourceID)'")
        }
        let source = prepared.source
        let logger = context.logger
        // Built only when a line is logged: setting logger metadata up front cost every request.
        func metadata(_ extra: Logger.Metadata) -> Logger.Metadata {
            extra.merging(["source": "\(source.id)"]) { first, _ in first }
        }

        /// Logs and counts a refusal; the reason never contains a secret or an expected signature.
        func refuse(_ status: HTTPResponse.Status, _ label: String, _ reason: String) -> Response {
            logger.warning("refused", metadata: metadata(["status": "\(status.code)", "reason": "\(reason)"]))
            metrics.rejected(source: source.id, reason: label)
            return JSONResponse.error(status, reason)
        }

        if !prepared.allowed.isEmpty {
            let client = clientAddress.resolve(peer: context.peerAddress, forwardedFor: request.headers.filter { $0.name.canonicalName == "x-forwarded-for" }.map(\.value))
            guard let client, prepared.allowed.contains(where: { $0.contains(client) }) else {
                return refuse(.forbidden, "address_not_allowed", "address \(client ?? "unknown") not allowed")
            }
        }

        let body: [UInt8]
        switch try await readBody(request, limit: source.maxBody) {
        case .tooLarge:
            return refuse(.contentTooLarge, "body_too_large", "body larger than \(source.maxBody) bytes")
        case .complete(let bytes):
            body = bytes
        }

        // Before the signature check: a form's fields are sorted and hashed for Twilio and read for
        // the event's identity, so an unsigned body of a hundred thousand fields is refused unread.
        if FormFields.isForm(contentType: request.headers[.contentType]), FormFields.count(body) > FormFields.maxFields {
            return refuse(.contentTooLarge, "too_many_fields", "form body has more than \(FormFields.maxFields) fields")
        }

        let headers = request.headers.map { Header(name: $0.name.canonicalName, value: $0.value) }
        let signed = SignedRequest(headers: headers, body: body, url: calledURL(request))
        let receivedAt = now()
        if let scheme = prepared.scheme {
            do {
                try scheme.verify(signed, secrets: source.secrets, tolerance: source.tolerance, now: receivedAt)
            } catch {
                return refuse(.unauthorized, error.label, error.description)
            }
        }

        let identity: EventIdentity
        do {
            identity = try EventIdentity.read(from: signed, source: source)
        } catch {
            return refuse(.badRequest, "malformed_body", error.description)
        }

        let event = planner.plan(NewEvent(source: source.id, type: identity.type, providerID: identity.providerID, receivedAt: receivedAt, headers: headers, body: body))
        do {
            let outcome = try await store.ingest(event)
            metrics.received(source: source.id, duplicate: outcome.duplicate)
            logger.debug("stored", metadata: metadata(["event": "\(outcome.id)", "duplicate": "\(outcome.duplicate)"]))
            return IngestReply(id: outcome.id, duplicate: outcome.duplicate).response
        } catch let error as StoreError where error.kind == .rejected {
            // The database refused this one event (a constraint) while the store works. Still 503:
            // the provider retries, and a retry gets a new event id. The detail is logged only.
            logger.error("not stored: the database refused this event", metadata: metadata(["error": "\(error)"]))
            metrics.rejected(source: source.id, reason: "store_rejected")
            return JSONResponse.error(.serviceUnavailable, "this event could not be stored; retry later")
        } catch {
            logger.error("not stored", metadata: metadata(["error": "\(error)"]))
            metrics.rejected(source: source.id, reason: "storage_unavailable")
            return JSONResponse.error(.serviceUnavailable, "storage unavailable; retry later")
        }
    }

    /// The URL the provider called: `server.public_url` + path + query, or, without a public URL,
    /// what the Host header says (right only when nothing rewrites requests on the way).
    private func calledURL(_ request: Request) -> String {
        let target = request.head.path ?? "/"
        if let publicURL { return publicURL + target }
        return "http://\(request.head.authority ?? "localhost")\(target)"
    }

    private enum BodyRead {
        case complete([UInt8])
        case tooLarge
    }

    /// Reads at most `limit` bytes; stops at the first byte past it, so an oversized body is never
    /// buffered (with or without Content-Length). The buffer grows by doubling but never past
    /// `limit`, so even a chunked body cannot make it reserve more than the source allows.
    private func readBody(_ request: Request, limit: Int) async throws -> BodyRead {
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > limit { return .tooLarge }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(declared ?? 0)
        for try await chunk in request.body {
            let needed = bytes.count + chunk.readableBytes
            guard needed <= limit else { return .tooLarge }
            if needed > bytes.capacity { bytes.reserveCapacity(min(limit, max(needed, bytes.capacity * 2))) }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        return .complete(bytes)
    }
}

/// The body of a 200 from `/hooks/{source}`: `{"duplicate":false,"id":"evt_…"}`.
struct IngestReply {
    let id: String
    let duplicate: Bool

    /// Written directly, not through JSONEncoder: this is the hot path, and event ids are ours
    /// (`evt_` + Crockford base32), so they never need escaping.
    var response: Response { response(status: .ok) }

    func response(status: HTTPResponse.Status) -> Response {
        var buffer = ByteBuffer()
        buffer.writeString(duplicate ? #"{"duplicate":true,"id":""# : #"{"duplicate":false,"id":""#)
        buffer.writeString(id)
        buffer.writeString(#""}"#)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }
}
