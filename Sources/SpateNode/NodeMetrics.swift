public import Prometheus
import SpateQuery
import SpateWire
import Synchronization

/// Retention as `/metrics` shows it.
struct RetentionSnapshot: Sendable {
    /// When retention last ran anywhere in the cluster (Unix ms; 0: never).
    var lastRunMs: UInt64
    /// Indices this node deleted since it started.
    var deletedIndices: UInt64
    /// Bytes over `retention.max_total_bytes` after the last run.
    var bytesOverCap: Int64
    /// Whether this node holds the retention lease.
    var holdsLease: Bool
}

/// The node's Prometheus registry. The ingest hot path keeps plain atomics (`NodeCounters`);
/// they are copied into Prometheus counters and gauges when `/metrics` is scraped, so a scrape
/// costs the scraper, never the workers. Latencies are recorded as they happen in histograms.
public final class NodeMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// One bulk request to the store, retries excluded.
    let bulkDuration: DurationHistogram
    private let counters: NodeCounters
    private let synced = Mutex<Synced>(Synced())
    private let queryDurations = Mutex<[String: DurationHistogram]>([:])
    private let queryCalls = Mutex<[String: Counter]>([:])

    private struct Synced {
        var last: [String: UInt64] = [:]
        var lag: [Int32: (lag: Gauge, next: Gauge)] = [:]
    }

    /// Monotonic counters mirrored from `NodeCounters` (name, help, reader).
    private let mirrored: [(name: String, counter: Counter, read: @Sendable (NodeCounters) -> UInt64)]
    private let gauges: [(Gauge, @Sendable (NodeCounters) -> Double)]
    /// Filled once the query listener exists.
    private let query = Mutex<(engine: QueryEngine, connections: @Sendable () -> Int)?>(nil)
    private let cacheHits: Counter
    private let storeQueries: Counter
    private let closedFills: Counter
    private let openSearches: Counter
    private let plainAnswers: Counter
    private let closedBytes: Gauge
    private let coalesced: Counter
    private let connections: Gauge
    /// Filled when retention is enabled.
    private let retention = Mutex<(@Sendable () -> RetentionSnapshot)?>(nil)
    private let retentionGauges: (lastRun: Gauge, overCap: Gauge, lease: Gauge)
    private let retentionDeleted: Counter

    public init(counters: NodeCounters, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.counters = counters
        func d(_ subsystem: String, _ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "spate", subsystem: subsystem, metricName: name, unitName: unit, helpText: help)
        }
        let counterSpecs: [(MetricNameDescriptor, @Sendable (NodeCounters) -> UInt64)] = [
            (d("ingest", "messages", "total", "Kafka messages consumed"), { $0.messages.load(ordering: .relaxed) }),
            (d("ingest", "records", "total", "Records in decodable messages (folded, late or skipped by a replay)"), { $0.records.load(ordering: .relaxed) }),
            (d("ingest", "records_folded", "total", "Records folded into rollups"), { $0.recordsFolded.load(ordering: .relaxed) }),
            (d("ingest", "records_late", "total", "Records older than the watermark allows, sent to the dead-letter topic"), { $0.recordsLate.load(ordering: .relaxed) }),
            (d("ingest", "records_replay_skipped", "total", "Records skipped while replaying up to the replay horizon"), { $0.recordsReplaySkipped.load(ordering: .relaxed) }),
            (d("ingest", "records_replayed", "total", "Records read again below a resumed partition's checkpoint horizon"), { $0.recordsReplayed.load(ordering: .relaxed) }),
            (d("ingest", "snapshots_written", "total", "Open-bucket snapshots written with checkpoints"), { $0.snapshotsWritten.load(ordering: .relaxed) }),
            (d("ingest", "snapshot_bytes", "total", "Bytes of open-bucket snapshots written"), { $0.snapshotBytes.load(ordering: .relaxed) }),
            (d("ingest", "snapshot_restores", "total", "Partitions resumed from an open-bucket snapshot"), { $0.snapshotRestores.load(ordering: .relaxed) }),
            (d("ingest", "snapshot_fallbacks", "total", "Partitions replayed because their snapshot was missing or unusable"), { $0.snapshotFallbacks.load(ordering: .relaxed) }),
            (d("ingest", "messages_malformed", "total", "Messages that did not decode, sent to the dead-letter topic"), { $0.messagesMalformed.load(ordering: .relaxed) }),
            (d("ingest", "dead_letters", "total", "Dead letters acknowledged by Kafka"), { $0.deadLetters.load(ordering: .relaxed) }),
            (d("ingest", "dead_letter_failures", "total", "Dead letter deliveries Kafka did not acknowledge (each is retried)"), { $0.deadLetterFailures.load(ordering: .relaxed) }),
            (d("store", "documents_written", "total", "Rollup documents stored"), { $0.documentsWritten.load(ordering: .relaxed) }),
            (d("store", "documents_conflicted", "total", "Rollup documents already stored at this or a newer version (replays)"), { $0.documentsConflicted.load(ordering: .relaxed) }),
            (d("store", "documents_rejected", "total", "Rollup documents the store rejected for their content, sent to the dead-letter topic"), { $0.documentsRejected.load(ordering: .relaxed) }),
            (d("store", "bulk_requests", "total", "Bulk requests sent"), { $0.bulkRequests.load(ordering: .relaxed) }),
            (d("store", "bulk_retries", "total", "Bulk requests retried (429, 5xx, timeouts)"), { $0.bulkRetries.load(ordering: .relaxed) }),
            (d("ingest", "checkpoints", "total", "Partition checkpoints written"), { $0.checkpoints.load(ordering: .relaxed) }),
            (d("ingest", "commits", "total", "Kafka offset commits"), { $0.commits.load(ordering: .relaxed) }),
            (d("ingest", "pauses", "total", "Times the node paused its partitions for backpressure"), { $0.pauses.load(ordering: .relaxed) }),
            (d("store", "refusals", "total", "Bulk or checkpoint writes the store refused (auth, write block, 413, unreadable answer), retried"), { $0.storeRefusals.load(ordering: .relaxed) }),
            (d("ingest", "dead_letter_retries", "total", "Dead letters sent again after Kafka refused them"), { $0.deadLetterRetries.load(ordering: .relaxed) }),
        ]
        mirrored = counterSpecs.map { ($0.0.name, registry.makeCounter(descriptor: $0.0), $0.1) }
        let gaugeSpecs: [(MetricNameDescriptor, @Sendable (NodeCounters) -> Double)] = [
            (d("ingest", "pending_documents", "count", "Documents handed to the writer, not yet acknowledged"), { Double($0.pendingDocuments.load(ordering: .relaxed)) }),
            (d("ingest", "pending", "bytes", "Bytes handed to the writer, not yet acknowledged"), { Double($0.pendingBytes.load(ordering: .relaxed)) }),
            (d("ingest", "open_state", "bytes", "Open rollup state"), { Double($0.openStateBytes.load(ordering: .relaxed)) }),
            (d("process", "resident", "bytes", "Resident memory"), { Double($0.residentBytes.load(ordering: .relaxed)) }),
        ]
        gauges = gaugeSpecs.map { (registry.makeGauge(descriptor: $0.0), $0.1) }
        bulkDuration = registry.makeDurationHistogram(
            descriptor: d("store", "bulk_duration", "seconds", "Duration of one bulk request"), labels: [],
            buckets: [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                      .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30)])
        cacheHits = registry.makeCounter(descriptor: d("query", "cache_hits", "total", "Queries answered from the result cache"))
        storeQueries = registry.makeCounter(descriptor: d("query", "store_requests", "total", "Searches sent to the store"))
        closedFills = registry.makeCounter(descriptor: d("query", "closed_fill_searches", "total", "Store searches reading slots that closed, into the closed-slot cache"))
        openSearches = registry.makeCounter(descriptor: d("query", "open_searches", "total", "Store searches for what can still change (after each partition's cached slots)"))
        plainAnswers = registry.makeCounter(descriptor: d("query", "whole_range_answers", "total", "Answers read from the store over their whole range (a shape the closed-slot cache cannot hold)"))
        closedBytes = registry.makeGauge(descriptor: d("query", "closed_cache", "bytes", "Estimated bytes of the closed-slot cache"))
        coalesced = registry.makeCounter(descriptor: d("query", "coalesced", "total", "Queries that joined an identical one in flight"))
        connections = registry.makeGauge(descriptor: d("query", "connections", "count", "Open query connections"))
        retentionGauges = (
            registry.makeGauge(descriptor: d("retention", "last_run_timestamp", "seconds", "When retention last ran in the cluster (Unix time; 0: never)")),
            registry.makeGauge(descriptor: d("retention", "over_cap", "bytes", "Bytes of Spate indices over retention.max_total_bytes after the last run")),
            registry.makeGauge(descriptor: d("retention", "lease_held", "", "1 when this node holds the retention lease")))
        retentionDeleted = registry.makeCounter(descriptor: d("retention", "deleted_indices", "total", "Daily indices this node deleted"))
    }

    func attach(retention reader: @escaping @Sendable () -> RetentionSnapshot) {
        retention.withLock { $0 = reader }
    }

    func attach(engine: QueryEngine, connections: @escaping @Sendable () -> Int) {
        query.withLock { $0 = (engine, connections) }
    }

    /// Records one call of the query protocol: its duration and terminal status.
    func recordCall(method: String, code: StatusCode, duration: Duration) {
        let histogram = queryDurations.withLock { h in
            if let x = h[method] { return x }
            let x = registry.makeDurationHistogram(
                descriptor: MetricNameDescriptor(
                    namespace: "spate", subsystem: "query", metricName: "call_duration", unitName: "seconds",
                    helpText: "Duration of a query call (Watch: until the watcher leaves)"),
                labels: [("method", method)],
                buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                          .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5)])
            h[method] = x
            return x
        }
        histogram.record(duration)
        let key = "\(method)/\(code)"
        let counter = queryCalls.withLock { c in
            if let x = c[key] { return x }
            let x = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "spate", subsystem: "query", metricName: "calls", unitName: "total", helpText: "Query calls by method and status"),
                labels: [("method", method), ("code", "\(code)")])
            c[key] = x
            return x
        }
        counter.increment()
    }

    /// Copies the atomics into the registry and renders the text exposition format.
    public func scrape() -> [UInt8] {
        synced.withLock { s in
            func advance(_ key: String, _ counter: Counter, to value: UInt64) {
                let before = s.last[key] ?? 0
                if value > before { counter.increment(by: Int64(value - before)) }
                s.last[key] = max(before, value)
            }
            for (name, counter, read) in mirrored { advance(name, counter, to: read(counters)) }
            for (gauge, read) in gauges { gauge.set(to: read(counters)) }
            if let q = query.withLock({ $0 }) {
                advance("cache_hits", cacheHits, to: q.engine.cacheHits.load(ordering: .relaxed))
                advance("store_requests", storeQueries, to: q.engine.storeQueries.load(ordering: .relaxed))
                advance("coalesced", coalesced, to: q.engine.coalesced.load(ordering: .relaxed))
                if let i = q.engine.incremental {
                    advance("closed_fills", closedFills, to: i.fillSearches.load(ordering: .relaxed))
                    advance("open_searches", openSearches, to: i.openSearches.load(ordering: .relaxed))
                    advance("whole_range", plainAnswers, to: i.plainAnswers.load(ordering: .relaxed))
                    closedBytes.set(to: Double(i.usage.bytes))
                }
                connections.set(to: Double(q.connections()))
            }
            if let r = retention.withLock({ $0 })?() {
                retentionGauges.lastRun.set(to: Double(r.lastRunMs) / 1000)
                retentionGauges.overCap.set(to: Double(r.bytesOverCap))
                retentionGauges.lease.set(to: r.holdsLease ? 1 : 0)
                advance("retention_deleted", retentionDeleted, to: r.deletedIndices)
            }
            let progress = counters.progress
            for (partition, gauges) in s.lag where progress[partition] == nil {
                registry.unregisterGauge(gauges.lag)
                registry.unregisterGauge(gauges.next)
                s.lag[partition] = nil
            }
            for (partition, p) in progress {
                let g = s.lag[partition] ?? {
                    let labels = [("partition", "\(partition)")]
                    let made = (
                        lag: registry.makeGauge(
                            descriptor: MetricNameDescriptor(
                                namespace: "spate", subsystem: "partition", metricName: "lag", unitName: "records",
                                helpText: "Offsets between the broker's high watermark and the next offset to fold (-1: unknown)"),
                            labels: labels),
                        next: registry.makeGauge(
                            descriptor: MetricNameDescriptor(
                                namespace: "spate", subsystem: "partition", metricName: "next_offset", unitName: "",
                                helpText: "Next offset to fold"),
                            labels: labels))
                    s.lag[partition] = made
                    return made
                }()
                g.lag.set(to: Double(p.lag ?? -1))
                g.next.set(to: Double(p.nextOffset))
            }
        }
        return registry.emitToBuffer()
    }
}
