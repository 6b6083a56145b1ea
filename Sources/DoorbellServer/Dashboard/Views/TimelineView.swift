import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird

/// `/ui/events/{id}`: the event as received, how it was verified, and everything it started — each
/// run with its steps, each delivery with its attempts — with replay and resend.
enum TimelineView {
    struct RunDetail {
        let run: RunRecord
        let steps: [StepResult]
        let attempts: [AttemptRecord]
        let automation: Automation?
    }

    static func render(_ stored: StoredEvent, runs: [RunDetail], source: Source?, signedIn: SignedIn, notice: String?) -> Response {
        let event = stored.event
        // Credential headers as "…", as the API shows them: the page is for reading, not for copying secrets.
        let headers = event.headers.map { header -> HTML in
            let value = EventDetail.hiddenHeaders.contains(header.name.lowercased()) ? "…" : header.value
            return "<tr><td><code>\(header.name)</code></td><td><code>\(value)</code></td></tr>"
        }
        let verdict: String
        switch event.source {
        case Source.apiID: verdict = "Published through the API or the dashboard (an authenticated request); no webhook signature."
        case Source.noticesID: verdict = "Doorbell's own notice."
        default:
            if let source {
                verdict = source.provider == .none
                    ? "Not verified: source \(source.id) has provider none (no signature checked)\(source.allowIPs.isEmpty ? "" : "; the sender's address was in allow_ips")."
                    : "Verified: the \(source.provider.rawValue) signature\(source.tolerance > 0 ? " and timestamp" : "") checked before it was stored\(source.allowIPs.isEmpty ? "" : ", from an address in allow_ips"). Only verified requests are stored; refused ones are counted in /metrics."
            } else if event.depth > 0 {
                verdict = "Emitted by an automation step."
            } else {
                verdict = "Source \(event.source) is no longer configured; it was verified under the configuration of the time."
            }
        }
        let csrf: HTML = "<input type=\"hidden\" name=\"_csrf\" value=\"\(signedIn.csrfToken)\">"
        let action = "/ui/events/\(PercentEncoding.encode(event.id))"
        let runSections = runs.map { detail -> HTML in
            detail.run.endpoint == nil ? automationRun(detail, action: action, csrf: csrf) : delivery(detail, action: action, csrf: csrf)
        }
        let content: HTML = """
        <h1>Event <code>\(event.id)</code></h1>
        <section class="card"><table>
        <tr><th>source</th><td>\(event.source)</td></tr><tr><th>type</th><td>\(event.type)</td></tr>
        <tr><th>provider id</th><td>\(event.providerID ?? "–")</td></tr><tr><th>received</th><td>\(Format.time(event.receivedAt))</td></tr>
        <tr><th>verification</th><td id="verdict">\(verdict)</td></tr></table>
        <form class="inline" method="post" action="\(action)/resend" data-confirm="Send this event to its endpoints again?">\(csrf)<button class="secondary" type="submit" id="resend">Resend to endpoints</button></form>
        </section>
        <h2>Runs and deliveries</h2>
        \(runSections.isEmpty ? HTML("<p class=\"muted\">This event started nothing: no automation or endpoint took it.</p>") : HTML.empty)\(runSections)
        <h2>Headers</h2><section class="card"><table id="headers">\(headers)</table></section>
        <h2>Body</h2><section class="card"><pre id="body">\(Format.body(event.body))</pre></section>
        """
        return Layout.page("Event \(event.id)", tab: .events, signedIn: signedIn, notice: notice, content)
    }

    private static func replayButtons(_ run: RunRecord, action: String, csrf: HTML, fromFailed: Bool) -> HTML {
        guard run.status == .dead || run.status == .succeeded else { return .empty }
        let failed: HTML = fromFailed && run.status == .dead
            ? "<form class=\"inline\" method=\"post\" action=\"\(action)/replay\">\(csrf)<input type=\"hidden\" name=\"run\" value=\"\(run.id)\"><input type=\"hidden\" name=\"from\" value=\"failed\"><button type=\"submit\" class=\"replay-failed\">Replay from the failed step</button></form> "
            : .empty
        return failed + """
        <form class="inline" method="post" action="\(action)/replay">\(csrf)<input type="hidden" name="run" value="\(run.id)"><input type="hidden" name="from" value="start"><button type="submit" class="secondary replay-start">\(run.endpoint == nil ? "Replay from the start" : "Retry delivery")</button></form>
        """
    }

