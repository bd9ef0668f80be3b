import Foundation
public import SpateElastic
import SpateJSON
public import SpateProbe

/// A topic, a group and an index prefix of their own, plus spate-node processes and
/// spate-probe runs against them: the setting of the ingest integration tests.
public final class NodeTestBed: @unchecked Sendable {
    public let services: DevServices
    public let topic: String
    public let group: String
    public let prefix: String
    public let partitions: Int
    public let directory: String
    private let lock = NSLock()
    private var processes: [ChildProcess] = []

    /// Creates the topic (and its dead-letter topic).
    public init(services: DevServices, partitions: Int = 6, name: String) throws {
        self.services = services
        let id = uniqueName(name)
        topic = "\(id).flows"
        group = "\(id)-group"
        prefix = "t\(id.replacingOccurrences(of: "-", with: ""))".lowercased()
        self.partitions = partitions
        directory = NSTemporaryDirectory() + "/spate-\(id)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try services.createTopic(topic, partitions: partitions)
        try services.createTopic(topic + ".dlq", partitions: 1)
    }

    public var deadLetterTopic: String { topic + ".dlq" }

    /// The default views (application by minute and hour, subscriber by 5 minutes, server
    /// network by minute) with short flush intervals.
    public static let defaultViews = """
          - {name: app_1m, bucket: 1m, dimensions: [application, application_category, l4_protocol, probe], sketches: [subscribers, rtt], hll_precision: 14, flush_interval: 2s}
          - {name: app_1h, bucket: 1h, dimensions: [application, application_category, l4_protocol, probe], sketches: [subscribers, rtt], hll_precision: 16, flush_interval: 3s}
          - {name: subscriber_5m, bucket: 5m, dimensions: [subscriber, application], flush_interval: 4s, top_k: 1000}
          - {name: server_1m, bucket: 1m, dimensions: [server_prefix, server_port, application], sketches: [subscribers], hll_precision: 12, flush_interval: 3s}
        """

    /// Only the application views: the ones the exactness checks read. osmem-server writes
    /// ~700 documents/s, so tests that repeat the exactness check under faults leave out the
    /// high-cardinality views to keep their run time in check.
    public static let applicationViews = """
          - {name: app_1m, bucket: 1m, dimensions: [application, application_category, l4_protocol, probe], sketches: [subscribers, rtt], hll_precision: 14, flush_interval: 2s}
          - {name: app_1h, bucket: 1h, dimensions: [application, application_category, l4_protocol, probe], sketches: [subscribers, rtt], hll_precision: 16, flush_interval: 3s}
        """

    /// The views nodes of this bed run with.
    public var views = NodeTestBed.defaultViews
    /// `query:` settings of nodes started from now on (default: a free loopback port).
    public var query: [String: String] = [:]
    /// Extra `kafka.properties` (librdkafka) of nodes started from now on.
    public var kafkaProperties: [String: String] = [:]

    /// A node configuration: `views`, quick group timeouts, and `ingest` settings merged over
    /// test defaults.
    public func configuration(
        node: String, elasticURL: String? = nil, ingest: [String: String] = [:], workers: Int = 2, retention: [String: String] = [:],
        extra: String = ""
    ) -> String {
        var retentionSettings = ["check_interval": "1h"]
        retentionSettings.merge(retention) { _, new in new }
        var ingestSettings = ["allowed_lateness": "60s", "stats_interval": "2s", "shutdown_grace": "25s"]
        ingestSettings.merge(ingest) { _, new in new }
        return """
            node:
              id: \(node)
              workers: \(workers)
            kafka:
              bootstrap: \(services.kafkaBootstrap)
              topic: \(topic)
              group: \(group)
              session_timeout: 6s
              properties:
                heartbeat.interval.ms: "1000"
                topic.metadata.refresh.interval.ms: "2000"
            \(kafkaProperties.sorted { $0.key < $1.key }.map { "    \($0.key): \"\($0.value)\"" }.joined(separator: "\n"))
            elasticsearch:
              url: \(elasticURL ?? services.elasticURL)
              index_prefix: \(prefix)
              bulk_max_documents: 1000
              max_concurrent_bulks: 2
            ingest:
            \(ingestSettings.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)" }.joined(separator: "\n"))
            query:
            \((query.isEmpty ? ["listen": "127.0.0.1:0"] : query).sorted { $0.key < $1.key }.map { "  \($0.key): \"\($0.value)\"" }.joined(separator: "\n"))
            views:
            \(views)
            \(extra.contains("retention:") ? extra.replacingOccurrences(of: "retention:\n", with: "retention:\n" + retentionSettings.sorted { $0.key < $1.key }.map { "  \($0.key): \"\($0.value)\"" }.joined(separator: "\n") + "\n") : "retention:\n" + retentionSettings.sorted { $0.key < $1.key }.map { "  \($0.key): \"\($0.value)\"" }.joined(separator: "\n") + "\n" + extra)

            """
    }

