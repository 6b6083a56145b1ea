import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird

/// `/ui/endpoints`: add, edit (those not declared in doorbell.yml), enable, disable, rotate the
/// secret (shown once), send a test event.
enum EndpointsView {
    static func list(_ endpoints: [Endpoint], circuits: [String: Date], activity: [String: EndpointActivity], signedIn: SignedIn, notice: String?, secret: (String, String)?) -> Response {
        let csrf: HTML = "<input type=\"hidden\" name=\"_csrf\" value=\"\(signedIn.csrfToken)\">"
        let rows = endpoints.map { endpoint -> HTML in
            let path = "/ui/endpoints/\(PercentEncoding.encode(endpoint.id))"
            let stats = activity[endpoint.id]
            let toggle: HTML = endpoint.enabled
                ? "<form class=\"inline\" method=\"post\" action=\"\(path)/disable\" data-confirm=\"Disable \(endpoint.id)? Its deliveries wait until it is enabled.\">\(csrf)<button class=\"secondary\" type=\"submit\">Disable</button></form>"
                : "<form class=\"inline\" method=\"post\" action=\"\(path)/enable\">\(csrf)<button class=\"secondary\" type=\"submit\">Enable</button></form>"
            return """
            <tr data-endpoint-id="\(endpoint.id)"><td><strong>\(endpoint.id)</strong>\(endpoint.fromConfig ? HTML(" <span class=\"muted\">(doorbell.yml)</span>") : HTML.empty)<br><code>\(RedactedURL(endpoint.url).description)</code>
            \(endpoint.description.map { HTML("<br><span class=\"muted\">\($0)</span>") } ?? HTML.empty)</td>
            <td>\(endpoint.events.isEmpty ? "every event" : endpoint.events.joined(separator: ", "))</td>
            <td>\(Layout.status(endpoint.enabled ? "enabled" : "disabled"))\(endpoint.disabledReason.map { HTML("<br><span class=\"muted\">\($0)</span>") } ?? HTML.empty)
            \(circuits[endpoint.id].map { HTML("<br>circuit open until \(Format.time($0))") } ?? HTML.empty)</td>
            <td>\(stats.map { "\($0.succeeded)/\($0.attempts) ok in 24 h" } ?? "–")</td>
            <td>\(toggle)
            <form class="inline" method="post" action="\(path)/rotate" data-confirm="Rotate the signing secret of \(endpoint.id)?">\(csrf)<button class="secondary" type="submit">Rotate secret</button></form>
            <form class="inline" method="post" action="\(path)/test">\(csrf)<button class="secondary" type="submit">Send test event</button></form>
            \(endpoint.fromConfig ? HTML.empty : HTML("<a href=\"\(path)/edit\">Edit</a>"))</td></tr>
            """
        }
        let shown: HTML = secret.map { id, value in
            """
            <section class="card"><h2>Signing secret of \(id)</h2><p>Shown once: copy it to the receiver now. Doorbell signs with it from now on.</p>
            <p class="secret" id="new-secret">\(value)</p></section>
            """
        } ?? .empty
        let content: HTML = """
        <h1>Endpoints</h1>\(shown)
        <p><a href="/ui/endpoints/new">Add an endpoint</a></p>
        <section class="card"><table><thead><tr><th>endpoint</th><th>events</th><th>state</th><th>attempts</th><th></th></tr></thead>
        <tbody>\(rows.isEmpty ? HTML("<tr><td colspan=\"5\" class=\"muted\">No endpoints yet.</td></tr>") : HTML.empty)\(rows)</tbody></table></section>
        """
        return Layout.page("Endpoints", tab: .endpoints, signedIn: signedIn, notice: notice, content)
    }

    static func form(_ endpoint: Endpoint?, signedIn: SignedIn, error: String?, creating: Bool? = nil) -> Response {
        let creating = creating ?? (endpoint == nil)
        let action = creating ? "/ui/endpoints" : "/ui/endpoints/\(PercentEncoding.encode(endpoint?.id ?? ""))"
        let content: HTML = """
        <h1>\(creating ? "Add an endpoint" : "Edit \(endpoint?.id ?? "")")</h1>
        <section class="card"><form class="stack" method="post" action="\(action)">
        <input type="hidden" name="_csrf" value="\(signedIn.csrfToken)">
        \(creating ? HTML("<label>id (optional)<input name=\"id\" value=\"\(endpoint?.id ?? "")\" placeholder=\"erp\"></label>") : HTML.empty)
        <label>URL<input name="url" value="\(endpoint?.url ?? "")" placeholder="https://erp.example.com/webhooks" required></label>
        <label>event types (comma-separated, * wildcards; empty: every event)<input name="events" value="\(endpoint?.events.joined(separator: ", ") ?? "")" placeholder="order.*"></label>
        <label>rate limit<input name="rate_limit" value="\(endpoint?.rateLimit?.description ?? "")" placeholder="10/s"></label>
        <label>description<input name="description" value="\(endpoint?.description ?? "")"></label>
        <button type="submit" id="save-endpoint">\(creating ? "Add endpoint" : "Save")</button>
        </form>\(creating ? HTML("<p class=\"muted\">A signing secret (whsec_…) is generated and shown once.</p>") : HTML.empty)</section>
        """
        return Layout.page(creating ? "Add endpoint" : "Edit endpoint", tab: .endpoints, signedIn: signedIn, status: error == nil ? .ok : .badRequest, error: error, content)
    }
}
