public import Logging
public import ServiceLifecycle
public import SpateElastic
import SpateIngest
import SpateSchema
import SpateJSON
import SpateKafka
public import Synchronization
import SpateModel

/// The ingest side of a node as a Service: installs the index templates, runs the workers,
/// logs counters, and on graceful shutdown (SIGTERM/SIGINT) makes every worker flush,
/// checkpoint, commit and leave the group before it returns.
public final class IngestService: Service, Sendable {
    public let configuration: NodeConfiguration
    public let counters: NodeCounters
    let metrics: NodeMetrics?
    public let elastic: ElasticClient
    private let logger: Logger
    /// Set when shutdown could not finish within the grace period.
    public let incompleteShutdown = Atomic<Bool>(false)
    /// The running writer and dead-letter queue, for `warnings()`.
    private let running = Mutex<(writer: BulkWriter, deadLetters: DeadLetterQueue)?>(nil)

    /// What an operator must know now: the store refusing writes, dead letters Kafka refuses.
    public func warnings() -> [String] {
        guard let (writer, deadLetters) = running.withLock({ $0 }) else { return [] }
        return [writer.refusalWarning, deadLetters.stuckWarning].compactMap { $0 }
    }

    public init(configuration: NodeConfiguration, counters: NodeCounters = NodeCounters(), metrics: NodeMetrics? = nil, logger: Logger) throws {
        self.configuration = configuration
        self.counters = counters
        self.metrics = metrics
        self.logger = logger
        elastic = try ElasticClient(configuration: configuration.elasticsearch.client, logger: logger)
    }

    /// The workers' mailboxes for questions about open buckets (empty while not running).
    private let mailboxes = Mutex<[OpenBucketMailbox]>([])

    /// Answers `request` from the open buckets of every partition this node owns, asking each
    /// worker on its thread; a worker that does not answer within `timeout` contributes nothing.
    func askOpenBuckets(_ request: OpenBucketRequest, limits: OpenBucketLimits, timeout: Duration) async -> OpenBucketMailbox.Answers {
        let boxes = mailboxes.withLock { $0 }
        return await withTaskGroup(of: OpenBucketMailbox.Answers.self) { group in
            for box in boxes { group.addTask { await box.ask(request, limits: limits, timeout: timeout) } }
            var out: OpenBucketMailbox.Answers = [:]
            for await answers in group { out.merge(answers) { first, _ in first } }
            return out
        }
    }

