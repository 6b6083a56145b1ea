import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird

/// `/api/v1/runs`, an event's timeline and replay, and `/api/v1/sources`.
extension APIController {
    // MARK: events

    /// `GET /api/v1/events/{id}`: the event with its runs (and their steps) and deliveries (and
    /// their attempts).
    func showEvent(_ context: DoorbellRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let stored = try await store.event(id: id) else { throw APIError(.notFound, "unknown event '\(id.prefix(200))'") }
        var runs: [RunView] = []
        var deliveries: [DeliveryView] = []
        for run in try await store.runs(eventID: id, limit: 1000) {
            if run.endpoint != nil {
                deliveries.append(DeliveryView(run, attempts: try await store.attempts(runID: run.id).map(AttemptView.init)))
            } else {
                runs.append(RunView(run, steps: try await steps(of: run)))
            }
        }
        return JSONResponse.make(.ok, EventDetail(stored, runs: runs, deliveries: deliveries))
    }

    /// `POST /api/v1/events/{id}/replay`: the event's dead runs again (with `from_start`, succeeded
    /// ones too, from their first step); with `automation`, only that one, started if it never ran.
    func replayEvent(_ request: Request, _ context: DoorbellRequestContext) async throws -> Response {
        let body = try await decodeBody(ReplayEventRequest.self, request, limit: Self.maxBody)
        let id = context.parameters.get("id") ?? ""
        guard try await store.event(id: id) != nil else { throw APIError(.notFound, "unknown event '\(id.prefix(200))'") }
        var started = false
        if let automation = body.automation {
            guard configuration.automations.contains(where: { $0.id == automation }) else { throw APIError.field("automation", "no automation '\(automation.prefix(200))' in doorbell.yml") }
            started = try await store.startRun(eventID: id, automation: automation, now: now())
        }
        let query = RunQuery(eventID: id, automation: body.automation, deliveries: false).replayable(fromStart: body.fromStart)
        var count = 0
        if let query { count = try await store.replay(matching: query, fromStart: body.fromStart, now: now()) }
        return JSONResponse.make(.accepted, ReplayCount(replayed: count + (started ? 1 : 0), dryRun: false))
    }

    // MARK: runs

    /// `GET /api/v1/runs`: automation runs, newest first, by the shared filters plus `automation`, `event`.
    func listRuns(_ request: Request) async throws -> Response {
        let query = try APIFilters(request).runQuery(deliveries: false)
        let page = try await store.runPage(matching: query)
        return JSONResponse.make(.ok, Page(data: page.runs.map { RunView($0) }, nextCursor: page.next?.description))
    }

    /// `GET /api/v1/runs/{id}`: one run with its completed steps.
    func showRun(_ context: DoorbellRequestContext) async throws -> Response {
        let run = try await automationRun(context)
        return JSONResponse.make(.ok, RunView(run, steps: try await steps(of: run)))
    }

    /// `POST /api/v1/runs/{id}/replay`: a dead run resumes at its failed step; with `from_start`
    /// (or a succeeded run) it starts again at step one. 409 while it is pending or running.
    func replayRun(_ request: Request, _ context: DoorbellRequestContext) async throws -> Response {
        let body = try await decodeBody(ReplayRunRequest.self, request, limit: Self.maxBody)
        let run = try await automationRun(context)
        let fromStart = body.fromStart || run.status == .succeeded
        let count = try await store.replay(matching: .only(run), fromStart: fromStart, now: now())
        return JSONResponse.make(count > 0 ? .accepted : .conflict, RunReplayed(replayed: count, status: run.status.rawValue))
    }

    /// `POST /api/v1/runs/replay`: every automation run the filter selects (dead ones by default);
    /// `dry_run` answers how many without replaying any.
    func replayRuns(_ request: Request) async throws -> Response {
        let body = try await decodeBody(BulkReplayRequest.self, request, limit: Self.maxBody)
        guard let selection = try APIFilters(body.filter).runQuery(deliveries: false).replayable(fromStart: body.fromStart) else {
            return JSONResponse.make(body.dryRun ? .ok : .accepted, ReplayCount(replayed: 0, dryRun: body.dryRun))
        }
        if body.dryRun { return JSONResponse.make(.ok, ReplayCount(replayed: try await store.countRuns(matching: selection), dryRun: true)) }
        try await checkBulk(selection, filter: body.filter, noun: "runs")
        let count = try await store.replay(matching: selection, fromStart: body.fromStart, now: now())
        return JSONResponse.make(.accepted, ReplayCount(replayed: count, dryRun: false))
    }

    /// The most runs or deliveries one bulk replay or retry touches; a wider filter is a 400 and
    /// must be narrowed (by `since`/`until`, say). A dry run still counts any number.
    static let bulkCap = 10_000

    /// Refuses (400) a bulk replay of succeeded runs with nothing but a status to narrow it (every
    /// run that ever succeeded), and one selecting more than `bulkCap`.
    func checkBulk(_ selection: RunQuery, filter: [String: String], noun: String) async throws {
        let narrowed = filter.contains { $0.key != "status" && !$0.value.isEmpty }
        if selection.statuses.contains(.succeeded), !narrowed {
            throw APIError(.badRequest, "replaying succeeded \(noun) needs a filter besides status (source, type, since, until, q, …)")
        }
        let count = try await store.countRuns(matching: selection)
        if count > Self.bulkCap {
            throw APIError(.badRequest, "the filter selects \(count) \(noun); at most \(Self.bulkCap) are replayed at once: narrow it (since/until, source, type)")
        }
    }

    private func automationRun(_ context: DoorbellRequestContext) async throws -> RunRecord {
        let id = context.parameters.get("id") ?? ""
        guard let run = try await store.run(id: id), run.endpoint == nil else { throw APIError(.notFound, "unknown run '\(id.prefix(200))'") }
        return run
    }

    /// A run's completed steps in step order, with when each completed.
    private func steps(of run: RunRecord) async throws -> [StepView] {
        try await store.stepResults(runID: run.id).map(StepView.init)
    }

    // MARK: sources

    /// `GET /api/v1/sources`: the configured sources and `api` (published events), with how many
    /// events each holds and when the newest arrived.
    func listSources() async throws -> Response {
        var rows = configuration.sources.map { (id: $0.id, provider: $0.provider.rawValue) }
        if !rows.contains(where: { $0.id == Source.apiID }) { rows.append((id: Source.apiID, provider: "api")) }
        var views: [SourceView] = []
        for row in rows {
            let count = try await store.countEvents(matching: EventQuery(source: row.id))
            let newest = count > 0 ? try await store.events(matching: EventQuery(source: row.id, limit: 1)).first?.event.receivedAt : nil
            views.append(SourceView(id: row.id, provider: row.provider, events: count, lastEventAt: newest))
        }
        return JSONResponse.make(.ok, DataList(data: views))
    }
}
