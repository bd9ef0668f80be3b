public import Logging
public import ServiceLifecycle
import SpateElastic
import SpateIngest
import SpateQuery

/// Everything one spate-node runs, as services for one ServiceGroup: ingest and the query
/// listener (and retention, membership when configured).
public struct SpateNodeServices: Sendable {
    public static let version = "0.5.0"

    public let ingest: IngestService
    public let services: [any Service]

    public init(configuration: NodeConfiguration, logger: Logger) throws {
        let counters = NodeCounters()
        ingest = try IngestService(configuration: configuration, counters: counters, logger: logger)
        // Queries get their own store client: bulks must not hold up dashboards.
        let queryClient = try ElasticClient(configuration: configuration.elasticsearch.client, logger: logger)
        let naming = IndexNaming(prefix: configuration.elasticsearch.indexPrefix)
        let engine = QueryEngine(
            client: queryClient, naming: naming,
            views: configuration.views.map { PlannableView(definition: $0, retentionDays: configuration.retentionDays(for: $0)) })
        let retention = RetentionService(configuration: configuration, client: queryClient, logger: logger)
        let service = QueryService(
            configuration: configuration, counters: counters, elastic: queryClient, engine: engine, version: Self.version,
            storage: { try await retention.storageReport() }, warnings: { retention.state.withLock { $0.warnings } })
        let server = try QueryServer(configuration: configuration.query, handler: service, logger: logger)
        // Retention runs only where enabled; Storage reports work either way.
        services = configuration.retention.enabled ? [ingest, server, retention] : [ingest, server]
    }
}
