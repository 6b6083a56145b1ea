import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird

/// `/ui`: sources, endpoints, pollers, the queue, what needs attention, and events as they arrive.
enum OverviewView {
    static func render(
        _ controller: DashboardController, signedIn: SignedIn, now: Date, activity: [String: SourceActivity], endpointActivity: [String: EndpointActivity],
        queue: QueueCounts, endpoints: [Endpoint], circuits: [String: Date], dead: [RunRecord], recent: [StoredEvent], pollers: [PollerState]
    ) -> Response {
        let sources = controller.configuration.sources.map { source -> HTML in
            let seen = activity[source.id]
            return """
            <tr><td><a href="/ui/events?source=\(PercentEncoding.encode(source.id))">\(source.id)</a></td><td>\(source.provider.rawValue)</td>
            <td>\(seen.map { Format.ago($0.lastReceivedAt, now: now) } ?? "never")</td><td>\(seen?.receivedSince ?? 0)</td></tr>
            """
        }
        let endpointRows = endpoints.map { endpoint -> HTML in
            let stats = endpointActivity[endpoint.id]
            let rate = stats.map { $0.attempts == 0 ? "–" : "\(Int((Double($0.succeeded) / Double($0.attempts) * 100).rounded())) % of \($0.attempts)" } ?? "no attempts"
            let circuit: HTML = circuits[endpoint.id].map { "\(Layout.status("open")) until \(Format.time($0))" } ?? Layout.status("closed")
            return """
            <tr><td><a href="/ui/deliveries?endpoint=\(PercentEncoding.encode(endpoint.id))">\(endpoint.id)</a></td>
            <td>\(Layout.status(endpoint.enabled ? "enabled" : "disabled"))</td><td>\(circuit)</td><td>\(rate)</td></tr>
            """
        }
        func queueCell(_ counts: [RunStatus: Int], _ status: RunStatus) -> HTML { "<td>\(counts[status] ?? 0)</td>" }
        let queueRows: [HTML] = [("automation runs", queue.runs, "/ui/runs"), ("deliveries", queue.deliveries, "/ui/deliveries")].map { name, counts, path in
            """
            <tr><td>\(name)</td>\(queueCell(counts, .pending))\(queueCell(counts, .running))\(queueCell(counts, .waitingRetry))\(queueCell(counts, .paused))
            <td><a href="\(path)?status=dead">\(counts[.dead] ?? 0)</a></td></tr>
            """
        }
        var attention: [HTML] = dead.map { run in
            "<li>\(Layout.status("dead")) <a href=\"/ui/events/\(PercentEncoding.encode(run.eventID))\">\(run.endpoint.map { "delivery to \($0)" } ?? run.automation)</a> <span class=\"muted\">\(Format.excerpt(run.lastError ?? "", 160))</span></li>"
        }
        attention += endpoints.filter { !$0.enabled }.map { endpoint in
            "<li>\(Layout.status("disabled")) endpoint <a href=\"/ui/endpoints\">\(endpoint.id)</a> <span class=\"muted\">\(endpoint.disabledReason ?? "")</span></li>"
        }
        let states = Dictionary(pollers.map { ($0.poller, $0) }, uniquingKeysWith: { first, _ in first })
        let pollerRows = controller.configuration.pollers.map { poller -> HTML in
            let state = states[poller.id]
            let health: HTML = state.map { state in
                state.failing || state.failures > 0
                    ? HTML("\(Layout.status(state.failing ? "dead" : "waiting_retry")) \(state.failures) failure\(state.failures == 1 ? "" : "s"): <span class=\"muted\">\(Format.excerpt(state.lastError ?? "", 160))</span>")
                    : Layout.status("succeeded")
            } ?? HTML("<span class=\"muted\">not polled yet</span>")
            return """
            <tr><td><a href="/ui/events?source=\(PercentEncoding.encode(poller.id))">\(poller.id)</a></td><td>\(poller.emit)</td>
            <td>\(state?.lastSuccessAt.map { Format.ago($0, now: now) } ?? "never")</td><td>\(state?.nextPollAt.map(Format.time) ?? "–")</td><td>\(health)</td></tr>
            """
        }
        let recentRows = recent.map { stored -> HTML in
            "<tr data-event-id=\"\(stored.event.id)\"><td>\(Format.time(stored.event.receivedAt))</td><td>\(stored.event.source)</td><td>\(stored.event.type)</td><td><a href=\"/ui/events/\(PercentEncoding.encode(stored.event.id))\">\(stored.event.id)</a></td></tr>"
        }
        let content: HTML = """
        <h1>Overview</h1>
        <div class="grid">
        <section class="card"><h2>Needs attention</h2><ul class="plain" id="live-failures">\(attention.isEmpty ? "<li class=\"muted\" id=\"all-well\">Nothing: no dead runs, no disabled endpoints.</li>" : HTML.empty)\(attention)</ul>
        \(HTML.when(!dead.isEmpty, "<p><a href=\"/ui/runs?status=dead\">Dead runs</a> · <a href=\"/ui/deliveries?status=dead\">dead deliveries</a></p>"))</section>
        <section class="card"><h2>Queue</h2><table><thead><tr><th></th><th>pending</th><th>running</th><th>waiting</th><th>paused</th><th>dead</th></tr></thead><tbody>\(queueRows)</tbody></table></section>
        </div>
        <section class="card"><h2>Sources</h2>
        <table><thead><tr><th>source</th><th>provider</th><th>last event</th><th>received in 24 h</th></tr></thead><tbody>\(sources)</tbody></table>
        <p class="muted">Refused requests (bad signature, address, size) are not stored, so they are not counted here: each node counts them in
        <code>doorbell_rejections_total</code> on <code>/metrics</code>.</p></section>
        <section class="card"><h2>Endpoints</h2>
        \(endpointRows.isEmpty ? HTML("<p class=\"muted\">No endpoints. <a href=\"/ui/endpoints/new\">Add one</a>.</p>") : HTML("<table><thead><tr><th>endpoint</th><th>state</th><th>circuit</th><th>success in 24 h</th></tr></thead><tbody>\(endpointRows)</tbody></table>"))</section>
        <section class="card"><h2>Pollers</h2>
        \(pollerRows.isEmpty ? HTML("<p class=\"muted\">No pollers in doorbell.yml.</p>") : HTML("<table><thead><tr><th>poller</th><th>emits</th><th>last success</th><th>next poll</th><th>state</th></tr></thead><tbody>\(pollerRows)</tbody></table>"))</section>
        <section class="card"><h2>Latest events</h2>
        <table><thead><tr><th>received</th><th>source</th><th>type</th><th>event</th></tr></thead><tbody id="live-events">
        \(recentRows.isEmpty ? "<tr id=\"no-events\"><td colspan=\"4\" class=\"muted\">No events yet. Send one from <a href=\"/ui/setup\">Set-up</a>.</td></tr>" : HTML.empty)\(recentRows)
        </tbody></table><p><a href="/ui/events">All events</a></p></section>
        """
        return Layout.page("Overview", tab: .overview, signedIn: signedIn, content)
    }
}
