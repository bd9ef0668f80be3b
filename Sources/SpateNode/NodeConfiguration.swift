import Foundation
import SpateYAML
public import SpateElastic
import SpateKafka
public import SpateModel
public import SpateCodec

/// Everything a spate-node runs with. Built once from a YAML file, `SPATE_*` environment
/// variables and `-X` librdkafka properties, validated in `load`; immutable afterwards.
public struct NodeConfiguration: Sendable {
    public struct Node: Sendable {
        /// Names this node in checkpoints, logs and the cluster listing.
        public var id: String
        /// Ingest worker threads (each one Kafka group member owning its partitions).
        public var workers: Int
        public var logLevel: String
        /// How often the node publishes its state for cluster membership (live: 10 heartbeats).
        public var heartbeat: Duration
    }

    /// The Prometheus endpoint (`metrics:` section).
    public struct Metrics: Sendable {
        /// host:port of the HTTP listener serving `/metrics`; nil when off.
        public var listen: String?
    }

    public struct Kafka: Sendable {
        public var bootstrap: String
        public var topic: String
        public var group: String
        /// Malformed and late input goes here, with the reason in headers.
        public var deadLetterTopic: String
        public var sessionTimeout: Duration
        /// librdkafka properties for the consumers and the dead-letter producer.
        public var properties: [String: String]
    }

    public struct Elastic: Sendable {
        public var url: String
        public var username: String?
        /// From `password_file` or `SPATE_ES_PASSWORD`; never printed.
        public var password: String?
        /// From `api_key_file` or `SPATE_ES_API_KEY`; never printed.
        public var apiKey: String?
        public var caFile: String?
        public var indexPrefix: String
        public var maxConcurrentBulks: Int
        public var bulkMaxDocuments: Int
        public var bulkMaxBytes: Int
        public var requestTimeout: Duration
        public var shards: Int
        public var replicas: Int

        /// The client configuration.
        public var client: ElasticConfiguration {
            let auth: ElasticConfiguration.Authentication =
                if let apiKey { .apiKey(apiKey) } else if let username { .basic(username: username, password: password ?? "") } else { .none }
            return ElasticConfiguration(
                url: url, authentication: auth, caFile: caFile, requestTimeout: requestTimeout,
                maxConcurrentRequests: maxConcurrentBulks + 2)
        }
    }

    public struct Ingest: Sendable {
        /// How far behind the partition's newest event time a record may be and still count.
        public var allowedLateness: Duration
        /// Above these, partitions pause until the store catches up.
        public var maxPendingDocuments: Int
        public var maxPendingBytes: Int64
        /// SIGTERM: time to flush, checkpoint, commit and leave before giving up.
        public var shutdownGrace: Duration
        public var statsInterval: Duration
        /// librdkafka's pre-fetch queue per worker (queued.max.messages.kbytes).
        public var fetchQueueBytes: Int64
        /// The node's resident memory bound: ingest pauses at 85% of it until memory falls.
        public var maxMemory: Int64
        /// A flush unacknowledged for this long means the store is down or overloaded: the
        /// worker pauses its partitions until it is acknowledged.
        public var storeStallTimeout: Duration
        /// A record's event time may be at most this far before its Kafka message's timestamp…
        public var maxEventAge: Duration
        /// …and at most this far after it; outside, the message is dead-lettered.
        public var maxEventLead: Duration
        /// A partition silent this long whose open buckets the wall clock has passed gets an
        /// idle marker (docs/DESIGN.md, "Quiet partitions"); zero disables markers.
        public var idleMarkerAfter: Duration
        /// How often a flush also saves the partition's open buckets (docs/DESIGN.md, "Resume
        /// from the horizon"): a new owner restores them and re-reads only what came after;
        /// zero disables snapshots (a new owner replays every open bucket).
        public var snapshotInterval: Duration
        /// The most snapshot bytes per second a node writes: a partition whose open state is
        /// large is saved less often than `snapshotInterval` (docs/DESIGN.md).
        public var snapshotMaxRate: Int64

