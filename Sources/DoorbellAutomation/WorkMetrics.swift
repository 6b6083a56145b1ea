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
    private let handles = Handles()

    public init(factory: any MetricsFactory) { self.factory = factory }

    /// Counters and timers made once per label set and kept: building one through the factory on
    /// every run and attempt took the registry's lock and label lookups and allocated (~1 % of a
    /// delivery drain). Label values come from the config and the store's endpoints (and a fixed set
    /// of outcomes, kinds and status classes), as the registry's own series do.
    private final class Handles: Sendable {
        let counters = Mutex<[String: Counter]>([:])
        let timers = Mutex<[String: Timer]>([:])
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = Self.key(label, dimensions)
        if let counter = handles.counters.withLock({ $0[key] }) { return counter }
        let counter = Counter(label: label, dimensions: dimensions, factory: factory)
        handles.counters.withLock { $0[key] = counter }
        return counter
    }

    private func timer(_ label: String, _ dimensions: [(String, String)]) -> Timer {
        let key = Self.key(label, dimensions)
        if let timer = handles.timers.withLock({ $0[key] }) { return timer }
        let timer = Timer(label: label, dimensions: dimensions, factory: factory)
        handles.timers.withLock { $0[key] = timer }
        return timer
    }

    /// One string per series: the parts separated by a byte no label value holds unescaped (NUL).
    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.reduce(into: label) { key, dimension in key += "\u{0}\(dimension.0)\u{0}\(dimension.1)" }
    }

    /// Counts nothing (tools and tests that build a worker without a server).
    public static let none = WorkMetrics(factory: NOOPMetricsHandler.instance)

    public enum RunOutcome: String, Sendable {
        case started, succeeded, failed, dead
    }

    func run(_ automation: String, _ outcome: RunOutcome) {
        counter("doorbell_runs_total", [("automation", automation), ("outcome", outcome.rawValue)]).increment()
    }

    func step(kind: String, took duration: Duration) {
        timer("doorbell_step_duration_seconds", [("kind", kind)]).recordNanoseconds(duration.nanoseconds)
    }

    func attempt(endpoint: String, status: Int?, took duration: Duration) {
        let statusClass = status.map { "\($0 / 100)xx" } ?? "none"
        counter("doorbell_delivery_attempts_total", [("endpoint", endpoint), ("status", statusClass)]).increment()
        timer("doorbell_delivery_latency_seconds", [("endpoint", endpoint)]).recordNanoseconds(duration.nanoseconds)
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
