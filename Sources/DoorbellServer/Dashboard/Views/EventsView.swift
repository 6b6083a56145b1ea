import DoorbellCore
import DoorbellStorage
import Hummingbird

/// `/ui/events`: filtered, newest first, a page at a time (the cursor is the last event's sequence).
enum EventsView {
    static func render(filter: ListFilter, page: EventPage, sources: [String], signedIn: SignedIn) -> Response {
        let rows = page.events.map { stored -> HTML in
            """
            <tr data-event-id="\(stored.event.id)"><td>\(Format.time(stored.event.receivedAt))</td><td>\(stored.event.source)</td><td>\(stored.event.type)</td>
            <td><a href="/ui/events/\(PercentEncoding.encode(stored.event.id))">\(stored.event.id)</a></td></tr>
            """
        }
        let older: HTML = page.next.map { next in
            let link: HTML = "<a href=\"/ui/events\(Format.query(filter.pairs(cursor: String(next))))\" id=\"older\">\(page.windowEnded ? "Search older events →" : "Older events →")</a>"
            return page.windowEnded ? "<span class=\"muted\" id=\"window-ended\">Searched \(Format.count(SearchWindow.size)) more events for the text.</span> \(link)" : link
        } ?? .empty
        let content: HTML = """
        <h1>Events</h1>
        \(filter.form(action: "/ui/events", sources: sources, showStatus: true, showEndpoint: false))
        <section class="card"><table><thead><tr><th>received</th><th>source</th><th>type</th><th>event</th></tr></thead>
        <tbody\(HTML.when(filter == ListFilter(), " id=\"live-events\""))>\(rows.isEmpty ? HTML("<tr id=\"no-events\"><td colspan=\"4\" class=\"muted\">\(page.windowEnded ? "No events match among these." : "No events match.")</td></tr>") : HTML.empty)\(rows)</tbody></table>
        <p class="pager">\(HTML.when(filter.cursor != nil, "<a href=\"/ui/events\(Format.query(filter.pairs()))\">← Newest</a> ")) \(older)</p></section>
        """
        return Layout.page("Events", tab: .events, signedIn: signedIn, content)
    }
}