        /// The record rules these settings make.
        public var recordLimits: RecordLimits {
            RecordLimits(
                maxEventAgeMs: UInt64(clamping: maxEventAge.wholeMilliseconds), maxEventLeadMs: UInt64(clamping: maxEventLead.wholeMilliseconds))
        }
    }

    public var node: Node
    public var kafka: Kafka
    public var elasticsearch: Elastic
    public var ingest: Ingest
    public var views: [ViewDefinition]
    public var query: QueryConfiguration
    public var retention: RetentionConfiguration
    public var metrics: Metrics
}

extension NodeConfiguration {
    /// Environment variables that override a key, beyond the generic `SPATE_<SECTION>_<KEY>`.
    static let environmentAliases: [String: String] = ["SPATE_TOPIC": "kafka.topic"]
    static let sectionEnvironmentNames: [String: String] = [
        "node": "NODE", "kafka": "KAFKA", "elasticsearch": "ES", "ingest": "INGEST", "query": "QUERY",
        "retention": "RETENTION", "metrics": "METRICS",
    ]
    /// Scalar keys per section, for environment overrides and unknown-key checks.
    static let scalarKeys: [String: [String]] = [
        "node": ["id", "workers", "log_level", "heartbeat"],
        "metrics": ["listen"],
        "kafka": ["bootstrap", "topic", "group", "dead_letter_topic", "session_timeout", "sasl_password_file"],
        "elasticsearch": [
            "url", "username", "password_file", "api_key_file", "ca_file", "index_prefix", "max_concurrent_bulks",
            "bulk_max_documents", "bulk_max_bytes", "request_timeout", "shards", "replicas",
        ],
        "ingest": [
            "allowed_lateness", "max_pending_documents", "max_pending_bytes", "shutdown_grace", "stats_interval", "fetch_queue_bytes",
            "max_memory", "store_stall_timeout", "max_event_age", "max_event_lead", "idle_marker_after",
            "snapshot_interval", "snapshot_max_rate",
        ],
    ]

    /// Secrets read from the environment only (never from a key).
    static let secretEnvironmentNames: Set<String> = ["SPATE_KAFKA_SASL_PASSWORD", "SPATE_ES_PASSWORD", "SPATE_ES_API_KEY", "SPATE_QUERY_TOKEN"]

