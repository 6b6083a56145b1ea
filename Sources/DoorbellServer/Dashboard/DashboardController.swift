import DoorbellAutomation
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import DoorbellVerification
import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// `/ui`: the browser dashboard, server-rendered, served by the binary. Every page but sign-in and
/// the two static files needs a session; every POST needs the session's CSRF token (403 without).
struct DashboardController: Sendable {
    let configuration: Configuration
    let store: any DoorbellStore
    let planner: EventPlanner
    let auth: DashboardAuth
    let clientAddress: ClientAddress
    let now: @Sendable () -> Date
    /// The port the server really listens on (the config may say 0), for the set-up page's URLs
    /// and the sample events it sends through the real ingest path.
    let boundPort = BoundPort()

    init(configuration: Configuration, store: any DoorbellStore, planner: EventPlanner, now: @escaping @Sendable () -> Date) {
        self.configuration = configuration
        self.store = store
        self.planner = planner
        self.auth = DashboardAuth(configuration: configuration, store: store, now: now)
        self.clientAddress = ClientAddress(trustedProxies: configuration.server.trustedProxies.compactMap(CIDR.init))
        self.now = now
    }

    /// Called once the server listens.
    func serverRunning(_ channel: any Channel) {
        boundPort.value.withLock { $0 = channel.localAddress?.port }
    }

    /// Where this node itself answers, for sending sample events through `/hooks/{source}`.
    var localBaseURL: String {
        let server = configuration.server
        guard let port = boundPort.value.withLock({ $0 }), port != server.port else { return server.localBaseURL }
        var settings = server
        settings.port = port
        return settings.localBaseURL
    }

