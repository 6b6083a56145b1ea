import DoorbellCore
import DoorbellStorage
import Hummingbird

/// `/ui/runs` and `/ui/deliveries`: the same filters as events; a bulk replay acts on exactly the
/// filter on screen, after a page that says how many it will touch.
enum RunsView {
    static func render(filter: ListFilter, page: RunPage, deliveries: Bool, sources: [String], signedIn: SignedIn, notice: String?) -> Response {
        let base = deliveries ? "/ui/deliveries" : "/ui/runs"
        let rows = page.runs.map { run -> HTML in
            """
            <tr data-run-id="\(run.id)"><td class="hide-small">\(Format.time(run.createdAt))</td><td>\(deliveries ? (run.endpoint ?? "") : run.automation)</td>
            <td>\(Layout.status(run.status.rawValue))</td><td>\(run.attempt)</td>
            <td><a href="/ui/events/\(PercentEncoding.encode(run.eventID))">\(run.eventID)</a></td><td class="muted">\(Format.excerpt(run.lastError ?? "", 160))</td></tr>
            """
        }
        let noun = deliveries ? "deliveries" : "runs"
        let older: HTML = page.next.map { next in
            let link: HTML = "<a href=\"\(base)\(Format.query(filter.pairs(cursor: next.description)))\" id=\"older\">\(page.windowEnded ? "Search older →" : "Older →")</a>"
            return page.windowEnded ? "<span class=\"muted\" id=\"window-ended\">Searched \(Format.count(SearchWindow.size)) more \(noun) for the text.</span> \(link)" : link
        } ?? .empty
        let bulkStatus = filter.status == .succeeded ? "succeeded" : "dead"
        let content: HTML = """
        <h1>\(deliveries ? "Deliveries" : "Runs")</h1>
        \(filter.form(action: base, sources: sources, showStatus: true, showEndpoint: deliveries))
        <section class="card"><table><thead><tr><th class="hide-small">created</th><th>\(deliveries ? "endpoint" : "automation")</th><th>status</th><th>failures</th><th>event</th><th>last error</th></tr></thead>
        <tbody>\(rows.isEmpty ? HTML("<tr><td colspan=\"6\" class=\"muted\">\(page.windowEnded ? "Nothing matches among these." : "Nothing matches.")</td></tr>") : HTML.empty)\(rows)</tbody></table>
        <p class="pager">\(HTML.when(filter.cursor != nil, "<a href=\"\(base)\(Format.query(filter.pairs()))\">← Newest</a> ")) \(older)</p></section>
        <section class="card"><h2>Replay in bulk</h2>
        <p>Replays every \(bulkStatus) one of the \(noun) this filter selects (all pages, not only this one). You will see how many first.</p>
        <form method="get" action="\(base)/replay">\(filter.hiddenFields)<button type="submit" id="bulk-replay">Replay matching \(noun)…</button></form></section>
        """
        return Layout.page(deliveries ? "Deliveries" : "Runs", tab: deliveries ? .deliveries : .runs, signedIn: signedIn, notice: notice, content)
    }

    static func confirm(filter: ListFilter, count: Int, tooMany: Bool, digest: String, deliveries: Bool, signedIn: SignedIn, changedFrom: Int?) -> Response {
        let base = deliveries ? "/ui/deliveries" : "/ui/runs"
        let noun = deliveries ? (count == 1 ? "delivery" : "deliveries") : (count == 1 ? "run" : "runs")
        let described = filter.pairs().compactMap { name, value in value.map { "\(name) = \($0)" } }.joined(separator: ", ")
        let action: HTML
        if tooMany {
            action = "<p>More than \(DashboardController.bulkLimit) match: narrow the filter (a shorter time range, a source or type) and try again.</p>"
        } else if count == 0 {
            action = "<p>Nothing to replay.</p>"
        } else {
            action = """
            <form method="post" action="\(base)/replay">\(filter.hiddenFields)<input type="hidden" name="_csrf" value="\(signedIn.csrfToken)">
            <input type="hidden" name="count" value="\(count)"><input type="hidden" name="digest" value="\(digest)">
            <button type="submit" id="confirm-replay">Replay \(count) \(noun)</button> <a href="\(base)\(Format.query(filter.pairs()))">Cancel</a></form>
            """
        }
        let changed: String? = changedFrom.map { "The selection changed since you confirmed \($0): it is now \(count). Nothing was replayed yet." }
        let content: HTML = """
        <h1>Replay \(deliveries ? "deliveries" : "runs")</h1>
        <section class="card"><p id="replay-count" class="count">\(tooMany ? "More than \(DashboardController.bulkLimit)" : String(count)) \(noun) will be replayed.</p>
        <p class="muted">Filter: \(described.isEmpty ? "none (every \(filter.status == .succeeded ? "succeeded" : "dead") one)" : described)\(filter.status == nil ? "; only dead ones are replayed" : "").
        \(deliveries ? "Deliveries are sent again whole (same webhook-id)." : "Runs resume at the step that failed.")</p>
        \(action)</section>
        """
        return Layout.page("Replay", tab: deliveries ? .deliveries : .runs, signedIn: signedIn, error: changed, content)
    }
}