    /// Starts a spate-node with `configuration(node:…)`; its log is `<directory>/<node>.log`.
    @discardableResult
    public func startNode(
        _ node: String, elasticURL: String? = nil, ingest: [String: String] = [:], workers: Int = 2, retention: [String: String] = [:],
        extra: String = ""
    ) throws -> ChildProcess {
        let config = "\(directory)/\(node).yaml"
        try configuration(node: node, elasticURL: elasticURL, ingest: ingest, workers: workers, retention: retention, extra: extra)
            .write(toFile: config, atomically: true, encoding: .utf8)
        let child = try ChildProcess(try Binaries.path("spate-node"), ["--config", config], logPath: "\(directory)/\(node).log")
        lock.withLock { processes.append(child) }
        return child
    }

    /// Starts spate-probe publishing to this topic; returns the process and its manifest path.
    public func startProbe(_ arguments: [String], name: String = "probe") throws -> (ChildProcess, String) {
        let manifest = "\(directory)/\(name)-manifest.json"
        let child = try ChildProcess(
            try Binaries.path("spate-probe"),
            ["--bootstrap", services.kafkaBootstrap, "--topic", topic, "--manifest", manifest, "--quiet"] + arguments,
            logPath: "\(directory)/\(name).log")
        lock.withLock { processes.append(child) }
        return (child, manifest)
    }

    /// Runs spate-probe to completion and returns its manifest.
    public func runProbe(_ arguments: [String], name: String = "probe") throws -> Manifest {
        let (child, manifest) = try startProbe(arguments, name: name)
        guard child.wait(timeout: .seconds(600)) == 0 else { throw TestSupportError("spate-probe failed: \(child.output)") }
        return try Manifest.load(path: manifest)
    }

    public func elastic() throws -> ElasticClient {
        try ElasticClient(configuration: ElasticConfiguration(url: services.elasticURL, requestTimeout: .seconds(60)))
    }

    /// Sums from the `app_1m` view per (minute, `dimension` value), keyed "minuteMs/value".
    public func minuteTotals(by dimension: String, client: ElasticClient) async throws -> [String: FlowTotals] {
        let metrics = ["records", "flows", "bytes_up", "bytes_down", "packets_up", "packets_down"]
        var sums = JSONObject()
        for m in metrics { sums[m] = ["sum": ["field": .string(m)]] }
        let body: JSONValue = [
            "size": 0,
            "aggs": [
                "m": [
                    "date_histogram": ["field": "ts", "fixed_interval": "1m", "min_doc_count": 1],
                    "aggs": ["d": ["terms": ["field": .string(dimension), "size": 10_000], "aggs": .object(sums)]],
                ]
            ],
        ]
        let r = try await client.search(index: "\(prefix)-app_1m-*", body: body)
        var out: [String: FlowTotals] = [:]
        for minute in r.aggregations["m"]?.buckets ?? [] {
            let ms = minute.key.int64Value ?? 0
            for b in minute.aggregations["d"]?.buckets ?? [] {
                func v(_ k: String) -> UInt64 { UInt64(b.value(k) ?? 0) }
                var t = FlowTotals()
                t.records = v("records")
                t.flows = v("flows")
                t.bytesUp = v("bytes_up")
                t.bytesDown = v("bytes_down")
                t.packetsUp = v("packets_up")
                t.packetsDown = v("packets_down")
                out["\(ms)/\(b.key.stringValue ?? b.key.int64Value.map(String.init) ?? "?")"] = t
            }
        }
        return out
    }

