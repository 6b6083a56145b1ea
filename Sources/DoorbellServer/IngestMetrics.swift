import DoorbellCore
import Prometheus

/// Ingest counters, exposed at `/metrics` in Prometheus text format:
/// `doorbell_events_received_total{source,duplicate}` and `doorbell_rejections_total{source,reason}`.
/// Each application has its own registry, so several servers in one process (tests) do not mix.
struct IngestMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    /// Created once per source at start-up, so the hot path only increments.
    private let stored: [String: Counter]
    private let duplicates: [String: Counter]

    init(sources: [Source], registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var stored: [String: Counter] = [:]
        var duplicates: [String: Counter] = [:]
        for source in sources {
            stored[source.id] = registry.makeCounter(name: "doorbell_events_received_total", labels: [("source", source.id), ("duplicate", "false")])
            duplicates[source.id] = registry.makeCounter(name: "doorbell_events_received_total", labels: [("source", source.id), ("duplicate", "true")])
        }
        self.stored = stored
        self.duplicates = duplicates
    }

    func received(source: String, duplicate: Bool) {
        (duplicate ? duplicates : stored)[source]?.increment()
    }

    /// Counts a refusal; `reason` is a short label (`signature_mismatch`, `address_not_allowed`, …).
    func rejected(source: String, reason: String) {
        registry.makeCounter(name: "doorbell_rejections_total", labels: [("source", source), ("reason", reason)]).increment()
    }

    func text() -> [UInt8] {
        registry.emitToBuffer()
    }
}
