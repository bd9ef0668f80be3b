public import Logging
public import ServiceLifecycle
import SpateElastic
import SpateIngest
import SpateSchema
import SpateQuery

/// Everything one spate-node runs, as services for one ServiceGroup: ingest, the query
/// listener, membership, and — when configured — retention and the metrics endpoint.
public struct SpateNodeServices: Sendable {
    public static let version = "0.7.0"

    public let ingest: IngestService
    public let metrics: NodeMetrics
    /// The live tier (nil when `query.live_tier` is false).
    let live: LiveTier?
    public let services: [any Service]

    public init(configuration: NodeConfiguration, logger: Logger) throws {
        let counters = NodeCounters()
        metrics = NodeMetrics(counters: counters)
        ingest = try IngestService(configuration: configuration, counters: counters, metrics: metrics, logger: logger)
        // Queries get their own store client: bulks must not hold up dashboards.
        // Refreshes of many dashboards come in bursts (cache entries of a view expire together):
        // 8 searches in flight rather than the bulk writer's 2 + 2.
        var queryStore = configuration.elasticsearch.client
        queryStore.maxConcurrentRequests = max(8, queryStore.maxConcurrentRequests)
        let queryClient = try ElasticClient(configuration: queryStore, logger: logger)
        let naming = IndexNaming(prefix: configuration.elasticsearch.indexPrefix)
        let topicCheck = TopicCheck(configuration: configuration, logger: logger)
        let local = LocalStatus(configuration: configuration, counters: counters)
        let membership = Membership(configuration: configuration, client: queryClient, local: { local.current() }, logger: logger)
        let peerTimeout = configuration.query.peerTimeout
        let live: LiveTier? = configuration.query.liveTier
            ? LiveTier(
                configuration: configuration, local: { [ingest] in await ingest.askOpenBuckets($0, limits: $1, timeout: $2) },
                members: { await membership.members() }, partitionCount: { topicCheck.partitionCount.load(ordering: .relaxed) }, logger: logger)
            : nil
        self.live = live
        var askOwners: (@Sendable (OpenBucketRequest) async -> LiveAnswer)?
        var serveOwners: (@Sendable (OpenBucketRequest) async -> OpenBucketMailbox.Answers)?
        if let live {
            askOwners = { @Sendable request in await live.ask(request) }
            let limits = live.limits
            serveOwners = { @Sendable [ingest] request in await ingest.askOpenBuckets(request, limits: limits, timeout: peerTimeout) }
        }
        let engine = QueryEngine(
            client: queryClient, naming: naming,
            views: configuration.views.map { PlannableView(definition: $0, retentionDays: configuration.retentionDays(for: $0)) },
            cacheMaxBytes: configuration.query.cacheMaxBytes,
            horizons: ClosedHorizons(
                client: queryClient, naming: naming, group: configuration.kafka.group, topic: configuration.kafka.topic,
                latenessMs: UInt64(configuration.ingest.allowedLateness.wholeMilliseconds)),
            live: askOwners,
            // Owners keep released buckets `live_keep_closed`: filling at half that still
            // reaches them before they go, with fewer searches.
            fillIntervalMs: max(20_000, UInt64(configuration.query.liveKeepClosed.wholeMilliseconds) / 2))
        let retention = RetentionService(configuration: configuration, client: queryClient, logger: logger)
        let service = QueryService(
            configuration: configuration, elastic: queryClient, engine: engine, version: Self.version,
            local: local, cluster: { await membership.members() },
            storage: { try await retention.storageReport() },
            warnings: { [ingest] in [topicCheck.warning].compactMap { $0 } + ingest.warnings() + retention.state.withLock { $0.warnings } },
            metrics: metrics,
            openBuckets: serveOwners)
        let server = try QueryServer(configuration: configuration.query, handler: service, logger: logger)
        metrics.attach(engine: engine, connections: { server.connectionCount })
        if configuration.retention.enabled { metrics.attach(retention: { retention.snapshot }) }
        // ServiceGroup stops services one at a time in reverse order: ingest first (flush,
        // checkpoint, commit, leave the group) while Status and /metrics still answer.
        var services: [any Service] = []
        if let listen = configuration.metrics.listen { services.append(MetricsServer(listen: listen, metrics: metrics, logger: logger)) }
        services += [server, membership, topicCheck]
        if configuration.retention.enabled { services.append(retention) }
        services.append(ingest)
        self.services = services
    }
}
