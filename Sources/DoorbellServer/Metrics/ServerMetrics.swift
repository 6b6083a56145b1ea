import CoreMetrics
import DoorbellAutomation
import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird
import Prometheus
import Synchronization

/// The server's metrics beyond ingest, all in the application's own Prometheus registry through
/// swift-metrics (a `PrometheusMetricsFactory` over it; nothing bootstraps the global system):
/// - the worker's (`WorkMetrics`): runs by automation and outcome, step duration by kind, delivery
///   attempts by endpoint and status class, delivery latency
/// - `doorbell_queue_depth{kind,status}`: runs and deliveries by status, read when scraped
/// - `doorbell_queue_oldest_due_seconds`: how long the most overdue work has waited (a run or
///   delivery due, or a claim whose lease lapsed); 0 when nothing is overdue; read when scraped
/// - `doorbell_group_commit_batch_size` and `doorbell_group_commit_seconds`: histograms of each
///   group commit's item count and time
/// - `doorbell_http_requests_total{route,method,status}` and `doorbell_http_request_duration_seconds{route,method}`:
///   the route is the matched pattern (`/api/v1/runs/{id}`), never the raw path
struct ServerMetrics: Sendable {
    let factory: PrometheusMetricsFactory
    let work: WorkMetrics

    init(registry: PrometheusCollectorRegistry) {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["doorbell_group_commit_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        factory.durationHistogramBuckets["doorbell_group_commit_seconds"] = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
        ]
        self.factory = factory
        self.work = WorkMetrics(factory: factory)
    }

    /// Records one group commit (the store calls it after each batch).
    var commit: @Sendable (Int, Duration) -> Void {
        let factory = factory
        return { items, duration in
            Recorder(label: "doorbell_group_commit_batch_size", dimensions: [], aggregate: true, factory: factory).record(items)
            Timer(label: "doorbell_group_commit_seconds", dimensions: [], factory: factory).recordNanoseconds(duration.wholeNanoseconds)
        }
    }

    var http: HTTPMetricsMiddleware { HTTPMetricsMiddleware(factory: factory) }

    /// Reads the queue's depth and its most overdue item from the store (at scrape time).
    func refreshQueue(_ store: any DoorbellStore, now: Date) async {
        if let counts = try? await store.queueCounts() {
            for (kind, byStatus) in [("runs", counts.runs), ("deliveries", counts.deliveries)] {
                for status in RunStatus.allCases {
                    Gauge(label: "doorbell_queue_depth", dimensions: [("kind", kind), ("status", status.rawValue)], factory: factory)
                        .record(byStatus[status] ?? 0)
                }
            }
        }
        if let due = try? await store.nextDueDate() {
            Gauge(label: "doorbell_queue_oldest_due_seconds", dimensions: [], factory: factory).record(max(0, now.timeIntervalSince(due)))
        } else {
            Gauge(label: "doorbell_queue_oldest_due_seconds", dimensions: [], factory: factory).record(0)
        }
    }
}

/// Counts every request by its route pattern, method and status, and times it. A request no route
/// matched counts as route `unmatched`, an unusual method as `other`: a raw path or method is
/// caller-chosen text and would grow the series without bound.
struct HTTPMetricsMiddleware: RouterMiddleware {
    typealias Context = DoorbellRequestContext
    let factory: PrometheusMetricsFactory
    let series: HTTPSeries

    init(factory: PrometheusMetricsFactory) {
        self.factory = factory
        self.series = HTTPSeries(factory: factory)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(request, context, status: response.status.code, took: ContinuousClock.now - started)
            return response
        } catch {
            record(request, context, status: (error as? any HTTPResponseError)?.status.code ?? 500, took: ContinuousClock.now - started)
            throw error
        }
    }

    static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    private func record(_ request: Request, _ context: Context, status: Int, took duration: Duration) {
        let route = context.endpointPath.flatMap { $0 == "NotFound" ? nil : $0 } ?? "unmatched"
        // Any token is a method to the HTTP parser: only the known ones become label values.
        let method = Self.knownMethods.contains(request.method.rawValue) ? request.method.rawValue : "other"
        let (counter, timer) = series.metrics(route: route, method: method, status: status)
        counter.increment()
        timer.recordNanoseconds(duration.wholeNanoseconds)
    }
}

/// The counter and timer of each (route, method, status), made once: making one hashes its label
/// and dimensions in the factory, which every request paid. Bounded: routes are patterns, methods
/// a fixed set, statuses three digits.
final class HTTPSeries: Sendable {
    private struct Key: Hashable {
        let route: String
        let method: String
        let status: Int
    }

    private struct Made: Sendable {
        let counter: CoreMetrics.Counter
        let timer: CoreMetrics.Timer
    }

    private let factory: PrometheusMetricsFactory
    private let made = Mutex<[Key: Made]>([:])

    init(factory: PrometheusMetricsFactory) { self.factory = factory }

    func metrics(route: String, method: String, status: Int) -> (CoreMetrics.Counter, CoreMetrics.Timer) {
        let key = Key(route: route, method: method, status: status)
        if let found = made.withLock({ $0[key] }) { return (found.counter, found.timer) }
        let created = Made(
            counter: Counter(label: "doorbell_http_requests_total", dimensions: [("route", route), ("method", method), ("status", String(status))], factory: factory),
            timer: Timer(label: "doorbell_http_request_duration_seconds", dimensions: [("route", route), ("method", method)], factory: factory)
        )
        made.withLock { $0[key] = $0[key] ?? created }
        return (created.counter, created.timer)
    }
}

extension Duration {
    /// Whole nanoseconds, saturating.
    var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? Int64.max : scaled + attoseconds / 1_000_000_000
    }
}
