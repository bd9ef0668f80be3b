public import Logging
public import ServiceLifecycle
import SpateElastic
import SpateIngest
import SpateQuery

/// Everything one spate-node runs, as services for one ServiceGroup: ingest, the query
/// listener, membership, and — when configured — retention and the metrics endpoint.
public struct SpateNodeServices: Sendable {
    public static let version = "0.7.0"

    public let ingest: IngestService
    public let metrics: NodeMetrics
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
        let engine = QueryEngine(
            client: queryClient, naming: naming,
            views: configuration.views.map { PlannableView(definition: $0, retentionDays: configuration.retentionDays(for: $0)) })
        let retention = RetentionService(configuration: configuration, client: queryClient, logger: logger)
        let membershipBox = MembershipBox()
        let me = configuration.node.id
        let service = QueryService(
            configuration: configuration, counters: counters, elastic: queryClient, engine: engine, version: Self.version,
            cluster: { [logger] in
                guard let membership = membershipBox.membership else { return [] }
                do {
                    return try await membership.members().filter { $0.nodeID != me }
                } catch {
                    logger.warning("membership: cannot list the cluster: \(error)")
                    return []
                }
            },
            storage: { try await retention.storageReport() }, warnings: { retention.state.withLock { $0.warnings } }, metrics: metrics)
        let membership = Membership(configuration: configuration, client: queryClient, local: { service.selfStatus() }, logger: logger)
        membershipBox.membership = membership
        let server = try QueryServer(configuration: configuration.query, handler: service, logger: logger)
        metrics.attach(engine: engine, connections: { server.connectionCount })
        // ServiceGroup stops services one at a time in reverse order: ingest first (flush,
        // checkpoint, commit, leave the group) while Status and /metrics still answer.
        var services: [any Service] = []
        if let listen = configuration.metrics.listen { services.append(MetricsServer(listen: listen, metrics: metrics, logger: logger)) }
        services += [server, membership]
        if configuration.retention.enabled { services.append(retention) }
        services.append(ingest)
        self.services = services
    }
}

/// Lets the Status handler reach the membership service created after it.
private final class MembershipBox: @unchecked Sendable {
    // Written once during init, before any call can arrive.
    var membership: Membership?
}