    private static func automationRun(_ detail: RunDetail, action: String, csrf: HTML) -> HTML {
        let run = detail.run
        let done = Dictionary(detail.steps.map { ($0.stepID, $0) }, uniquingKeysWith: { first, _ in first })
        let stepIDs = detail.automation?.steps.map { ($0.id, $0.action.kind) } ?? detail.steps.map { ($0.stepID, "") }
        var previous = run.createdAt
        let rows = stepIDs.enumerated().map { position, step -> HTML in
            let (id, kind) = step
            if let result = done[id] {
                let took = result.completedAt.timeIntervalSince(previous)
                previous = result.completedAt
                return """
                <tr><td>\(id) <span class="muted">\(kind)</span></td><td>\(Layout.status("succeeded"))</td><td>\(Format.time(result.completedAt))\(took >= 0 && took < 86400 ? " (\(Int(took * 1000)) ms)" : "")</td>
                <td><pre>\(Format.excerpt(Format.body(Array(result.output.utf8)), 2000))</pre></td></tr>
                """
            }
            if position == run.nextStep, run.status != .succeeded {
                let state = run.status == .dead ? "dead" : run.status.rawValue
                return """
                <tr><td>\(id) <span class="muted">\(kind)</span></td><td>\(Layout.status(state))</td><td>\(run.attempt) failed attempt\(run.attempt == 1 ? "" : "s")\(run.status == .waitingRetry ? "; next at \(Format.time(run.dueAt))" : "")</td>
                <td>\(run.lastError.map { HTML("<pre class=\"step-error\">\($0)</pre>") } ?? HTML.empty)</td></tr>
                """
            }
            return "<tr><td>\(id) <span class=\"muted\">\(kind)</span></td><td class=\"muted\">not reached</td><td></td><td></td></tr>"
        }
        return """
        <section class="card run" data-run-id="\(run.id)"><h2>Automation \(run.automation) \(Layout.status(run.status.rawValue))</h2>
        <table><thead><tr><th>step</th><th>status</th><th>when / attempts</th><th>output or error</th></tr></thead><tbody>\(rows)</tbody></table>
        \(detail.automation == nil ? HTML("<p class=\"muted\">This automation is no longer in doorbell.yml.</p>") : HTML.empty)
        <p>\(replayButtons(run, action: action, csrf: csrf, fromFailed: true))</p></section>
        """
    }

    private static func delivery(_ detail: RunDetail, action: String, csrf: HTML) -> HTML {
        let run = detail.run
        let rows = detail.attempts.map { attempt -> HTML in
            """
            <tr><td>\(attempt.number)</td><td>\(Format.time(attempt.startedAt))</td><td>\(attempt.status.map(String.init) ?? "no answer")</td><td>\(attempt.latencyMillis) ms</td>
            <td><pre>\(Format.excerpt(attempt.response ?? attempt.error ?? "", 600))</pre></td></tr>
            """
        }
        return """
        <section class="card delivery" data-run-id="\(run.id)"><h2>Delivery to \(run.endpoint ?? "") \(Layout.status(run.status.rawValue))</h2>
        \(run.status == .waitingRetry ? HTML("<p>Next attempt at \(Format.time(run.dueAt)).</p>") : HTML.empty)
        <table><thead><tr><th>#</th><th>started</th><th>status</th><th>latency</th><th>response or error</th></tr></thead>
        <tbody>\(rows.isEmpty ? HTML("<tr><td colspan=\"5\" class=\"muted\">No attempt yet.</td></tr>") : HTML.empty)\(rows)</tbody></table>
        <p>\(replayButtons(run, action: action, csrf: csrf, fromFailed: false))</p></section>
        """
    }
}
