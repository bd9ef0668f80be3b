import Foundation
import Synchronization
import Logging
import SpateElastic
import SpateIngest
import SpateSchema
import SpateModel
import SpateQuery
import SpateServer
import SpateWire

/// The query methods: Status, ListViews, Query and Watch (Storage when retention runs).
final class QueryService: CallHandler {
    let configuration: NodeConfiguration
    let engine: QueryEngine
    let hub: WatchHub
    let elastic: ElasticClient
    let version: String
    /// This node's live state.
    let local: LocalStatus
    /// Every live node as last published (membership); this node's entry is replaced by `local`.
    let cluster: @Sendable () async -> [NodeStatus]
    let storage: (@Sendable () async throws -> StorageReport)?
    let warnings: @Sendable () -> [String]
    let metrics: NodeMetrics?
    /// Answers a peer's OpenBuckets call from this node's workers (nil: the call is refused).
    let openBuckets: (@Sendable (OpenBucketRequest) async -> OpenBucketMailbox.Answers)?
    /// When the store last answered a health check (for "unreachable since …").
    private let lastHealthy = Mutex<Date?>(nil)

    init(
        configuration: NodeConfiguration, elastic: ElasticClient, engine: QueryEngine, version: String,
        local: LocalStatus, cluster: @escaping @Sendable () async -> [NodeStatus] = { [] },
        storage: (@Sendable () async throws -> StorageReport)? = nil, warnings: @escaping @Sendable () -> [String] = { [] },
        metrics: NodeMetrics? = nil, openBuckets: (@Sendable (OpenBucketRequest) async -> OpenBucketMailbox.Answers)? = nil
    ) {
        self.metrics = metrics
        self.openBuckets = openBuckets
        self.configuration = configuration
        self.elastic = elastic
        self.engine = engine
        let minimum = configuration.query.minimumRefresh
        hub = WatchHub(engine: engine, minimumRefreshMs: UInt32(minimum.wholeMilliseconds))
        self.version = version
        self.local = local
        self.cluster = cluster
        self.storage = storage
        self.warnings = warnings
    }

    func handle(method: Method, request: [UInt8], emit: @escaping @Sendable ([UInt8]) -> Void) async throws {
        guard let metrics else { return try await dispatch(method: method, request: request, emit: emit) }
        let started = ContinuousClock.now
        var code = StatusCode.ok
        defer { metrics.recordCall(method: method.rawValue, code: code, duration: ContinuousClock.now - started) }
        do {
            try await dispatch(method: method, request: request, emit: emit)
        } catch let e as RPCError {
            code = e.code
            throw e
        } catch is CancellationError {
            code = .cancelled
            throw CancellationError()
        } catch {
            code = .internal
            throw error
        }
    }

    private func dispatch(method: Method, request: [UInt8], emit: @escaping @Sendable ([UInt8]) -> Void) async throws {
        switch method {
        case .status:
            emit(WireMessages.encode(try await status()))
        case .listViews:
            emit(WireMessages.encode(viewSummaries))
        case .query:
            let query = try WireMessages.decodeQuery(request)
            emit(WireMessages.encode(try await engine.run(query)))
        case .watch:
            let (query, refresh) = try WireMessages.decodeWatch(request)
            _ = try engine.plan(query)  // a bad query fails now, not at the first refresh
            let (_, updates) = hub.watch(query, refreshMs: refresh)
            for await update in updates {
                switch update {
                case .success(let r): emit(WireMessages.encode(r))
                case .failure(let e) where e.code == .invalidArgument || e.code == .notFound: throw e
                case .failure:
                    // A transient store error: the watcher keeps its last answer and shows
                    // staleness; the next refresh may succeed.
                    continue
                }
            }
            throw CancellationError()
        case .openBuckets:
            guard let openBuckets else { throw RPCError(.unimplemented, "OpenBuckets is not served by this node (query.live_tier is false)") }
            let request = try OpenBucketsCall.decodeRequest(request)
            emit(OpenBucketsCall.encode(await openBuckets(request)))
        case .storage:
            guard let storage else { throw RPCError(.unimplemented, "Storage is not served by this node") }
            emit(WireMessages.encode(try await storage()))
        }
    }

