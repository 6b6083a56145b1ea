import CoreMetrics

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

    public init(factory: any MetricsFactory) { self.factory = factory }

    /// Counts nothing (tools and tests that build a worker without a server).
    public static let none = WorkMetrics(factory: NOOPMetricsHandler.instance)

    public enum RunOutcome: String, Sendable {
        case started, succeeded, failed, dead
    }

    func run(_ automation: String, _ outcome: RunOutcome) {
        Counter(label: "doorbell_runs_total", dimensions: [("automation", automation), ("outcome", outcome.rawValue)], factory: factory).increment()
    }

    func step(kind: String, took duration: Duration) {
        Timer(label: "doorbell_step_duration_seconds", dimensions: [("kind", kind)], factory: factory).recordNanoseconds(duration.nanoseconds)
    }

    func attempt(endpoint: String, status: Int?, took duration: Duration) {
        let statusClass = status.map { "\($0 / 100)xx" } ?? "none"
        Counter(label: "doorbell_delivery_attempts_total", dimensions: [("endpoint", endpoint), ("status", statusClass)], factory: factory).increment()
        Timer(label: "doorbell_delivery_latency_seconds", dimensions: [("endpoint", endpoint)], factory: factory).recordNanoseconds(duration.nanoseconds)
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
