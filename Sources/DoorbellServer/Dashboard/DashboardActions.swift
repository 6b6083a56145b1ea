import AsyncHTTPClient
import DoorbellAutomation
import DoorbellCore
import DoorbellStorage
import DoorbellVerification
import Foundation
import Hummingbird

/// What the dashboard's forms do: replay and resend, bulk replay after a count, the set-up page's
/// sample, endpoint changes. Each answers with a redirect to a page that shows the outcome.
extension DashboardController {
    func replayRun(eventID: String, _ form: FormBody) async throws -> Response {
        guard let runID = form["run"], let run = try await store.run(id: runID), run.eventID == eventID else {
            return Layout.redirect("/ui/events/\(PercentEncoding.encode(eventID))?notice=" + PercentEncoding.encode("No such run."))
        }
        let fromStart = form["from"] == "start"
        let count = try await store.replay(matching: .only(run), fromStart: fromStart || run.endpoint != nil, now: now())
        let what = run.endpoint.map { "Delivery to \($0)" } ?? "Run of \(run.automation)"
        let message = count > 0 ? "\(what) queued again\(run.endpoint == nil ? (fromStart ? " from the first step" : " from the step that failed") : "")." : "\(what) is \(run.status.rawValue); only dead or finished runs are replayed."
        return Layout.redirect("/ui/events/\(PercentEncoding.encode(eventID))?notice=" + PercentEncoding.encode(message))
    }

    func resend(eventID: String) async throws -> Response {
        guard let stored = try await store.event(id: eventID) else { return Layout.redirect("/ui/events") }
        var count = try await store.replay(matching: RunQuery(eventID: eventID, statuses: [.dead, .succeeded], deliveries: true, limit: Int.max), fromStart: true, now: now())
        // Endpoints added since the event arrived get it too.
        let planned = planner.directory.deliveries(for: stored.event)
        if !planned.isEmpty { count += try await store.plan(planned, eventID: eventID, now: now()) }
        let message = count > 0 ? "Sending to \(count) endpoint\(count == 1 ? "" : "s") again." : "No endpoint takes this event (or its deliveries are still under way)."
        return Layout.redirect("/ui/events/\(PercentEncoding.encode(eventID))?notice=" + PercentEncoding.encode(message))
    }

    /// The most runs one bulk replay touches; a wider filter is narrowed first.
    static let bulkLimit = 10_000

    /// The runs a bulk replay of `filter` would touch: only dead (or, asked for, succeeded) ones, as
    /// `replay` itself does; the cursor is ignored (the whole filter, not one page).
    func bulkQuery(_ filter: ListFilter, deliveries: Bool) throws -> RunQuery {
        var filter = filter
        filter.cursor = nil
        var query = try filter.runQuery(deliveries: deliveries, now: now())
        query.statuses = filter.status == .succeeded ? [.succeeded] : [.dead]
        query.limit = Self.bulkLimit + 1
        return query
    }

    /// A digest of the selected runs' ids: the POST replays only if the selection is still the one confirmed.
    static func digest(_ runs: [RunRecord]) -> String {
        DashboardAuth.hash(runs.map(\.id).sorted().joined(separator: ","))
    }

    func confirmBulk(_ filter: ListFilter, deliveries: Bool, signedIn: SignedIn, changed: Int?) async throws -> Response {
        // `since`/`until` written as durations are fixed to times now, so the POST selects the same window.
        var fixed = filter
        let time = now()
        if let since = try ListFilter.time(filter.since, now: time) { fixed.since = Timestamp.iso8601(since) }
        if let until = try ListFilter.time(filter.until, now: time) { fixed.until = Timestamp.iso8601(until) }
        let selected = try await store.runs(matching: try bulkQuery(fixed, deliveries: deliveries))
        return RunsView.confirm(filter: fixed, count: selected.count, tooMany: selected.count > Self.bulkLimit, digest: Self.digest(selected), deliveries: deliveries, signedIn: signedIn, changedFrom: changed)
    }

    func bulkReplay(_ form: FormBody, deliveries: Bool, signedIn: SignedIn) async throws -> Response {
        let filter = ListFilter(form.dictionary)
        let selected = try await store.runs(matching: try bulkQuery(filter, deliveries: deliveries))
        guard selected.count <= Self.bulkLimit, let confirmed = form["digest"], confirmed == Self.digest(selected) else {
            // The selection changed since the count was shown: show the new count instead of acting.
            return try await confirmBulk(filter, deliveries: deliveries, signedIn: signedIn, changed: Int(form["count"] ?? ""))
        }
        var replayed = 0
        let time = now()
        for run in selected {
            // Deliveries are sent whole again; automation runs resume at the step that failed.
            replayed += try await store.replay(matching: .only(run), fromStart: deliveries, now: time)
        }
        let base = deliveries ? "/ui/deliveries" : "/ui/runs"
        var shown = filter
        shown.status = nil
        let noun = deliveries ? "deliveries" : "runs"
        return Layout.redirect(base + Format.query(shown.pairs() + [("notice", "\(replayed) \(noun) replayed.")]))
    }