    var viewSummaries: [ViewSummary] {
        configuration.views.map { v in
            ViewSummary(
                name: v.name, bucketMs: v.bucketMs, dimensions: v.dimensions.map(\.rawValue),
                metrics: Metric.allCases.map(\.rawValue) + ["rtt_min_us", "rtt_max_us", "rtt_sum_us", "rtt_count"],
                sketches: v.sketches.map(\.rawValue).sorted(), retentionDays: configuration.retentionDays(for: v))
        }
    }

    func status() async throws -> ClusterStatus {
        let me = local.current()
        // Bounded: during a store outage Status still answers in about two seconds with what
        // this node knows (its partitions, lag, rates; the last member listing).
        let elastic = self.elastic
        async let checked = awaitAtMost(.seconds(1)) { try await elastic.health() }
        async let listed = cluster()
        let health: String
        if let h = await checked {
            health = h
            lastHealthy.withLock { $0 = Date() }
        } else {
            let since = lastHealthy.withLock { $0 }
            health = "unreachable" + (since.map { " since \($0) (last answer)" } ?? " (no answer since this node started)")
        }
        let members = (await listed.filter { $0.nodeID != me.nodeID } + [me]).sorted { $0.nodeID < $1.nodeID }
        return ClusterStatus(
            nodeID: me.nodeID, version: version, node: me, cluster: members, storeHealth: health, topic: configuration.kafka.topic,
            group: configuration.kafka.group, warnings: warnings())
    }
}

/// This node's state as `Status` and membership report it.
final class LocalStatus: Sendable {
    private let configuration: NodeConfiguration
    private let counters: NodeCounters
    private let rates = RateTracker()

    init(configuration: NodeConfiguration, counters: NodeCounters) {
        self.configuration = configuration
        self.counters = counters
    }

    /// Now, with rates since the previous call (at least 1 s before).
    func current() -> NodeStatus {
        let c = counters
        let records = c.records.load(ordering: .relaxed)
        let docs = c.documentsWritten.load(ordering: .relaxed)
        let (rr, dr) = rates.rates(records: records, documents: docs)
        let partitions = c.progress.sorted { $0.key < $1.key }.map { p, s in
            PartitionStatus(partition: p, nextOffset: s.nextOffset, committedOffset: s.committedOffset ?? -1, lag: s.lag ?? -1)
        }
        return NodeStatus(
            nodeID: configuration.node.id, queryAddress: configuration.query.advertise, partitions: partitions, recordsPerSecond: rr,
            documentsPerSecond: dr, recordsTotal: records, lateTotal: c.recordsLate.load(ordering: .relaxed),
            malformedTotal: c.messagesMalformed.load(ordering: .relaxed), documentsTotal: docs,
            residentBytes: UInt64(max(0, c.residentBytes.load(ordering: .relaxed))), reachable: true)
    }
}

/// Records and documents per second between successive calls (at least 1 s apart).
final class RateTracker: @unchecked Sendable {
    private let lock = NSLock()
    private var last: (records: UInt64, documents: UInt64, at: ContinuousClock.Instant)?
    private var current: (Double, Double) = (0, 0)

    func rates(records: UInt64, documents: UInt64) -> (Double, Double) {
        lock.lock()
        defer { lock.unlock() }
        let now = ContinuousClock.now
        if let l = last {
            let s = (now - l.at).inSeconds
            if s >= 1 {
                current = (Double(records - l.records) / s, Double(documents - l.documents) / s)
                last = (records, documents, now)
            }
        } else {
            last = (records, documents, now)
        }
        return current
    }
}