    public func run() async throws {
        try await installTemplates()
        let deadLetters: DeadLetterQueue
        do { deadLetters = try DeadLetterQueue(configuration: configuration, counters: counters, logger: logger) } catch {
            throw Self.configurationError(error) ?? error
        }
        let writer = BulkWriter(
            client: elastic, configuration: configuration, counters: counters, deadLetters: deadLetters, metrics: metrics, logger: logger)
        let store = CheckpointStore(client: elastic, configuration: configuration)
        running.withLock { $0 = (writer, deadLetters) }
        let workers = (0..<configuration.node.workers).map {
            IngestWorker(
                index: $0, configuration: configuration, writer: writer, deadLetters: deadLetters, checkpoints: store,
                counters: counters, logger: logger)
        }
        mailboxes.withLock { $0 = workers.map(\.openBuckets) }
        defer { mailboxes.withLock { $0 = [] } }
        workers.forEach { $0.start() }
        logger.info("ingesting \(configuration.kafka.topic) as group \(configuration.kafka.group) with \(workers.count) workers")

        let stats = Task { await self.logStats() }
        let memory = Task {
            while !Task.isCancelled {
                if let rss = residentMemoryBytes() { self.counters.residentBytes.store(rss, ordering: .relaxed) }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        await withGracefulShutdownHandler {
            // Run until a worker fails or shutdown is requested.
            while !Task.isShuttingDownGracefully {
                if let failed = workers.first(where: { $0.failure.withLock { $0 != nil } }) {
                    logger.critical("worker \(failed.index) failed: \(failed.failure.withLock { $0! })")
                    incompleteShutdown.store(true, ordering: .relaxed)
                    break
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        } onGracefulShutdown: { [logger, configuration] in
            logger.info("shutdown requested: flushing, checkpointing, committing and leaving the group")
            let deadline = ContinuousClock.now + configuration.ingest.shutdownGrace
            workers.forEach { $0.requestStop(deadline: deadline) }
        }
        // Everything below is bounded by the grace: the workers by their revoke deadline, the
        // writer and store client by aborting what is in flight, the dead letters by a short close.
        let grace = configuration.ingest.shutdownGrace
        let start = ContinuousClock.now
        workers.forEach { $0.requestStop(deadline: start + grace) }
        for w in workers {
            let left = grace - (ContinuousClock.now - start)
            if !w.waitFinished(timeout: max(.milliseconds(1), left + .seconds(1))) {
                logger.error("worker \(w.index) did not finish within the shutdown grace (\(grace))")
                incompleteShutdown.store(true, ordering: .relaxed)
            }
            if w.incomplete.load(ordering: .relaxed) { incompleteShutdown.store(true, ordering: .relaxed) }
        }
        writer.stop()
        stats.cancel()
        memory.cancel()
        deadLetters.close(timeout: .seconds(3))
        elastic.shutdown()
        logger.info(
            "ingest stopped: \(counters.records.load(ordering: .relaxed)) records, \(counters.documentsWritten.load(ordering: .relaxed)) documents written")
        // A worker that could not start because of the properties: a configuration error.
        if let e = workers.lazy.compactMap({ $0.failure.withLock { $0 } }).first.flatMap(Self.configurationError) { throw e }
    }

    /// A Kafka client librdkafka would not create from the node's properties is a configuration
    /// error (exit 2): each property passed its own check at start, and librdkafka checks some
    /// only together, when the client is created (`message.timeout.ms` above `linger.ms`, an
    /// `ssl.ca.location` that does not load). Nil for other failures (a thread that could not
    /// start stays exit 1).
    static func configurationError(_ error: any Error) -> ConfigurationError? {
        guard let e = error as? KafkaError, e.code == .configuration else { return nil }
        return ConfigurationError("kafka.properties", "librdkafka refused the Kafka properties (kafka.properties and -X): \(e)")
    }

    /// Installs each template unless the store already has this version: one per view, the
    /// checkpoint and the lease templates. A changed template (new `IndexTemplates.version`)
    /// applies to indices created afterwards — the next daily index — while queries keep
    /// reading older indices (fields added later are simply absent there). Retries until the
    /// store answers.
    func installTemplates() async throws {
        let naming = IndexNaming(prefix: configuration.elasticsearch.indexPrefix)
        let es = configuration.elasticsearch
        var templates: [(String, JSONValue)] = configuration.views.map {
            ("\(naming.prefix)-\($0.name)", IndexTemplates.viewTemplate($0, naming: naming, shards: es.shards, replicas: es.replicas))
        }
        templates.append((naming.checkpointIndex, IndexTemplates.checkpointTemplate(naming: naming, replicas: es.replicas)))
        templates.append((naming.snapshotIndex, IndexTemplates.snapshotTemplate(naming: naming, replicas: es.replicas)))
        templates.append((naming.leaseIndex, IndexTemplates.leaseTemplate(naming: naming, replicas: es.replicas)))
        templates.append((naming.memberIndex, IndexTemplates.memberTemplate(naming: naming, replicas: es.replicas)))
        var attempt = 0
        while true {
            do {
                for (name, body) in templates {
                    let installed = try await elastic.getIndexTemplate(name: name)
                    if installed?["version"]?.int64Value == IndexTemplates.version { continue }
                    try await elastic.putIndexTemplate(name: name, body: body)
                    let from = installed?["version"]?.int64Value.map { "version \($0)" } ?? "none"
                    logger.info("index template \(name): installed version \(IndexTemplates.version) (was \(from))")
                    // The checkpoint index is not daily: an existing one gets the new fields
                    // (snapshot references) in place, or its strict mapping would refuse them.
                    if name == naming.checkpointIndex, let properties = body["template"]?["mappings"]?["properties"] {
                        let r = try await elastic.send("PUT", "/\(naming.checkpointIndex)/_mapping", body: JSONWriter.encode(["properties": properties]))
                        if r.status / 100 != 2 && r.status != 404 {
                            throw ElasticError.http(r.status, "updating the mapping of \(naming.checkpointIndex): status \(r.status)")
                        }
                    }
                }
                return
            } catch let e as ElasticError where e.isRetriable {
                attempt += 1
                logger.warning("installing index templates failed (attempt \(attempt)), retrying: \(e)")
                try await Task.sleep(for: .seconds(min(5, attempt)))
                if Task.isShuttingDownGracefully { throw e }
            }
        }
    }

    private func logStats() async {
        var last = (records: UInt64(0), docs: UInt64(0), at: ContinuousClock.now)
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.ingest.statsInterval)
            let c = counters
            let records = c.records.load(ordering: .relaxed)
            let docs = c.documentsWritten.load(ordering: .relaxed)
            let now = ContinuousClock.now
            let seconds = (now - last.at).inSeconds
            let progress = c.progress
            let lag: Int64 = progress.values.compactMap(\.lag).reduce(0, +)
            let recordRate = Int(Double(records - last.records) / seconds)
            let docRate = Int(Double(docs - last.docs) / seconds)
            let late = c.recordsLate.load(ordering: .relaxed)
            let malformed = c.messagesMalformed.load(ordering: .relaxed)
            let retries = c.bulkRetries.load(ordering: .relaxed)
            let checkpoints = c.checkpoints.load(ordering: .relaxed)
            let pending = c.pendingDocuments.load(ordering: .relaxed)
            let partitions = progress.keys.sorted()
            let rssMB = c.residentBytes.load(ordering: .relaxed) / 1_000_000
            logger.info(
                "ingest: \(recordRate) records/s, \(docRate) docs/s; totals records \(records) late \(late) malformed \(malformed) docs \(docs) retries \(retries) checkpoints \(checkpoints); pending \(pending) docs; rss \(rssMB) MB; partitions \(partitions) lag \(lag)")
            last = (records, docs, now)
        }
    }
}
