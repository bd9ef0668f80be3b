import Foundation
import SpateClient
import SpateElastic
import SpateJSON
import SpateModel
import SpateProbe
import SpateQuery
import SpateSchema
import SpateTestSupport
import SpateWire
import Synchronization
import Testing

/// Closed slots cached, the store asked only for what can still change: against real
/// ingest (a node folding a live probe, checkpoints advancing), the answers must be those of
/// the store over the whole range, and the probe's manifest.
@Suite("Live dashboards: closed slots cached, exact", .serialized, .timeLimit(.minutes(10)))
struct LiveDashboardTests {
    /// The views of these tests: applications by minute and hour, subscribers by 5 minutes.
    static let views = """
          - {name: app_1m, bucket: 1m, dimensions: [application, application_category, l4_protocol, probe], sketches: [subscribers, rtt], hll_precision: 14, flush_interval: 2s}
          - {name: app_1h, bucket: 1h, dimensions: [application, application_category, l4_protocol, probe], sketches: [subscribers, rtt], hll_precision: 16, flush_interval: 3s}
          - {name: subscriber_5m, bucket: 5m, dimensions: [subscriber, application], flush_interval: 4s, top_k: 1000}
        """

    static let widgets: [Query] = [
        Query(range: .last(ms: 3_600_000), kind: .totals),
        Query(range: .last(ms: 1_800_000), view: "app_1m", kind: .totals),
        Query(range: .last(ms: 1_800_000), kind: .top(dimension: .application, metric: .bytes, limit: 500)),
        Query(range: .last(ms: 1_800_000), kind: .top(dimension: .subscriber, metric: .bytes, limit: 20_000)),
        Query(range: .last(ms: 1_800_000), kind: .series(metric: .records, stepMs: 60_000, splitBy: nil, splitLimit: 0)),
        Query(range: .last(ms: 1_800_000), filters: [QueryFilter(dimension: .application, op: .notEq, values: ["youtube"])], kind: .series(metric: .bytes, stepMs: 120_000, splitBy: .application, splitLimit: 500)),
        Query(range: .last(ms: 1_800_000), view: "app_1m", kind: .distinctSubscribers),
        Query(range: .last(ms: 1_800_000), view: "app_1m", kind: .rttQuantiles([0.5, 0.99])),
    ]

    static func engine(_ bed: NodeTestBed, client: ElasticClient) -> QueryEngine {
        let names = ["app_1m", "app_1h", "subscriber_5m"]
        let views = ViewDefinition.defaults.filter { names.contains($0.name) }.map { PlannableView(definition: $0, retentionDays: 0) }
        let horizons = ClosedHorizons(
            client: client, naming: IndexNaming(prefix: bed.prefix), group: bed.group, topic: bed.topic, latenessMs: 60_000, settleMs: 2000,
            readIntervalMs: 500)
        return QueryEngine(client: client, naming: IndexNaming(prefix: bed.prefix), views: views, horizons: horizons)
    }

    /// Differences between two answers to the same plan (top rows compared as sets: equal
    /// metrics may rank in either order).
    static func differences(_ a: QueryResult, _ b: QueryResult) -> [String] {
        var out: [String] = []
        if a.totals != b.totals { out.append("totals \(String(describing: a.totals)) != \(String(describing: b.totals))") }
        if Set(a.top) != Set(b.top) || a.top.map(\.metric) != b.top.map(\.metric) { out.append("top: \(a.top.count) rows vs \(b.top.count)") }
        let sa = Dictionary(a.series.map { ($0.label, $0.points) }, uniquingKeysWith: { x, _ in x })
        let sb = Dictionary(b.series.map { ($0.label, $0.points) }, uniquingKeysWith: { x, _ in x })
        if sa != sb { out.append("series differ: \(a.series.map(\.label)) vs \(b.series.map(\.label))") }
        if a.distinct != b.distinct { out.append("distinct \(String(describing: a.distinct)) != \(String(describing: b.distinct))") }
        if a.quantiles.map(\.1) != b.quantiles.map(\.1) { out.append("quantiles \(a.quantiles) != \(b.quantiles)") }
        if a.documents != b.documents { out.append("documents \(a.documents) != \(b.documents)") }
        return out
    }