    /// The URL a provider should call for a source.
    func hookURL(_ source: String) -> String {
        (configuration.server.publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } ?? localBaseURL) + "/hooks/" + source
    }

    func addRoutes(to router: Router<DoorbellRequestContext>) {
        router.get("/ui/static/app.js") { _, _ in Layout.respond(.ok, contentType: "text/javascript; charset=utf-8", DashboardStatic.javascript) }
        router.get("/ui/static/app.css") { _, _ in Layout.respond(.ok, contentType: "text/css; charset=utf-8", DashboardStatic.css) }
        router.get("/ui/sign-in") { request, _ in signInPage(request) }
        router.post("/ui/sign-in") { request, context in try await signIn(request, context) }
        router.post("/ui/sign-out") { request, context in
            try await mutation(request, context) { _, _ in
                try await auth.endSession(of: request)
                return Layout.redirect("/ui/sign-in?signed_out=1", cookies: [auth.cookie(DashboardAuth.cookieName, "", maxAge: 0)])
            }
        }
        router.get("/ui") { request, context in try await page(request, context) { try await overview($0) } }
        router.get("/ui/live") { request, context in
            try await page(request, context) { _ in
                // The stream ends soon after its session does (sign-out, expiry, credential removed).
                DashboardLive(store: store, stillSignedIn: { (try? await auth.session(of: request)) != nil }).response()
            }
        }
        router.get("/ui/setup") { request, context in try await page(request, context) { SetupView.render(self, signedIn: $0, notice: nil) } }
        router.post("/ui/setup/:source/sample") { request, context in
            try await mutation(request, context) { signedIn, _ in try await sendSample(context.parameters.get("source") ?? "", signedIn: signedIn) }
        }
        router.get("/ui/events") { request, context in try await page(request, context) { try await events(request, $0) } }
        router.get("/ui/events/:id") { request, context in
            try await page(request, context) { try await timeline(context.parameters.get("id") ?? "", request: request, signedIn: $0) }
        }
        router.post("/ui/events/:id/replay") { request, context in
            try await mutation(request, context) { _, form in try await replayRun(eventID: context.parameters.get("id") ?? "", form) }
        }
        router.post("/ui/events/:id/resend") { request, context in
            try await mutation(request, context) { _, _ in try await resend(eventID: context.parameters.get("id") ?? "") }
        }
        for deliveries in [false, true] {
            let base = deliveries ? "/ui/deliveries" : "/ui/runs"
            router.get(RouterPath(base)) { request, context in try await page(request, context) { try await runs(request, deliveries: deliveries, signedIn: $0) } }
            router.get(RouterPath(base + "/replay")) { request, context in
                try await page(request, context) { try await confirmBulk(ListFilter(query: request), deliveries: deliveries, signedIn: $0, changed: nil) }
            }
            router.post(RouterPath(base + "/replay")) { request, context in
                try await mutation(request, context) { signedIn, form in try await bulkReplay(form, deliveries: deliveries, signedIn: signedIn) }
            }
        }
        router.get("/ui/endpoints") { request, context in try await page(request, context) { try await endpointsPage($0, notice: nil) } }
        router.get("/ui/endpoints/new") { request, context in try await page(request, context) { EndpointsView.form(nil, signedIn: $0, error: nil) } }
        router.post("/ui/endpoints") { request, context in try await mutation(request, context) { signedIn, form in try await saveEndpoint(nil, form, signedIn: signedIn) } }
        router.get("/ui/endpoints/:id/edit") { request, context in
            try await page(request, context) { signedIn in
                guard let endpoint = try await store.endpoint(id: context.parameters.get("id") ?? "") else { return notFound(signedIn) }
                return EndpointsView.form(endpoint, signedIn: signedIn, error: endpoint.fromConfig ? "This endpoint is declared in doorbell.yml; change it there." : nil)
            }
        }
        router.post("/ui/endpoints/:id") { request, context in
            try await mutation(request, context) { signedIn, form in try await saveEndpoint(context.parameters.get("id") ?? "", form, signedIn: signedIn) }
        }
        router.post("/ui/endpoints/:id/:action") { request, context in
            try await mutation(request, context) { signedIn, _ in
                try await endpointAction(context.parameters.get("id") ?? "", context.parameters.get("action") ?? "", signedIn: signedIn)
            }
        }
    }

    // MARK: sessions and CSRF

    private func signInPage(_ request: Request, error: String? = nil, status: HTTPResponse.Status = .ok) -> Response {
        let token = DashboardAuth.randomToken()
        let signedOut = request.uri.queryParameters["signed_out"] != nil
        var response = SignInView.render(formToken: token, configured: auth.isConfigured, passwordEnabled: auth.password != nil, notice: signedOut ? "Signed out." : nil, error: error, status: status)
        // Double submit: the form's token must equal this cookie's, so another site cannot sign a
        // browser into a session of its choosing.
        response.setCookie(auth.cookie(DashboardAuth.signInCookieName, token, maxAge: 3600))
        return response
    }

    private func signIn(_ request: Request, _ context: DoorbellRequestContext) async throws -> Response {
        let form = try await FormBody(request)
        guard let posted = form["_csrf"], let expected = request.cookies[DashboardAuth.signInCookieName]?.value,
              DashboardAuth.constantTimeEqual(posted, expected) else {
            return Layout.page("Forbidden", tab: nil, signedIn: nil, status: .forbidden, error: "The sign-in form expired or came from elsewhere. Load the sign-in page again.", "<p><a href=\"/ui/sign-in\">Sign in</a></p>")
        }
        let address = clientAddress.resolve(peer: context.peerAddress, forwardedFor: request.headers[values: .init("X-Forwarded-For")!]) ?? "unknown"
        let time = now()
        let principal: String
        switch await auth.checkSignIn(secret: form["secret"] ?? "", address: address, now: time) {
        case .signedIn(let who):
            principal = who
        case .refused:
            context.logger.notice("dashboard sign-in refused", metadata: ["client": "\(address)"])
            return signInPage(request, error: "That is not an API token from api.tokens, nor the dashboard password.", status: .unauthorized)
        case .blocked(let until, let everyone):
            let wait = Int(max(0, until.timeIntervalSince(time))) + 1
            let error = everyone
                ? "Too many failed password sign-ins from all addresses; the password is not checked for \(wait) s. API tokens still sign in."
                : "Too many failed sign-ins from \(address). Try again in \(wait) s."
            var response = signInPage(request, error: error, status: .tooManyRequests)
            response.headers[.retryAfter] = String(wait)
            return response
        }
        let cookie = try await auth.startSession(principal: principal)
        context.logger.notice("dashboard sign-in", metadata: ["client": "\(address)", "as": "\(principal)"])
        return Layout.redirect("/ui", cookies: [cookie, auth.cookie(DashboardAuth.signInCookieName, "", maxAge: 0)])
    }

    /// A page that needs a session: without one, a redirect to sign-in.
    private func page(_ request: Request, _ context: DoorbellRequestContext, _ body: (SignedIn) async throws -> Response) async throws -> Response {
        do {
            guard let signedIn = try await auth.session(of: request) else { return Layout.redirect("/ui/sign-in") }
            return try await body(signedIn)
        } catch let error as FilterError {
            return Layout.page("Bad filter", tab: nil, signedIn: try? await auth.session(of: request), status: .badRequest, error: error.message, "<p><a href=\"\(request.uri.path)\">Clear the filter</a></p>")
        } catch let error as StoreError {
            context.logger.error("dashboard: storage", metadata: ["error": "\(error)"])
            return Layout.page("Storage unavailable", tab: nil, signedIn: nil, status: .serviceUnavailable, error: "The store is unavailable (\(error.summary)). Try again shortly.", .empty)
        }
    }

    /// A state-changing request: a session and its CSRF token in the form, or 403.
    private func mutation(_ request: Request, _ context: DoorbellRequestContext, _ body: (SignedIn, FormBody) async throws -> Response) async throws -> Response {
        try await page(request, context) { signedIn in
            let form = try await FormBody(request)
            guard let token = form["_csrf"], DashboardAuth.constantTimeEqual(token, signedIn.csrfToken) else {
                context.logger.warning("dashboard: request without a valid CSRF token refused", metadata: ["path": "\(request.uri.path)"])
                return Layout.page("Forbidden", tab: nil, signedIn: signedIn, status: .forbidden, error: "This request did not carry the page's CSRF token, so nothing was changed.", "<p><a href=\"/ui\">Overview</a></p>")
            }
            return try await body(signedIn, form)
        }
    }

    func notFound(_ signedIn: SignedIn) -> Response {
        Layout.page("Not found", tab: nil, signedIn: signedIn, status: .notFound, error: "Nothing here (it may have been pruned).", "<p><a href=\"/ui\">Overview</a></p>")
    }

    // MARK: views

    private func overview(_ signedIn: SignedIn) async throws -> Response {
        let time = now()
        let dayAgo = time.addingTimeInterval(-86400)
        async let activity = store.sourceActivity(since: dayAgo)
        async let endpointActivity = store.endpointActivity(since: dayAgo)
        async let queue = store.queueCounts()
        async let endpoints = store.endpoints()
        async let circuits = store.openCircuits(now: time)
        async let dead = store.runs(matching: RunQuery(statuses: [.dead], limit: 10))
        async let recent = store.events(matching: EventQuery(limit: 10))
        async let pollers = store.pollerStates()
        return OverviewView.render(
            self, signedIn: signedIn, now: time, activity: try await activity, endpointActivity: try await endpointActivity, queue: try await queue,
            endpoints: try await endpoints, circuits: try await circuits, dead: try await dead, recent: try await recent, pollers: try await pollers
        )
    }

    private func events(_ request: Request, _ signedIn: SignedIn) async throws -> Response {
        let filter = ListFilter(query: request)
        let page = try await store.eventPage(matching: try filter.eventQuery(now: now()))
        return EventsView.render(filter: filter, page: page, sources: sourceIDs, signedIn: signedIn)
    }

    var sourceIDs: [String] { configuration.sources.map(\.id) + configuration.pollers.map(\.id) + [Source.apiID, Source.noticesID] }

    private func timeline(_ id: String, request: Request, signedIn: SignedIn) async throws -> Response {
        guard let event = try await store.event(id: id) else { return notFound(signedIn) }
        let runs = try await store.runs(eventID: id, limit: 1000)
        var details: [TimelineView.RunDetail] = []
        for run in runs {
            let steps = run.endpoint == nil ? try await store.stepResults(runID: run.id) : []
            let attempts = run.endpoint != nil ? try await store.attempts(runID: run.id) : []
            details.append(.init(run: run, steps: steps, attempts: attempts, automation: configuration.automations.first { $0.id == run.automation }))
        }
        let notice = request.uri.queryParameters["notice"].map(String.init)
        return TimelineView.render(event, runs: details, source: configuration.source(id: event.event.source), signedIn: signedIn, notice: notice)
    }

    private func runs(_ request: Request, deliveries: Bool, signedIn: SignedIn) async throws -> Response {
        let filter = ListFilter(query: request)
        let page = try await store.runPage(matching: try filter.runQuery(deliveries: deliveries, now: now()))
        return RunsView.render(filter: filter, page: page, deliveries: deliveries, sources: sourceIDs, signedIn: signedIn, notice: request.uri.queryParameters["notice"].map(String.init))
    }
}

/// The port the server listens on, once it does.
final class BoundPort: Sendable {
    let value = Mutex<Int?>(nil)
}