    /// `SPATE_<SECTION>_<KEY>` → `section.key` for every scalar key.
    static var environmentKeys: [(String, String)] {
        var out: [(String, String)] = []
        for (section, keys) in scalarKeys.merging(["query": queryKeys, "retention": retentionKeys], uniquingKeysWith: { $1 }) {
            guard let name = sectionEnvironmentNames[section] else { continue }
            for key in keys { out.append(("SPATE_\(name)_\(key.uppercased())", "\(section).\(key)")) }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// Refuses a variable that claims to configure the node but names no key: any
    /// `SPATE_<SECTION>_…` with a section of the node (NODE, KAFKA, ES, INGEST, QUERY,
    /// RETENTION, METRICS) must be a key's variable or a secret's. Other `SPATE_*` variables
    /// (`SPATE_SERVER`, `SPATE_TOKEN` of the CLI, `SPATE_TOPIC`, `SPATE_BIN_DIR`, `SPATE_TEST_*`,
    /// the dev-services file's) belong to other tools and are left alone.
    static func checkEnvironmentNames(_ environment: [String: String]) throws {
        let known = Set(environmentKeys.map(\.0)).union(secretEnvironmentNames)
        let prefixes = sectionEnvironmentNames.values.map { "SPATE_\($0)_" }
        let unknown = environment.keys.filter { name in !known.contains(name) && prefixes.contains { name.hasPrefix($0) } }.sorted()
        if let first = unknown.first {
            let section = prefixes.first { first.hasPrefix($0) } ?? "SPATE_"
            let candidates = known.filter { $0.hasPrefix(section) }.sorted()
            throw ConfigurationError(
                first, "unknown environment variable" + (unknown.count > 1 ? " (also: \(unknown.dropFirst().joined(separator: ", ")))" : "")
                    + "; known \(section)* variables: \(candidates.joined(separator: ", "))")
        }
    }

    /// Loads and validates. `path` nil means no file (defaults + environment).
    /// - Throws: `ConfigurationError` naming the key and the reason.
    public static func load(path: String?, environment: [String: String], kafkaOverrides: [String: String] = [:]) throws -> NodeConfiguration {
        var text = ""
        if let path {
            do { text = try BoundedYAML.read(path: path) } catch { throw ConfigurationError("--config", "\(error)") }
        }
        let tree = try ConfigTree(yaml: text)
        try checkEnvironmentNames(environment)
        for (env, path) in environmentKeys {
            if let v = environment[env] { tree.set(path, v) }
        }
        for (env, path) in environmentAliases where environment["SPATE_KAFKA_TOPIC"] == nil {
            if let v = environment[env] { tree.set(path, v) }
        }
        for key in ["password", "api_key"] where tree.node("elasticsearch.\(key)") != nil {
            throw ConfigurationError(
                "elasticsearch.\(key)", "secrets are not accepted inline; use \(key)_file or SPATE_ES_\(key.uppercased())")
        }
        let config = try build(tree, environment: environment, kafkaOverrides: kafkaOverrides)
        // librdkafka checks each property when it is set: a bad one stops the node now (exit 2),
        // not when the first consumer starts.
        for (key, value) in config.kafka.properties.sorted(by: { $0.key < $1.key }) {
            if let problem = KafkaLibrary.propertyProblem(key, value) {
                throw ConfigurationError(kafkaOverrides[key] != nil ? "-X \(key)" : "kafka.properties.\(key)", problem)
            }
        }
        let unknown = tree.unknownKeys()
        if let first = unknown.first {
            throw ConfigurationError(first, "unknown key" + (unknown.count > 1 ? " (also: \(unknown.dropFirst().joined(separator: ", ")))" : ""))
        }
        return config
    }

    private static func build(_ t: ConfigTree, environment: [String: String], kafkaOverrides: [String: String]) throws -> NodeConfiguration {
        func str(_ p: String, _ d: String) throws -> String { try t.scalar(p) ?? d }
        func optional(_ p: String) throws -> String? { try t.scalar(p).flatMap { $0.isEmpty ? nil : $0 } }
        func int(_ p: String, _ d: Int, _ range: ClosedRange<Int>) throws -> Int {
            guard let s = try t.scalar(p) else { return d }
            guard let v = Int(s.trimmingCharacters(in: .whitespaces)) else { throw ConfigurationError(p, "'\(s)' is not a whole number") }
            guard range.contains(v) else { throw ConfigurationError(p, "\(v) is outside \(range.lowerBound)...\(range.upperBound)") }
            return v
        }
        func duration(_ p: String, _ d: Duration, min: Duration = .zero, max: Duration? = nil) throws -> Duration {
            guard let s = try t.scalar(p) else { return d }
            let v = try ConfigValue.duration(s, key: p, max: max)
            guard v >= min else { throw ConfigurationError(p, "must be at least \(ConfigValue.describe(min))") }
            return v
        }
        func bytes(_ p: String, _ d: Int64, min: Int64, max: Int64? = nil) throws -> Int64 {
            guard let s = try t.scalar(p) else { return d }
            let v = try ConfigValue.bytes(s, key: p, max: max)
            guard v >= min else { throw ConfigurationError(p, "must be at least \(min) bytes") }
            return v
        }
        func secret(fileKey: String, env: String) throws -> String? {
            if let v = environment[env], !v.isEmpty { return v }
            guard let file = try optional(fileKey) else { return nil }
            do {
                let v = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                guard !v.isEmpty else { throw ConfigurationError(fileKey, "\(file) is empty") }
                return v
            } catch let e as ConfigurationError {
                throw e
            } catch {
                throw ConfigurationError(fileKey, "cannot read \(file): \(error.localizedDescription)")
            }
        }

        let cores = ProcessInfo.processInfo.activeProcessorCount
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "node"
        let node = Node(
            id: try str("node.id", "\(host)-\(getpid())"),
            workers: try int("node.workers", max(1, cores), 1...256),
            logLevel: try str("node.log_level", "info"),
            heartbeat: try duration("node.heartbeat", .seconds(2), min: .milliseconds(200)))
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(node.logLevel) else {
            throw ConfigurationError("node.log_level", "'\(node.logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        guard !node.id.isEmpty, node.id.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw ConfigurationError("node.id", "'\(node.id)' must be letters, digits, '-', '_' or '.'")
        }

        var properties: [String: String] = [:]
        if let p = t.node("kafka.properties") {
            guard case .map(let pairs) = p else { throw ConfigurationError("kafka.properties", "expected a mapping of librdkafka properties") }
            for (k, v) in pairs {
                guard case .scalar(let s) = v else { throw ConfigurationError("kafka.properties.\(k)", "expected a single value") }
                properties[k] = s
            }
            t.markSubtree("kafka.properties")
        }
        properties.merge(kafkaOverrides) { _, new in new }
        // The SASL password, like every secret, from a file or the environment only.
        if properties["sasl.password"] != nil {
            throw ConfigurationError(
                "kafka.properties.sasl.password", "secrets are not accepted inline; use kafka.sasl_password_file or SPATE_KAFKA_SASL_PASSWORD")
        }
        if let password = try secret(fileKey: "kafka.sasl_password_file", env: "SPATE_KAFKA_SASL_PASSWORD") {
            properties["sasl.password"] = password
        }
        let kafka = Kafka(
            bootstrap: try str("kafka.bootstrap", "127.0.0.1:9092"),
            topic: try str("kafka.topic", "spate.flows"),
            group: try str("kafka.group", "spate"),
            deadLetterTopic: try str("kafka.dead_letter_topic", ""),
            // librdkafka's session.timeout.ms accepts at most one hour.
            sessionTimeout: try duration("kafka.session_timeout", .seconds(10), min: .seconds(1), max: .seconds(3600)),
            properties: properties)
        var kafkaResolved = kafka
        if kafkaResolved.deadLetterTopic.isEmpty { kafkaResolved.deadLetterTopic = kafka.topic + ".dlq" }
        for (k, v) in [("kafka.bootstrap", kafka.bootstrap), ("kafka.topic", kafka.topic), ("kafka.group", kafka.group)] where v.isEmpty {
            throw ConfigurationError(k, "must not be empty")
        }
        if kafkaResolved.deadLetterTopic == kafka.topic {
            throw ConfigurationError("kafka.dead_letter_topic", "must differ from kafka.topic")
        }

        let es = Elastic(
            url: try str("elasticsearch.url", "http://127.0.0.1:9200"),
            username: try optional("elasticsearch.username"),
            password: try secret(fileKey: "elasticsearch.password_file", env: "SPATE_ES_PASSWORD"),
            apiKey: try secret(fileKey: "elasticsearch.api_key_file", env: "SPATE_ES_API_KEY"),
            caFile: try optional("elasticsearch.ca_file"),
            indexPrefix: try str("elasticsearch.index_prefix", "spate"),
            maxConcurrentBulks: try int("elasticsearch.max_concurrent_bulks", 2, 1...64),
            bulkMaxDocuments: try int("elasticsearch.bulk_max_documents", 5000, 1...100_000),
            bulkMaxBytes: Int(try bytes("elasticsearch.bulk_max_bytes", 8_000_000, min: 10_000)),
            requestTimeout: try duration("elasticsearch.request_timeout", .seconds(30), min: .milliseconds(100)),
            shards: try int("elasticsearch.shards", 1, 1...1024),
            replicas: try int("elasticsearch.replicas", 0, 0...16))
        guard es.url.hasPrefix("http://") || es.url.hasPrefix("https://") else {
            throw ConfigurationError("elasticsearch.url", "'\(es.url)' must start with http:// or https://")
        }
        guard !es.indexPrefix.isEmpty, es.indexPrefix.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw ConfigurationError("elasticsearch.index_prefix", "'\(es.indexPrefix)' must be lowercase letters, digits, '-' or '_'")
        }
        if es.password != nil && es.username == nil {
            throw ConfigurationError("elasticsearch.username", "a password is configured but no username")
        }
        if let ca = es.caFile, !FileManager.default.isReadableFile(atPath: ca) {
            throw ConfigurationError("elasticsearch.ca_file", "\(ca) is not readable")
        }

        let maxMemory = try bytes("ingest.max_memory", 2_000_000_000, min: 64_000_000)
        let ingest = Ingest(
            allowedLateness: try duration("ingest.allowed_lateness", .seconds(120)),
            maxPendingDocuments: try int("ingest.max_pending_documents", 200_000, 100...100_000_000),
            maxPendingBytes: try bytes("ingest.max_pending_bytes", maxMemory / 4, min: 1_000_000),
            shutdownGrace: try duration("ingest.shutdown_grace", .seconds(30), min: .seconds(1)),
            statsInterval: try duration("ingest.stats_interval", .seconds(10), min: .milliseconds(100)),
            // librdkafka's queued.max.messages.kbytes accepts at most 2097151 KiB.
            fetchQueueBytes: try bytes("ingest.fetch_queue_bytes", min(32_000_000, maxMemory / 16), min: 1_000_000, max: 2_000_000_000),
            maxMemory: maxMemory,
            storeStallTimeout: try duration("ingest.store_stall_timeout", .seconds(15), min: .milliseconds(500)),
            maxEventAge: try duration("ingest.max_event_age", .seconds(90 * 86_400), min: .seconds(1)),
            maxEventLead: try duration("ingest.max_event_lead", .seconds(3600), min: .seconds(1)),
            idleMarkerAfter: try duration("ingest.idle_marker_after", .seconds(60)),
            snapshotInterval: try duration("ingest.snapshot_interval", .seconds(10), max: .seconds(86_400)),
            snapshotMaxRate: try bytes("ingest.snapshot_max_rate", 4_000_000, min: 10_000, max: 10_000_000_000))
        if ingest.maxPendingBytes > ingest.maxMemory / 2 {
            throw ConfigurationError("ingest.max_pending_bytes", "must be at most half of ingest.max_memory (\(ingest.maxMemory))")
        }

        let views = try parseViews(t)
        return NodeConfiguration(
            node: node, kafka: kafkaResolved, elasticsearch: es, ingest: ingest, views: views,
            query: try buildQuery(t, environment: environment), retention: try buildRetention(t, views: views),
            metrics: Metrics(listen: try metricsListen(t)))
    }

    private static func metricsListen(_ t: ConfigTree) throws -> String? {
        guard let listen = try t.scalar("metrics.listen"), !listen.isEmpty, listen != "off" else { return nil }
        _ = try ConfigValue.listenAddress(listen, key: "metrics.listen", alternatives: " or 'off'")
        return listen
    }

    private static func parseViews(_ t: ConfigTree) throws -> [ViewDefinition] {
        guard let node = t.node("views") else { return ViewDefinition.defaults }
        guard case .list(let items) = node else { throw ConfigurationError("views", "expected a list of views") }
        guard !items.isEmpty else { throw ConfigurationError("views", "at least one view is needed") }
        var out: [ViewDefinition] = []
        for (i, item) in items.enumerated() {
            let base = "views[\(i)]"
            guard case .map(let pairs) = item else { throw ConfigurationError(base, "expected a mapping") }
            let allowed: Set<String> = ["name", "bucket", "dimensions", "sketches", "hll_precision", "flush_interval", "top_k"]
            if let bad = pairs.first(where: { !allowed.contains($0.0) }) {
                throw ConfigurationError("\(base).\(bad.0)", "unknown key (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            func scalar(_ k: String) throws -> String? {
                guard let n = item[k] else { return nil }
                guard case .scalar(let s) = n else { throw ConfigurationError("\(base).\(k)", "expected a single value") }
                return s
            }
            func list(_ k: String) throws -> [String]? {
                guard let n = item[k] else { return nil }
                guard case .list(let l) = n else { throw ConfigurationError("\(base).\(k)", "expected a list") }
                return try l.map {
                    guard case .scalar(let s) = $0 else { throw ConfigurationError("\(base).\(k)", "expected plain values") }
                    return s
                }
            }
            guard let name = try scalar("name") else { throw ConfigurationError("\(base).name", "missing") }
            let where_ = "views[\(i)] (\(name))"
            guard let bucketText = try scalar("bucket") else { throw ConfigurationError("\(where_).bucket", "missing") }
            let bucket = try ConfigValue.duration(bucketText, key: "\(where_).bucket")
            // Bucket starts are event time minus event time mod width: a zero width would divide
            // by zero, and widths beyond a month make no rollup.
            guard bucket >= .seconds(1), bucket <= .seconds(31 * 86_400) else {
                throw ConfigurationError("\(where_).bucket", "must be between 1s and 31d (got \(bucketText))")
            }
            guard let dimNames = try list("dimensions") else { throw ConfigurationError("\(where_).dimensions", "missing") }
            let dims = try dimNames.map { n in
                guard let d = Dimension(rawValue: n) else {
                    throw ConfigurationError(
                        "\(where_).dimensions", "unknown dimension '\(n)' (known: \(Dimension.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return d
            }
            let sketches = try (list("sketches") ?? []).map { n in
                guard let s = SketchKind(rawValue: n) else {
                    throw ConfigurationError("\(where_).sketches", "unknown sketch '\(n)' (known: subscribers, rtt)")
                }
                return s
            }
            let precision = try scalar("hll_precision").map { s in
                guard let p = Int(s) else { throw ConfigurationError("\(where_).hll_precision", "'\(s)' is not a whole number") }
                return p
            } ?? 14
            let flush = try scalar("flush_interval").map { try ConfigValue.duration($0, key: "\(where_).flush_interval") } ?? .seconds(10)
            let topK = try scalar("top_k").map { s in
                guard let k = Int(s) else { throw ConfigurationError("\(where_).top_k", "'\(s)' is not a whole number") }
                return k
            } ?? 0
            let view = ViewDefinition(
                name: name, bucketMs: UInt64(bucket.wholeMilliseconds),
                dimensions: dims, sketches: Set(sketches), hllPrecision: precision,
                flushIntervalMs: UInt64(flush.wholeMilliseconds),
                topK: topK)
            if let problem = view.problems().first { throw ConfigurationError(where_, problem) }
            if out.contains(where: { $0.name == name }) { throw ConfigurationError("\(where_).name", "'\(name)' is defined twice") }
            out.append(view)
        }
        return out
    }

    /// The effective configuration as `key = value` lines, secrets masked, for the start log.
    public var printable: [String] {
        func d(_ x: Duration) -> String { "\(x)" }
        var lines = [
            "node.id = \(node.id)", "node.workers = \(node.workers)", "node.log_level = \(node.logLevel)",
            "node.heartbeat = \(d(node.heartbeat))", "metrics.listen = \(metrics.listen ?? "off")",
            "kafka.bootstrap = \(kafka.bootstrap)", "kafka.topic = \(kafka.topic)", "kafka.group = \(kafka.group)",
            "kafka.dead_letter_topic = \(kafka.deadLetterTopic)", "kafka.session_timeout = \(d(kafka.sessionTimeout))",
        ]
        for (k, v) in kafka.properties.sorted(by: { $0.key < $1.key }) {
            let secret = k.contains("password") || k.contains("secret") || k.contains("sasl.oauthbearer") || k.contains("key.pem")
            lines.append("kafka.properties.\(k) = \(secret ? "***" : v)")
        }
        lines += [
            "elasticsearch.url = \(elasticsearch.url)", "elasticsearch.username = \(elasticsearch.username ?? "(none)")",
            "elasticsearch.password = \(elasticsearch.password == nil ? "(none)" : "***")",
            "elasticsearch.api_key = \(elasticsearch.apiKey == nil ? "(none)" : "***")",
            "elasticsearch.ca_file = \(elasticsearch.caFile ?? "(system)")",
            "elasticsearch.index_prefix = \(elasticsearch.indexPrefix)",
            "elasticsearch.max_concurrent_bulks = \(elasticsearch.maxConcurrentBulks)",
            "elasticsearch.bulk_max_documents = \(elasticsearch.bulkMaxDocuments)",
            "elasticsearch.bulk_max_bytes = \(elasticsearch.bulkMaxBytes)",
            "elasticsearch.request_timeout = \(d(elasticsearch.requestTimeout))",
            "elasticsearch.shards = \(elasticsearch.shards)", "elasticsearch.replicas = \(elasticsearch.replicas)",
            "ingest.allowed_lateness = \(d(ingest.allowedLateness))",
            "ingest.max_pending_documents = \(ingest.maxPendingDocuments)", "ingest.max_pending_bytes = \(ingest.maxPendingBytes)",
            "ingest.shutdown_grace = \(d(ingest.shutdownGrace))", "ingest.stats_interval = \(d(ingest.statsInterval))",
            "ingest.fetch_queue_bytes = \(ingest.fetchQueueBytes)", "ingest.max_memory = \(ingest.maxMemory)",
            "ingest.store_stall_timeout = \(d(ingest.storeStallTimeout))",
            "ingest.max_event_age = \(d(ingest.maxEventAge))", "ingest.max_event_lead = \(d(ingest.maxEventLead))",
            "ingest.idle_marker_after = \(d(ingest.idleMarkerAfter))",
            "ingest.snapshot_interval = \(d(ingest.snapshotInterval))", "ingest.snapshot_max_rate = \(ingest.snapshotMaxRate)",
        ]
        lines += [
            "query.listen = \(query.listen)", "query.advertise = \(query.advertise)", "query.token = \(query.token == nil ? "(none)" : "***")",
            "query.tls = \(query.tlsCertificateFile == nil ? "off" : "on (\(query.tlsCertificateFile!))")",
            "query.max_frame_size = \(query.maxFrameSize)", "query.max_streams_per_connection = \(query.maxStreamsPerConnection)",
            "query.max_connections = \(query.maxConnections)", "query.idle_timeout = \(d(query.idleTimeout))",
            "query.max_deadline = \(d(query.maxDeadline))", "query.min_refresh = \(d(query.minimumRefresh))",
        ] + query.peerLimitLines + [
            "retention.enabled = \(retention.enabled)", "retention.max_total_bytes = \(retention.maxTotalBytes)",
            "retention.check_interval = \(d(retention.checkInterval))", "retention.lease = \(d(retention.lease))",
        ]
        for v in views {
            lines.append("retention.max_age.\(v.name) = \(retentionDays(for: v))d")
        }
        for v in views {
            lines.append(
                "view \(v.name): bucket \(v.bucketMs / 1000)s, dimensions \(v.dimensions.map(\.rawValue).joined(separator: ",")), "
                    + "sketches \(v.sketches.map(\.rawValue).sorted().joined(separator: ",")), hll_precision \(v.hllPrecision), flush \(v.flushIntervalMs)ms"
                    + (v.topK > 0 ? ", top_k \(v.topK) (written when a bucket closes)" : ""))
        }
        return lines
    }

    /// The librdkafka properties of ingest worker `worker`'s consumer: the node's own, then
    /// `kafka.properties` and `-X` over them.
    public func consumerProperties(worker: Int) -> [String: String] {
        let sessionMs = Int(kafka.sessionTimeout.wholeMilliseconds)
        var p: [String: String] = [
            "bootstrap.servers": kafka.bootstrap,
            "group.id": kafka.group,
            "client.id": "spate-node/\(node.id)/w\(worker)",
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": String(sessionMs),
            "heartbeat.interval.ms": String(max(100, sessionMs / 5)),
            "queued.max.messages.kbytes": String(max(1024, ingest.fetchQueueBytes / 1024)),
            "fetch.queue.backoff.ms": String(KafkaConsumer.fetchQueueBackoffMs),
            "enable.partition.eof": "false",
        ]
        p.merge(kafka.properties) { _, new in new }
        return p
    }
}
