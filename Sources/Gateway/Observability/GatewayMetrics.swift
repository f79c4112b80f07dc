import CoreMetrics
import NIOConcurrencyHelpers
import Prometheus

/// The gateway's metrics, in its own Prometheus registry (so several gateways can live in one
/// test process). The two per-request metrics are kept per event loop instead (`RequestStats`)
/// and rendered next to the registry's output.
final class GatewayMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let errorCounters = NIOLockedValueBox<[String: CoreMetrics.Counter]>([:])
    private let gauges = NIOLockedValueBox<[String: CoreMetrics.Gauge]>([:])

    init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2), .seconds(5), .seconds(10),
        ]
        self.factory = factory
        consistencyWaitTimer = CoreMetrics.Timer(label: "gateway_consistency_wait_seconds", dimensions: [], factory: factory)
    }

    private let consistencyWaitTimer: CoreMetrics.Timer

    /// `gateway_errors_total{kind}`: bad requests, timeouts, upstream failures...
    func countError(_ kind: String) {
        countEvent("gateway_errors_total", [("kind", kind)])
    }

    /// Increments a counter, created on first use (for events rarer than requests).
    func countEvent(_ label: String, _ dimensions: [(String, String)], by amount: Int = 1) {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        let counter = errorCounters.withLockedValue { counters in
            if let counter = counters[key] { return counter }
            let counter = CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
            counters[key] = counter
            return counter
        }
        counter.increment(by: amount)
    }

    /// How long reads waited for a replica to replay their client's write (outcomes are counted
    /// in `gateway_consistency_reads_total`).
    func recordConsistencyWait(nanoseconds: Int64) {
        consistencyWaitTimer.recordNanoseconds(nanoseconds)
    }

    /// Sets a gauge, creating it on first use (values computed when /metrics is scraped).
    func setGauge(_ label: String, _ dimensions: [(String, String)], _ value: Double) {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        let gauge = gauges.withLockedValue { gauges in
            if let gauge = gauges[key] { return gauge }
            let gauge = CoreMetrics.Gauge(label: label, dimensions: dimensions, factory: factory)
            gauges[key] = gauge
            return gauge
        }
        gauge.record(value)
    }

    /// Drops the gauges of things a reload removed (a server, a pool), so a scrape does not
    /// keep reporting their last values. `dimensions` must all match.
    func removeGauges(with dimensions: [(String, String)]) {
        let parts = dimensions.map { "|\($0.0)=\($0.1)" }
        let removed = gauges.withLockedValue { gauges in
            let keys = gauges.keys.filter { key in parts.allSatisfy { key.contains($0 + "|") || key.hasSuffix($0) } }
            return keys.compactMap { gauges.removeValue(forKey: $0) }
        }
        for gauge in removed { gauge.destroy() }
    }

    /// The Prometheus text exposition of everything.
    func render(requestStats: [(pool: String, stats: RequestStats)]) -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        buffer += RequestStats.render(requestStats)
        return buffer
    }
}