    /// Differences between the store and the manifest, per (minute, application) and per
    /// (minute, probe); empty when every sum is exactly equal.
    public func differences(from manifest: Manifest, client: ElasticClient) async throws -> [String] {
        var expectedApps: [String: FlowTotals] = [:]
        for r in manifest.byMinuteApplication { expectedApps["\(r.minuteMs)/\(r.application)"] = r.totals }
        var expectedProbes: [String: FlowTotals] = [:]
        for r in manifest.byMinuteProbe { expectedProbes["\(r.minuteMs)/\(r.probe)"] = r.totals }
        var problems: [String] = []
        for (name, expected, actual) in [
            ("application", expectedApps, try await minuteTotals(by: "application", client: client)),
            ("probe", expectedProbes, try await minuteTotals(by: "probe", client: client)),
        ] {
            let keys = Set(expected.keys).union(actual.keys)
            let wrong = keys.filter { expected[$0] != actual[$0] }.sorted()
            if !wrong.isEmpty {
                problems.append(
                    "\(wrong.count) of \(keys.count) (minute, \(name)) sums differ, e.g. "
                        + wrong.prefix(3).map { "\($0): store \(actual[$0].map { "\($0.records)" } ?? "-") records vs manifest \(expected[$0].map { "\($0.records)" } ?? "-")" }.joined(separator: "; "))
            }
        }
        return problems
    }

    /// Waits until the store's sums equal the manifest's exactly (stable over two looks), or
    /// `timeout`; returns the remaining differences (empty on success). Fails fast when the
    /// store holds more records than the manifest (double counting never heals).
    public func waitForExactTotals(_ manifest: Manifest, timeout: Duration = .seconds(240)) async throws -> [String] {
        let client = try elastic()
        defer { client.shutdown() }
        let deadline = ContinuousClock.now + timeout
        var problems: [String] = ["not checked"]
        var stable = 0
        while ContinuousClock.now < deadline {
            let totals = try await minuteTotals(by: "application", client: client)
            let records = totals.values.reduce(UInt64(0)) { $0 + $1.records }
            if records > manifest.totals.records {
                return ["store holds \(records) records, more than the \(manifest.totals.records) produced"]
            }
            if records == manifest.totals.records {
                problems = try await differences(from: manifest, client: client)
                stable = problems.isEmpty ? stable + 1 : 0
                if stable >= 2 { return [] }
            }
            try await Task.sleep(for: .seconds(2))
        }
        if problems == ["not checked"] { problems = try await differences(from: manifest, client: client) }
        return problems
    }

    /// The logs of every node, for failure messages.
    public func nodeLogs(tail lines: Int = 40) -> String {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter { $0.hasSuffix(".log") }.sorted() ?? []
        return files.map { f in
            let text = (try? String(contentsOfFile: "\(directory)/\(f)", encoding: .utf8)) ?? ""
            return "--- \(f)\n" + text.split(separator: "\n").suffix(lines).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Runs `body` with a new test bed and cleans up afterwards, whether `body` failed or not.
    public static func with<T>(
        services: DevServices, partitions: Int = 6, name: String, _ body: (NodeTestBed) async throws -> T
    ) async throws -> T {
        let bed = try NodeTestBed(services: services, partitions: partitions, name: name)
        do {
            let result = try await body(bed)
            await bed.cleanup()
            return result
        } catch {
            await bed.cleanup()
            throw error
        }
    }

    /// Kills every process started here, deletes the indices, templates and topics.
    public func cleanup() async {
        for p in lock.withLock({ processes }) where p.isRunning {
            p.signal(SIGKILL)
            p.wait(timeout: .seconds(10))
        }
        if let client = try? elastic() {
            for index in (try? await client.catIndices("\(prefix)-*")) ?? [] { _ = try? await client.deleteIndex(index.name) }
            for name in ["app_1m", "app_1h", "subscriber_5m", "server_1m", "app_15m", "checkpoints", "snapshots", "leases", "members"] {
                _ = try? await client.send("DELETE", "/_index_template/\(prefix)-\(name)")
            }
            client.shutdown()
        }
        services.deleteTopic(topic)
        services.deleteTopic(deadLetterTopic)
        try? FileManager.default.removeItem(atPath: directory)
    }
}
