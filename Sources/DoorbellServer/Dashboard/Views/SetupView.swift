import DoorbellCore
import DoorbellVerification
import Hummingbird

/// `/ui/setup`: for each source, the URL to give the provider, what it starts, and a button that
/// sends a signed sample event through the real ingest path.
enum SetupView {
    static func render(_ controller: DashboardController, signedIn: SignedIn, notice: String?, error: String? = nil) -> Response {
        let configuration = controller.configuration
        let sections = configuration.sources.map { source -> HTML in
            let patterns = configuration.automations.flatMap { automation in
                automation.on.filter { $0.matches(source: source.id, type: $0.type) }.map { (automation.id, $0.description) }
            }
            let takes: HTML = patterns.isEmpty
                ? "<li class=\"muted\">No automation matches this source yet.</li>"
                : HTML(unsafe: patterns.map { id, pattern in "<li><code>\(HTML.escape(pattern))</code> → automation \(HTML.escape(id))</li>" }.joined())
            let forwards: HTML = source.forwardTo.isEmpty ? .empty : "<p>Forwarded to endpoints: \(source.forwardTo.joined(separator: ", "))</p>"
            let fixture = SampleRequest.fixture(for: source.provider).name
            return """
            <section class="card" data-source-id="\(source.id)"><h2>\(source.id) <span class="muted">\(source.provider.rawValue)</span></h2>
            <p>Register this URL at the provider:</p><pre class="hook-url">\(controller.hookURL(source.id))</pre>
            \(configuration.server.publicURL == nil ? HTML("<p class=\"muted\">This is the local address (server.public_url is not set): a provider on the internet needs the public URL of this server.</p>") : HTML.empty)
            <p>Events it takes:</p><ul>\(takes)</ul>\(forwards)
            <form method="post" action="/ui/setup/\(PercentEncoding.encode(source.id))/sample"><input type="hidden" name="_csrf" value="\(signedIn.csrfToken)">
            <button type="submit" class="send-sample">Send a signed sample (\(fixture))</button></form></section>
            """
        }
        let content: HTML = """
        <h1>Set-up</h1>
        <p>Each source is a URL a provider calls. The sample button signs a fixture with the source's secret, exactly as <code>doorbell trigger</code> does, and posts it to this server's <code>/hooks/…</code>.</p>
        \(sections.isEmpty ? HTML("<p class=\"muted\">No sources in doorbell.yml yet.</p>") : HTML.empty)\(sections)
        """
        return Layout.page("Set-up", tab: .setup, signedIn: signedIn, notice: notice, error: error, content)
    }
}

