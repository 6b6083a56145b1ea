import DoorbellAutomation
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle

/// Builds the HTTP application from a configuration and an open store.
public enum DoorbellApplication {
    /// The application, ready for `runService()`. The store is its first service: started before
    /// the worker, retention and the HTTP server, and closed after they have stopped and finished
    /// their in-flight work (services shut down in reverse order of start).
    /// Endpoints declared in the file are written to the store first, so the first request already
    /// fans out to them.
    public static func make(
        configuration: Configuration,
        store: any DoorbellStore,
        logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() },
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) async throws -> some ApplicationProtocol {
        let router = Router(context: DoorbellRequestContext.self)
        let metrics = IngestMetrics(sources: configuration.sources)
        // Before any route: Hummingbird builds each route's middleware chain when the route is added.
        let serverMetrics = ServerMetrics(registry: metrics.registry)
        router.add(middleware: serverMetrics.http)
        store.commitObserver?.observe(serverMetrics.commit)
        try await store.syncConfigured(configuration.endpoints, overlap: configuration.outbound.rotationOverlap, now: now())
        let directory = EndpointDirectory(try await store.endpoints())
        let planner = EventPlanner(automations: configuration.automations, directory: directory, sources: configuration.sources)
        let worker = RunWorker(
            store: store, planner: planner, filesDirectory: configuration.filesDirectory, logger: logger,
            concurrency: configuration.worker.concurrency, lease: configuration.worker.lease,
            outbound: configuration.outbound, retry: configuration.retry, metrics: serverMetrics.work, now: now
        )
        let retention = RetentionService(store: store, policy: configuration.retention, logger: logger, now: now)
        let pollers = PollerService.make(configuration: configuration, store: store, planner: planner, logger: logger, now: now)
        let services: [any Service] = [store, worker, retention, pollers]
        // The worker hears of new work through the store's wake-ups, not from the handlers.
        IngestController(configuration: configuration, store: store, planner: planner, metrics: metrics, now: now).addRoutes(to: router)
        APIController(configuration: configuration, store: store, planner: planner, now: now).addRoutes(to: router)
        HealthController(store: store).addRoutes(to: router)
        PollerAPI(configuration: configuration, service: pollers, store: store).addRoutes(to: router)
        let dashboard = DashboardController(configuration: configuration, store: store, planner: planner, now: now)
        dashboard.addRoutes(to: router)
        let databaseBytes = (metrics.registry.makeGauge(name: "doorbell_database_bytes", labels: [("file", "db")]), metrics.registry.makeGauge(name: "doorbell_database_bytes", labels: [("file", "wal")]))
        let databasePages = (metrics.registry.makeGauge(name: "doorbell_database_pages", labels: [("kind", "total")]), metrics.registry.makeGauge(name: "doorbell_database_pages", labels: [("kind", "free")]))
        // 1 while wake-ups arrive by LISTEN (PostgreSQL), 0 while the node polls because that
        // connection is down; absent on SQLite, whose wake-ups are in-process.
        let listening = store.readinessNotes["wake_ups"].map { _ in metrics.registry.makeGauge(name: "doorbell_wakeups_listening") }
        let scrapeReads = ScrapeRefresh(now: now)
        router.get("/metrics") { _, _ in
            listening?.set(store.readinessNotes["wake_ups"] == "listening" ? 1.0 : 0.0)
            // The store's figures at most every 10 s, one read at a time (see ScrapeRefresh).
            await scrapeReads.refreshIfStale {
                await serverMetrics.refreshQueue(store, now: now())
                // The database's size, read when scraped (a stat and two pragmas).
                if let size = try? await store.storageSize() {
                    databaseBytes.0.set(Double(size.fileBytes))
                    databaseBytes.1.set(Double(size.walBytes))
                    databasePages.0.set(Double(size.pageCount))
                    databasePages.1.set(Double(size.freePages))
                }
            }
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.text()))
            )
        }
        for route in OpenAPI.undocumented(router.routes.map { "\($0.method) \($0.path)" }) {
            logger.warning("\(route) is not in the OpenAPI document (Sources/DoorbellServer/OpenAPI.swift)")
        }
        let server = configuration.server
        let limits = ConnectionLimits(server, logger: logger)
        let connections = ConnectionBudget.atStart(configured: server.maxConnections)
        if let warning = connections.warning { logger.warning("\(warning)") }
        HeapPolicy.returnLargeBlocks()
        return Application(
            router: router,
            // Slow or stalled clients are cut off (ConnectionGuard); idle keep-alive connections close.
            server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionGuard(limits)], idleTimeout: TimeAmount(server.idleTimeout))),
            configuration: .init(
                address: .hostname(server.host, port: server.port),
                serverName: "doorbell",
                // Beyond the cap, new connections wait in the listen backlog until one closes.
                availableConnectionsDelegate: MaximumAvailableConnections(connections.maxConnections, logger: logger)
            ),
            // Shut down in reverse: the server drains, then the worker finishes its steps, then the store closes.
            services: services,
            onServerRunning: { channel in
                dashboard.serverRunning(channel)
                await onServerRunning(channel)
            },
            logger: logger
        )
    }
}

/// `/healthz`: the process is up. `/readyz`: the store can acknowledge events — its file is the one
/// it opened and the last write committed. Otherwise 503 with a few words (`"database file lost"`,
/// `"last write failed"`): the endpoint needs no token, so paths and SQLite's messages go to the log
/// only.
struct HealthController: Sendable {
    let store: any EventStore

    func addRoutes(to router: Router<DoorbellRequestContext>) {
        router.get("/healthz") { _, _ in
            JSONResponse.make(.ok, ["status": "ok"])
        }
        router.get("/readyz") { _, context in
            do {
                try await store.checkReady()
                return JSONResponse.make(.ok, store.readinessNotes.merging(["status": "ready"]) { _, status in status })
            } catch {
                context.logger.warning("not ready", metadata: ["error": "\(error)"])
                let reason = (error as? StoreError)?.summary ?? "storage unavailable"
                return JSONResponse.make(.serviceUnavailable, store.readinessNotes.merging(["status": "unavailable", "reason": reason]) { _, own in own })
            }
        }
    }
}
