import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird
import NIOCore
import ServiceLifecycle

/// `/ui/live`: server-sent events for the open pages — `event` for each new event, `failure` for each
/// run or delivery that went dead. Each connection asks the store once a second for what is newer
/// than it last saw. Reading the store (not this process's wake-ups) is what makes it right on both
/// backends and with several nodes: an event another node stored appears all the same.
struct DashboardLive: Sendable {
    let store: any DoorbellStore
    /// Whether the request's session is still valid; asked every `recheckTicks` seconds, so a
    /// stream ends within seconds of sign-out instead of running on to its lifetime.
    var stillSignedIn: @Sendable () async -> Bool = { true }
    static let recheckTicks = 5
    /// A connection ends after this long; EventSource reconnects by itself. Keeps shutdown prompt
    /// and no connection open for ever.
    static let lifetime: Duration = .seconds(300)

    func response() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        Layout.securityHeaders(&headers)
        let store = store
        let stillSignedIn = stillSignedIn
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var lastSequence = try await store.events(matching: EventQuery(limit: 1)).first?.sequence ?? 0
            var seenDead = Set(try await store.runs(matching: RunQuery(statuses: [.dead], limit: 200)).map(\.id))
            try await writer.write(ByteBuffer(string: "retry: 2000\n: connected\n\n"))
            let deadline = ContinuousClock.now + Self.lifetime
            var ticks = 0
            while ContinuousClock.now < deadline, !Task.isCancelled, !Task.isShuttingDownGracefully {
                try await Task.sleep(for: .seconds(1))
                ticks += 1
                if ticks % Self.recheckTicks == 0, !(await stillSignedIn()) { break }
                var text = ""
                let newest = try await store.events(matching: EventQuery(limit: 50)).filter { $0.sequence > lastSequence }
                for stored in newest.reversed() {
                    text += Self.message("event", [
                        "id": stored.event.id, "source": stored.event.source, "type": stored.event.type,
                        "received_at": Timestamp.iso8601(stored.event.receivedAt),
                    ])
                    lastSequence = max(lastSequence, stored.sequence)
                }
                for run in try await store.runs(matching: RunQuery(statuses: [.dead], limit: 50)).reversed() where !seenDead.contains(run.id) {
                    seenDead.insert(run.id)
                    text += Self.message("failure", [
                        "run": run.id, "event_id": run.eventID, "automation": run.endpoint.map { "delivery to \($0)" } ?? run.automation,
                        "error": String((run.lastError ?? "").prefix(300)),
                    ])
                }
                // A comment now and then keeps proxies from closing a quiet stream.
                if text.isEmpty, ticks % 15 == 0 { text = ": keep-alive\n\n" }
                if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
            }
            try await writer.finish(nil)
        })
    }

    /// One SSE message; the data is JSON (the page sets it as text, never as markup).
    static func message(_ name: String, _ fields: [String: String]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return "event: \(name)\ndata: \(data)\n\n"
    }
}