    func sendSample(_ sourceID: String, signedIn: SignedIn) async throws -> Response {
        guard let source = configuration.source(id: sourceID) else { return notFound(signedIn) }
        let sample = SampleRequest.make(for: source, signedURL: hookURL(source.id), now: now())
        var request = HTTPClientRequest(url: localBaseURL + "/hooks/" + PercentEncoding.encode(source.id))
        request.method = .POST
        for header in sample.headers { request.headers.replaceOrAdd(name: header.name, value: header.value) }
        request.headers.replaceOrAdd(name: "User-Agent", value: "doorbell-dashboard")
        request.body = .bytes(sample.body)
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(15))
            let reply = String(buffer: try await response.body.collect(upTo: 64 * 1024))
            if (200..<300).contains(response.status.code),
               let object = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any], let id = object["id"] as? String {
                let message = "Sample \(sample.fixture) sent to /hooks/\(source.id): \(response.status.code), stored as this event."
                return Layout.redirect("/ui/events/\(PercentEncoding.encode(id))?notice=" + PercentEncoding.encode(message))
            }
            return SetupView.render(self, signedIn: signedIn, notice: nil, error: "The sample was refused: \(response.status.code) \(Format.excerpt(reply, 300))")
        } catch {
            return SetupView.render(self, signedIn: signedIn, notice: nil, error: "Could not reach \(localBaseURL): \(error)")
        }
    }

    func endpointsPage(_ signedIn: SignedIn, notice: String?, secret: (String, String)? = nil) async throws -> Response {
        let time = now()
        async let endpoints = store.endpoints()
        async let circuits = store.openCircuits(now: time)
        async let activity = store.endpointActivity(since: time.addingTimeInterval(-86400))
        return EndpointsView.list(try await endpoints, circuits: try await circuits, activity: try await activity, signedIn: signedIn, notice: notice, secret: secret)
    }

    func saveEndpoint(_ id: String?, _ form: FormBody, signedIn: SignedIn) async throws -> Response {
        var endpoint: Endpoint
        if let id {
            guard let existing = try await store.endpoint(id: id) else { return notFound(signedIn) }
            guard !existing.fromConfig else { return EndpointsView.form(existing, signedIn: signedIn, error: "This endpoint is declared in doorbell.yml; change it there.") }
            endpoint = existing
        } else {
            let given = (form["id"] ?? "").trimmingCharacters(in: .whitespaces)
            endpoint = Endpoint(id: given.isEmpty ? "ep_" + EventID.generate(prefix: "").suffix(10).lowercased() : given, url: "")
        }
        endpoint.url = (form["url"] ?? "").trimmingCharacters(in: .whitespaces)
        endpoint.events = (form["events"] ?? "").split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" || $0 == "\r" }).map(String.init)
        let description = (form["description"] ?? "").trimmingCharacters(in: .whitespaces)
        endpoint.description = description.isEmpty ? nil : description
        let rate = (form["rate_limit"] ?? "").trimmingCharacters(in: .whitespaces)
        if rate.isEmpty { endpoint.rateLimit = nil } else {
            guard let limit = RateLimit(rate) else { return EndpointsView.form(endpoint, signedIn: signedIn, error: "rate_limit: deliveries per time such as 10/s or 600/m", creating: id == nil) }
            endpoint.rateLimit = limit
        }
        if id == nil, try await store.endpoint(id: endpoint.id) != nil {
            return EndpointsView.form(endpoint, signedIn: signedIn, error: "An endpoint '\(endpoint.id)' exists.", creating: true)
        }
        var secret: (String, String)?
        if endpoint.secrets.isEmpty {
            endpoint.secrets = [EndpointSecret.generate()]
            secret = (endpoint.id, endpoint.secrets[0].secret)
        }
        if let problem = endpoint.problems().first {
            return EndpointsView.form(endpoint, signedIn: signedIn, error: "\(problem.field): \(problem.message)", creating: id == nil)
        }
        try await store.saveEndpoint(endpoint, now: now())
        try await planner.directory.reload(from: store)
        return try await endpointsPage(signedIn, notice: id == nil ? "Endpoint \(endpoint.id) added." : "Endpoint \(endpoint.id) saved.", secret: secret)
    }

    func endpointAction(_ id: String, _ action: String, signedIn: SignedIn) async throws -> Response {
        guard let endpoint = try await store.endpoint(id: id) else { return notFound(signedIn) }
        switch action {
        case "enable", "disable":
            let enable = action == "enable"
            _ = try await store.setEndpoint(id: id, enabled: enable, reason: enable ? nil : "disabled in the dashboard", now: now())
            try await planner.directory.reload(from: store)
            return try await endpointsPage(signedIn, notice: "Endpoint \(id) \(enable ? "enabled" : "disabled").")
        case "rotate":
            let secret = EndpointSecret.generate()
            guard try await store.rotateSecret(endpointID: id, to: secret, overlap: configuration.outbound.rotationOverlap, now: now()) != nil else { return notFound(signedIn) }
            try await planner.directory.reload(from: store)
            let hours = Int(configuration.outbound.rotationOverlap / 3600)
            return try await endpointsPage(signedIn, notice: "Secret of \(id) rotated; the previous one keeps signing for \(hours) h.", secret: (id, secret.secret))
        case "test":
            let body = try JSONSerialization.data(withJSONObject: ["endpoint": id, "message": "a test event sent from the Doorbell dashboard", "sent_at": Timestamp.iso8601(now())], options: [.sortedKeys])
            var event = NewEvent(source: Source.apiID, type: "doorbell.test", providerID: nil, receivedAt: now(), headers: [Header(name: "content-type", value: "application/json")], body: [UInt8](body))
            // Only this endpoint: not planned through the automations and subscriptions.
            event.automations = [PlannedRun.delivery(to: endpoint.id, paused: !endpoint.enabled)]
            let outcome = try await store.ingest(event)
            let message = "Test event sent to \(id)\(endpoint.enabled ? "" : " (the endpoint is disabled: the delivery waits until it is enabled)")."
            return Layout.redirect("/ui/events/\(PercentEncoding.encode(outcome.id))?notice=" + PercentEncoding.encode(message))
        default:
            return notFound(signedIn)
        }
    }
}
