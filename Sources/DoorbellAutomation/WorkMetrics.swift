import CoreMetrics
import Synchronization

/// What the worker counts, through swift-metrics with an injected factory (the server passes its
/// Prometheus registry's; no global bootstrap, so several servers in one process stay apart):
/// - `doorbell_runs_total{automation,outcome}`: outcome `started` (first claim), `succeeded`,
///   `failed` (an attempt failed; a retry is scheduled), `dead`
/// - `doorbell_step_duration_seconds{kind}`: a histogram of each step's run time by step kind
/// - `doorbell_delivery_attempts_total{endpoint,status}`: status `2xx` … `5xx`, or `none` when no
///   answer came (refused, timeout, blocked address)
/// - `doorbell_delivery_latency_seconds{endpoint}`: a histogram of each attempt's time to answer
public struct WorkMetrics: Sendable {
    private let factory: any MetricsFactory
    /// Nil for `none`: building a no-op handle costs less than finding a kept one.
    private let handles: Handles?

    public init(factory: any MetricsFactory) {
        self.factory = factory
        self.handles = factory is NOOPMetricsHandler ? nil : Handles()
    }

    /// Counters and timers made once per series and kept: building one through the factory on every
    /// run and attempt took the registry's lock and label lookups and allocated (~1 % of a delivery
    /// drain). The registry hands back the same series for the same labels, so a kept handle counts
    /// where a new one would. Label values come from the config and the store's endpoints (and a
    /// fixed set of outcomes, kinds and status classes); the registry keeps their series as long.
    private final class Handles: Sendable {
        let counters = Mutex<[Series: Counter]>([:])
        let timers = Mutex<[Series: Timer]>([:])
    }

    /// A metric's name and its label values, in its fixed label order.
    private struct Series: Hashable {
        let label: String
        let first: String
        var second = ""
    }

    /// The kept counter for `series`; `dimensions` are built only the first time.
    private func counter(_ series: Series, _ dimensions: () -> [(String, String)]) -> Counter {
        guard let handles else { return Counter(label: series.label, dimensions: dimensions(), factory: factory) }
        return Self.kept(handles.counters, series) { Counter(label: series.label, dimensions: dimensions(), factory: factory) }
    }

    /// The kept timer for `series`; `dimensions` are built only the first time.
    private func timer(_ series: Series, _ dimensions: () -> [(String, String)]) -> Timer {
        guard let handles else { return Timer(label: series.label, dimensions: dimensions(), factory: factory) }
        return Self.kept(handles.timers, series) { Timer(label: series.label, dimensions: dimensions(), factory: factory) }
    }

    /// The handle kept for `series`, made (outside the lock) the first time; when two tasks make one
    /// at once, the first kept is the one both use.
    private static func kept<Handle: Sendable>(_ handles: borrowing Mutex<[Series: Handle]>, _ series: Series, make: () -> Handle) -> Handle {
        if let handle = handles.withLock({ $0[series] }) { return handle }
        let made = make()
        return handles.withLock { handles in
            if let kept = handles[series] { return kept }
            handles[series] = made
            return made
        }
    }

    /// Counts nothing (tools and tests that build a worker without a server).
    public static let none = WorkMetrics(factory: NOOPMetricsHandler.instance)

    public enum RunOutcome: String, Sendable {
        case started, succeeded, failed, dead
    }

    func run(_ automation: String, _ outcome: RunOutcome) {
        counter(Series(label: "doorbell_runs_total", first: automation, second: outcome.rawValue)) {
            [("automation", automation), ("outcome", outcome.rawValue)]
        }.increment()
    }

    func step(kind: String, took duration: Duration) {
        timer(Series(label: "doorbell_step_duration_seconds", first: kind)) { [("kind", kind)] }.recordNanoseconds(duration.nanoseconds)
    }

    func attempt(endpoint: String, status: Int?, took duration: Duration) {
        let statusClass = status.map { "\($0 / 100)xx" } ?? "none"
        counter(Series(label: "doorbell_delivery_attempts_total", first: endpoint, second: statusClass)) {
            [("endpoint", endpoint), ("status", statusClass)]
        }.increment()
        timer(Series(label: "doorbell_delivery_latency_seconds", first: endpoint)) { [("endpoint", endpoint)] }.recordNanoseconds(duration.nanoseconds)
    }
}

extension Duration {
    /// Whole nanoseconds, saturating.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? Int64.max : scaled + attoseconds / 1_000_000_000
    }
}