    @Test("answers built from slots cached while ingest ran equal the store's whole-range answers and the manifest")
    func cachedEqualsWhole() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "live-cache") { bed in
            try await Self.cachedEqualsWhole(bed)
        }
    }

    static func cachedEqualsWhole(_ bed: NodeTestBed) async throws {
        bed.views = views
        try bed.startNode("a", workers: 1)
        let client = try bed.elastic()
        let engine = engine(bed, client: client)
        let incremental = try #require(engine.incremental)
        // Event time runs 30× the wall clock from 20 minutes ago: buckets close while it runs.
        let (probe, manifestPath) = try bed.startProbe([
            "--probes", "4", "--subscribers", "300", "--start", "now-20m", "--speedup", "30", "--rate", "2000", "--count", "40000",
            "--seed", "11",
        ])
        // Refresh every widget while ingest runs: the cache fills slot by slot as checkpoints
        // advance, as it does under a watch.
        while probe.isRunning {
            for w in widgets { _ = try? await incremental.execute(try engine.plan(w), nowMs: UInt64(Date().timeIntervalSince1970 * 1000)) }
            try await Task.sleep(for: .milliseconds(700))
        }
        #expect(probe.wait(timeout: .seconds(60)) == 0)
        let manifest = try Manifest.load(path: manifestPath)
        #expect(try await bed.waitForExactTotals(manifest).isEmpty)
        try await Task.sleep(for: .seconds(3))  // the last checkpoints settle
        // Each widget is compared in rounds where the store held still: a quiet partition's
        // last top-K bucket may be closed by an idle marker and land between two searches.
        var compared = [Int](repeating: 0, count: widgets.count)
        for round in 0..<6 where compared.contains(where: { $0 < 3 }) {
            for (i, w) in widgets.enumerated() where compared[i] < 3 {
                let plan = try engine.plan(w)
                let now = UInt64(Date().timeIntervalSince1970 * 1000)
                let before = try await engine.executor.execute(plan, nowMs: now)
                let cached = try await incremental.execute(plan, nowMs: now)
                let whole = try await engine.executor.execute(plan, nowMs: now)
                guard differences(before, whole).isEmpty else { continue }
                compared[i] += 1
                let d = differences(cached, whole)
                #expect(d.isEmpty, "round \(round), \(w.kind): \(d)")
                if case .totals = w.kind {
                    #expect(cached.totals?.records == manifest.totals.records)
                    #expect(cached.totals?.bytesUp == manifest.totals.bytesUp && cached.totals?.bytesDown == manifest.totals.bytesDown)
                    #expect(cached.totals?.flows == manifest.totals.flows)
                    #expect(cached.totals.map { $0.packetsUp + $0.packetsDown } == manifest.totals.packets)
                }
            }
        }
        #expect(compared.allSatisfy { $0 > 0 }, "widgets compared per round in which the store held still: \(compared)")
        // The test exercised the cache: slots were filled, and no shape fell back to the whole range.
        #expect(incremental.fillSearches.load(ordering: .relaxed) > 0)
        #expect(incremental.usage.entries == widgets.count)
        #expect(incremental.plainAnswers.load(ordering: .relaxed) == 0)
    }

    /// Every shape a client asks for is an entry of the closed-slot cache, slots cached or not
    /// (a range with nothing closed yet caches none): its key, up to 1,024 filter values, counts
    /// against `cache_max_bytes`, so distinct shapes cannot grow it without bound.
    @Test("60 shapes with 1,024 filter values each, nothing in the store: the closed-slot cache stays within its 1 MiB")
    func shapesCountAgainstTheBudget() async throws {
        let client = try ElasticClient(configuration: ElasticConfiguration(url: try TestServices.shared().elasticURL))
        let naming = IndexNaming(prefix: uniqueName("shapes"))
        let views = ViewDefinition.defaults.filter { $0.name == "app_1m" }.map { PlannableView(definition: $0, retentionDays: 0) }
        let horizons = ClosedHorizons(client: client, naming: naming, group: "g", topic: "t", latenessMs: 60_000)
        let engine = QueryEngine(client: client, naming: naming, views: views, cacheMaxBytes: 1 << 20, horizons: horizons)
        let incremental = try #require(engine.incremental)
        for k in 0..<60 {
            let values = (0..<1024).map { "app-\(k)-\($0)-" + String(repeating: "x", count: 24) }
            let q = Query(
                range: .last(ms: 1_800_000), filters: [QueryFilter(dimension: .application, op: .in, values: values)], view: "app_1m", kind: .totals)
            let r = try await incremental.execute(try engine.plan(q), nowMs: UInt64(Date().timeIntervalSince1970 * 1000))
            #expect(r.totals?.records ?? 0 == 0)
        }
        let usage = incremental.usage
        #expect(usage.bytes <= 1 << 20, "\(usage)")
        #expect(usage.entries > 0 && usage.entries < 60, "\(usage)")
    }

    @Test("a watch equals the manifest within one refresh of the store being exact, across a rebalance and a node kill")
    func watchAcrossRebalanceAndKill() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "live-watch") { bed in
            try await Self.watchAcrossRebalanceAndKill(bed)
        }
    }

    static func watchAcrossRebalanceAndKill(_ bed: NodeTestBed) async throws {
        bed.views = NodeTestBed.applicationViews
        var victim = try bed.startNode("a", workers: 1)
        let (_, address) = try await startQueryNode(bed, name: "b")
        let (probe, manifestPath) = try bed.startProbe([
            "--probes", "6", "--subscribers", "300", "--start", "now-25m", "--speedup", "30", "--rate", "2000", "--count", "60000",
            "--seed", "12",
        ])
        let client = try await SpateClient.connect(try ClientConfiguration(address: address))
        defer { Task { await client.close() } }
        let answers = Mutex<[QueryResult]>([])
        let watcher = Task {
            for try await r in client.watch(Query(range: .last(ms: 3_600_000), view: "app_1m", kind: .totals), refreshMs: 1000) {
                answers.withLock { $0.append(r) }
            }
        }
        defer { watcher.cancel() }
        try await Task.sleep(for: .seconds(8))
        bed.query = [:]  // the nodes started from now on listen on ports of their own
        try bed.startNode("c", workers: 1)  // a rebalance in the middle of the watch
        try await Task.sleep(for: .seconds(8))
        victim.signal(SIGKILL)  // and a node killed
        #expect(victim.wait(timeout: .seconds(10)) == 128 + SIGKILL)
        try await Task.sleep(for: .seconds(2))
        victim = try bed.startNode("a", workers: 1)
        #expect(probe.wait(timeout: .seconds(120)) == 0)
        let manifest = try Manifest.load(path: manifestPath)
        #expect(try await bed.waitForExactTotals(manifest, timeout: .seconds(180)).isEmpty)
        let exactAt = UInt64(Date().timeIntervalSince1970 * 1000)
        // Every answer computed one answer-cache period (app_1m's flush interval, 2 s) after the
        // store was exact equals the manifest; watch 12 s of them while the last slots close.
        try await Task.sleep(for: .seconds(14))
        let later = answers.withLock { $0 }.filter { $0.computedAtMs > exactAt + 2000 }
        #expect(later.count >= 5, "\(later.count) answers after the store was exact")
        for r in later {
            #expect(r.totals?.records == manifest.totals.records, "computed at \(r.computedAtMs): \(String(describing: r.totals?.records)) of \(manifest.totals.records)")
            #expect(r.totals?.bytesDown == manifest.totals.bytesDown)
        }
    }

    @Test("open buckets from the owners' memory: a watch equals the manifest within seconds, long before the store, across a rebalance and a kill")
    func liveTierAcrossRebalanceAndKill() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "live-tier") { bed in
            try await Self.liveTierAcrossRebalanceAndKill(bed)
        }
    }

    static func liveTierAcrossRebalanceAndKill(_ bed: NodeTestBed) async throws {
        // Flushes every 45 s: what the store holds lags far behind what the owners hold.
        bed.views = """
              - {name: app_1m, bucket: 1m, dimensions: [application, application_category, l4_protocol, probe], sketches: [subscribers, rtt], hll_precision: 14, flush_interval: 45s}
              - {name: app_1h, bucket: 1h, dimensions: [application, application_category, l4_protocol, probe], sketches: [subscribers, rtt], hll_precision: 16, flush_interval: 45s}
            """
        // Every node listens on a port of its own, which it advertises to its peers, and asks
        // for the cluster's token: node-to-node calls must present it too.
        let tokenFile = bed.directory + "/token"
        try "cluster-s3cret\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        var (victim, _) = try await startQueryNode(bed, query: ["token_file": tokenFile], name: "a")
        let victimQuery = bed.query
        let (_, address) = try await startQueryNode(bed, query: ["token_file": tokenFile], name: "b")
        let (probe, manifestPath) = try bed.startProbe([
            "--probes", "6", "--subscribers", "300", "--start", "now", "--rate", "1500", "--count", "36000", "--seed", "13",
        ])
        let client = try await SpateClient.connect(try ClientConfiguration(address: address, token: "cluster-s3cret"))
        defer { Task { await client.close() } }
        try await Self.peerCallRules(address: address)
        let answers = Mutex<[(at: ContinuousClock.Instant, result: QueryResult)]>([])
        let watcher = Task {
            for try await r in client.watch(Query(range: .last(ms: 3_600_000), view: "app_1m", kind: .totals), refreshMs: 1000) {
                answers.withLock { $0.append((.now, r)) }
            }
        }
        defer { watcher.cancel() }
        try await Task.sleep(for: .seconds(4))
        _ = try await startQueryNode(bed, query: ["token_file": tokenFile], name: "c")  // a rebalance in the middle of the watch
        try await Task.sleep(for: .seconds(5))
        victim.signal(SIGKILL)  // and a node killed
        #expect(victim.wait(timeout: .seconds(10)) == 128 + SIGKILL)
        try await Task.sleep(for: .seconds(1))
        bed.query = victimQuery
        victim = try bed.startNode("a", workers: 1)
        #expect(probe.wait(timeout: .seconds(120)) == 0)
        let manifest = try Manifest.load(path: manifestPath)
        let ended = ContinuousClock.now
        // The kill leaves the dead node's membership entry for up to 20 s (its partitions are
        // claimed twice meanwhile and come from the store); after that every partition is live.
        var exact: (at: ContinuousClock.Instant, result: QueryResult)?
        while ContinuousClock.now < ended + .seconds(90), exact == nil {
            try await Task.sleep(for: .milliseconds(500))
            exact = answers.withLock { $0 }.first { $0.at > ended && $0.result.totals?.records == manifest.totals.records && $0.result.storePartitions == 0 }
        }
        let first = try #require(exact, "no answer equal to the manifest from memory: last \(String(describing: answers.withLock { $0.last.map { ($0.result.totals?.records, $0.result.livePartitions, $0.result.storePartitions) } })) of \(manifest.totals.records)\n\(bed.nodeLogs())")
        // Answered from memory: the store, flushed every 45 s, does not hold it all yet.
        let stored = try await bed.differences(from: manifest, client: try bed.elastic())
        #expect(!stored.isEmpty, "the store was already exact; the test did not show the live tier")
        #expect(first.result.livePartitions == UInt32(bed.partitions))
        // From then on every answer stays exact (no partition counted twice as owners change
        // hands, slots close and checkpoints land).
        try await Task.sleep(for: .seconds(8))
        let later = answers.withLock { $0 }.filter { $0.at > first.at }
        #expect(later.count >= 5)
        for a in later {
            #expect(a.result.totals?.records == manifest.totals.records, "\(String(describing: a.result.totals?.records)) of \(manifest.totals.records), live \(a.result.livePartitions), store \(a.result.storePartitions)")
            #expect(a.result.totals?.bytesDown == manifest.totals.bytesDown)
        }
    }

    /// OpenBuckets, the node-to-node call: refused without the token, a malformed request is
    /// INVALID_ARGUMENT, a valid one answers the partitions the node owns.
    static func peerCallRules(address: String) async throws {
        let request = Array(#"{"view":"app_1m","start_ms":"0","end_ms":"3600000","step_ms":"60000","filters":[],"from":[]}"#.utf8)
        let anonymous = try await SpateClient.connect(try ClientConfiguration(address: address))
        let denied = await #expect(throws: RPCError.self) { _ = try await anonymous.unary(.openBuckets, request: request, timeout: .seconds(5)) }
        #expect(denied?.code == .unauthenticated)
        await anonymous.close()
        let peer = try await SpateClient.connect(try ClientConfiguration(address: address, token: "cluster-s3cret"))
        for bad in [#"{"view":"app_1m","start_ms":"5","end_ms":"1","step_ms":"0"}"#, "not json", #"{"view":"app_1m","start_ms":"0","end_ms":"99999999999999999999","step_ms":"1"}"#] {
            let e = await #expect(throws: RPCError.self) { _ = try await peer.unary(.openBuckets, request: Array(bad.utf8), timeout: .seconds(5)) }
            #expect(e?.code == .invalidArgument, "\(bad)")
        }
        let answer = try JSONParser.parse(try await peer.unary(.openBuckets, request: request, timeout: .seconds(5)))
        #expect(answer["parts"]?.arrayValue != nil)
        await peer.close()
    }
}
