import DoorbellCore
import DoorbellStorage
import Foundation
import Synchronization

/// The endpoints as this process knows them: read from the store at start, after every change made
/// through the API, and on the worker's idle check (changes made by the CLI in another process).
/// Fan-out reads it on the ingest path, so it is a lock-protected dictionary, never a query.
public final class EndpointDirectory: Sendable {
    private let state = Mutex<[String: Endpoint]>([:])
    /// Circuits another node opened (shared stores only), by endpoint: open until then.
    private let sharedCircuits = Mutex<[String: Date]>([:])

    public init(_ endpoints: [Endpoint] = []) {
        replace(endpoints)
    }

    public func replace(_ endpoints: [Endpoint]) {
        let map = Dictionary(endpoints.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        state.withLock { $0 = map }
    }

    public func reload(from store: any DeliveryStore) async throws {
        replace(try await store.endpoints())
        if store.sharedByNodes {
            let open = try await store.openCircuits(now: Date())
            sharedCircuits.withLock { $0 = open }
        }
    }

    /// Until when another node's open circuit holds this endpoint's deliveries back, if it does.
    public func sharedCircuitOpen(_ id: String, at now: Date) -> Date? {
        sharedCircuits.withLock { $0[id] }.flatMap { $0 > now ? $0 : nil }
    }

    public func endpoint(id: String) -> Endpoint? {
        state.withLock { $0[id] }
    }

    public var all: [Endpoint] {
        state.withLock { Array($0.values) }.sorted { $0.id < $1.id }
    }

    /// Events of our own — published through the API, emitted by automations, Doorbell's notices —
    /// go to every endpoint whose filter takes their type. A received event goes only where its
    /// source relays it (`forward_to`). `only` narrows either to the named endpoints.
    public func deliveries(for event: NewEvent, forwardTo: [String] = [], only: [String] = []) -> [PlannedRun] {
        let endpoints = state.withLock { $0 }
        guard !endpoints.isEmpty else { return [] }
        let candidates: [Endpoint]
        if !only.isEmpty {
            candidates = only.compactMap { endpoints[$0] }
        } else if DeliveryPayload.isOwn(event) {
            candidates = Array(endpoints.values)
        } else {
            candidates = forwardTo.compactMap { endpoints[$0] }
        }
        return candidates.filter { $0.accepts(type: event.type) }.sorted { $0.id < $1.id }
            .map { PlannedRun.delivery(to: $0.id, paused: !$0.enabled) }
    }
}

/// What a delivery's body is. A relayed (received) event goes out byte for byte as it came in;
/// an event of our own goes out in the Standard Webhooks envelope `{"type", "timestamp", "data"}`.
public enum DeliveryPayload {
    public static let apiSource = Source.apiID
    public static let noticeSource = Source.noticesID

    public static func isOwn(_ event: NewEvent) -> Bool {
        event.source == apiSource || event.source == noticeSource || event.depth > 0
    }

    public static func body(for event: NewEvent) -> [UInt8] {
        guard isOwn(event) else { return event.body }
        let type = (try? JSONText.data(event.type)) ?? Array("\"\"".utf8)
        // Our own events are JSON by construction (API-validated, or written by JSONText).
        let data = event.body.isEmpty ? Array("null".utf8) : event.body
        var body = Array("{\"type\":".utf8) + type
        body += Array(",\"timestamp\":\"\(Timestamp.iso8601(event.receivedAt))\",\"data\":".utf8)
        body += data
        body += Array("}".utf8)
        return body
    }
}
