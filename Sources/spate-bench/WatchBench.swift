import ArgumentParser
import Foundation
import SpateClient
import SpateModel
import SpateWire
import Synchronization

/// Many viewers of a few live dashboards: N client connections, each watching every widget
/// of one of D dashboards (client i watches dashboard i mod D), through the same `Watch` calls
/// as `spate watch`. Measures, per update a client receives, how long after its refresh tick
/// it arrived, and (with fault-proxy.py in front of the store) how many store searches the
/// node made per refresh interval.
///
/// Latency, precisely. The node's refresh loop stamps every answer it computes with the wall
/// clock at the start of that refresh (`computed_at_ms`, taken before the store is asked); an
/// answer served from the node's cache keeps the stamp of the refresh that computed it and is
/// marked `cached`. So:
///   - a fresh update's latency is `receipt − computed_at_ms`: the store round trip, the
///     fan-out to every watcher, the network and the client's decoding (same host, same clock;
///     the stamp is truncated to the millisecond, so up to +1 ms);
///   - a cached update carries no tick time; its tick is taken as the first receipt of that
///     refresh among all the benchmark's clients of the dashboard (a lower bound: the first
///     client counts 0), so its latency is the fan-out delay only.
/// Receipts of one widget are grouped into refreshes by time (a new refresh starts more than
/// half an interval after the previous one's first receipt). The first update of every watch
/// (a joining watcher is sent the loop's last answer at once) falls in the warm-up and is not
/// measured: the window opens once every watch has had an update.
struct WatchBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "N clients watching D distinct dashboards: refresh latency p50/p99/max and store searches per interval.",
        discussion: """
            Each client is its own connection (as separate `spate watch` processes would be) and watches the 4 widgets \
            of its dashboard (top applications, a series split by application, totals, top subscribers); dashboards \
            differ in range, application filter and metric. Give --store-stats (and --store-log) of a \
            Tests/Tools/fault-proxy.py in front of the node's store to count store searches in the window.
            """)

    @Option(help: "The node's query address, host:port.") var server = "127.0.0.1:7400"
    @Option(help: "Client connections.") var clients = 50
    @Option(help: "Distinct dashboards (client i watches dashboard i mod D).") var dashboards = 5
    @Option(help: "Refresh interval (the node raises it to query.min_refresh, default 1s).") var refresh = "2s"
    @Option(help: "Measurement window, after every watch has had its first update.") var duration = "60s"
    @Option(help: "Longest wait for every watch's first update.") var warmupTimeout = "60s"
    @Option(help: "fault-proxy.py's <port-file>.stats, read at the window's start and end (store searches).") var storeStats: String?
    @Option(help: "fault-proxy.py's --log output, for the store time of each search in the window.") var storeLog: String?
    @Option(help: "Also write the results as JSON to this file.") var json: String?
    @Flag(help: "Start a client's watches from concurrent tasks, as `spate watch` does (see WatchBench.watch).") var concurrentStarts = false
    @Option(help: "Every dashboard's range in minutes instead of its own (1440: the same dashboards over 24 h).") var rangeMinutes: Int?
    @Option(help: "Freshness: records per second a live spate-probe produces (paced) during the run; with --freshness-start-ms and --freshness-base.") var freshnessRate: Double?
    @Option(help: "Freshness: Unix ms at which the live probe started producing (its record k is produced no earlier than start + k / rate).") var freshnessStartMs: Double?
    @Option(help: "Freshness: records the node holds from before the live probe (a watch of totals over the last hour counts them).") var freshnessBase: UInt64 = 0
    @Option(help: "Freshness: records per message of the live probe (its --batch): a message is sent when its first record is due.") var freshnessBatch: UInt64 = 200

    func validate() throws {
        guard clients >= 1, dashboards >= 1 else { throw ValidationError("--clients and --dashboards must be at least 1") }
        for (name, v) in [("--refresh", refresh), ("--duration", duration), ("--warmup-timeout", warmupTimeout)] {
            guard let ms = TimeParsing.durationMs(v), ms > 0 else { throw ValidationError("\(name): cannot read '\(v)'") }
        }
    }

    func run() async throws {
        let refreshMs = TimeParsing.durationMs(refresh)!
        let windowMs = TimeParsing.durationMs(duration)!
        let warmupMs = TimeParsing.durationMs(warmupTimeout)!
        let boards = (0..<dashboards).map { BenchDashboard.make($0, rangeMinutes: rangeMinutes.map(UInt64.init)) }
        let freshness = FreshnessRecorder()
        let configuration = try ClientConfiguration(address: server)
        let recorder = Recorder(streams: (0..<clients).map { boards[$0 % dashboards].widgets.count })

        // One connection per client.
        let connections = try await withThrowingTaskGroup(of: (Int, SpateClient).self) { group in
            for c in 0..<clients { group.addTask { (c, try await SpateClient.connect(configuration)) } }
            var out = [SpateClient?](repeating: nil, count: clients)
            for try await (c, client) in group { out[c] = client }
            return out.map { $0! }
        }

        var window: (startMs: Double, endMs: Double) = (0, 0)
        var storeBefore: StoreSnapshot?
        var storeAfter: StoreSnapshot?
        var warmedUp = true
        await withTaskGroup(of: Void.self) { group in
            for c in 0..<clients {
                let d = c % dashboards
                for (w, widget) in boards[d].widgets.enumerated() {
                    let client = connections[c]
                    let request = WireMessages.encodeWatch(widget.query, refreshMs: UInt32(refreshMs))
                    // Opened here, one after the other, unless --concurrent-starts.
                    let first = concurrentStarts ? nil : client.call(Method.watch.rawValue, request: request)
                    group.addTask { await Self.watch(client, request: request, first: first, client: c, dashboard: d, widget: w, recorder) }
                }
            }
            if freshnessRate != nil {
                // One more connection: totals over the last hour, to see when live records appear.
                let watcher = try? await SpateClient.connect(configuration)
                if let watcher {
                    let request = WireMessages.encodeWatch(Query(range: .last(ms: 3_600_000), kind: .totals), refreshMs: UInt32(refreshMs))
                    group.addTask {
                        do {
                            for try await bytes in watcher.call(Method.watch.rawValue, request: request) {
                                guard let r = try? WireMessages.decodeQueryResult(bytes) else { continue }
                                freshness.add(receivedMs: Recorder.nowMs(), records: r.totals?.records ?? 0, live: r.livePartitions, store: r.storePartitions)
                            }
                        } catch {}
                        await watcher.close()
                    }
                }
            }
            let warmupEnd = ContinuousClock.now + .milliseconds(Int64(warmupMs))
            while !recorder.allStarted {
                if ContinuousClock.now >= warmupEnd {
                    warmedUp = false
                    break
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
            storeBefore = StoreSnapshot.take(stats: storeStats, log: storeLog)
            window.startMs = Recorder.nowMs()
            try? await Task.sleep(for: .milliseconds(Int64(windowMs)))
            window.endMs = Recorder.nowMs()
            storeAfter = StoreSnapshot.take(stats: storeStats, log: storeLog)
            group.cancelAll()
        }
        for c in connections { await c.close() }
        if !warmedUp { FileHandle.standardError.write(Data("watch: not every watch had an update within \(warmupTimeout); measuring anyway\n".utf8)) }

        var report = Analysis(
            samples: recorder.samples, errors: recorder.errorCounts, window: window, refreshMs: Double(refreshMs), clients: clients,
            boards: boards, storeBefore: storeBefore, storeAfter: storeAfter, storeLog: storeLog
        ).report(warmedUp: warmedUp)
        if let rate = freshnessRate, let start = freshnessStartMs {
            let (text, json) = freshness.report(window: window, rate: rate, startMs: start, base: freshnessBase, batch: max(1, freshnessBatch))
            report.text += "\n" + text
            report.json["freshness"] = json
        }
        print(report.text)
        if let json {
            let data = try JSONSerialization.data(withJSONObject: report.json, options: [.sortedKeys, .prettyPrinted])
            try data.write(to: URL(fileURLWithPath: json))
        }
    }

    /// One widget of one client: a Watch call, restarted (after 1 s, like `spate watch`) when
    /// it ends or fails, until the benchmark cancels it.
    ///
    /// `first` is the call already opened by the caller. SpateClient assigns a call's stream id
    /// under its lock but writes the HEADERS frame after releasing it, so calls opened from
    /// concurrent tasks on one connection can reach the wire out of id order; the node then
    /// answers GOAWAY INVALID_ARGUMENT ("stream N is not above the last one") and every call of
    /// that connection fails. `spate watch` opens its widgets that way. The benchmark opens
    /// each client's watches one after the other (`--concurrent-starts` shows the failure).
    static func watch(
        _ c: SpateClient, request: [UInt8], first: AsyncThrowingStream<[UInt8], any Error>?, client: Int, dashboard: Int, widget: Int, _ recorder: Recorder
    ) async {
        var next = first
        while !Task.isCancelled {
            do {
                let stream = next ?? c.call(Method.watch.rawValue, request: request)
                next = nil
                for try await bytes in stream {
                    let received = Recorder.nowMs()
                    let r = try WireMessages.decodeQueryResult(bytes)
                    recorder.add(
                        Sample(client: client, dashboard: dashboard, widget: widget, receivedMs: received, computedAtMs: r.computedAtMs, cached: r.cached))
                }
                if Task.isCancelled { return }
                recorder.error("the watch ended without an error")
            } catch {
                if Task.isCancelled { return }
                let e = error as? RPCError
                recorder.error(String((e.map { "\($0.code): \($0.message)" } ?? "\(error)").prefix(160)))
                if let e, e.code == .invalidArgument || e.code == .notFound || e.code == .unauthenticated { return }
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}

/// A dashboard of the benchmark: four widgets sharing a range, an application filter and a metric.
struct BenchDashboard: Sendable {
    var name: String
    var widgets: [(title: String, query: Query)]

    private static let bases: [(name: String, minutes: UInt64, applications: [String], metric: Metric)] = [
        ("overview", 15, [], .bytes),
        ("video", 30, ["youtube", "netflix", "tiktok", "amazon-prime-video", "disney-plus", "twitch"], .bytes),
        ("social", 15, ["facebook", "instagram", "snapchat", "twitter", "reddit", "linkedin", "pinterest"], .packets),
        ("gaming", 60, ["steam", "fortnite", "call-of-duty", "roblox", "minecraft", "league-of-legends", "xbox-live"], .bytesDown),
        ("web", 10, ["https", "http", "quic", "google", "wikipedia", "amazon"], .flows),
    ]

    /// Dashboard `i`: one of five themes; beyond five, the ranges grow by a minute per round so
    /// that every dashboard asks different questions. `rangeMinutes` replaces the theme's range.
    static func make(_ i: Int, rangeMinutes: UInt64? = nil) -> BenchDashboard {
        var b = bases[i % bases.count]
        if let rangeMinutes { b.minutes = rangeMinutes }
        let round = UInt64(i / bases.count)
        let range = QueryRange.last(ms: (b.minutes + round) * 60_000)
        let filters = b.applications.isEmpty ? [] : [QueryFilter(dimension: .application, op: .in, values: b.applications)]
        func q(_ kind: QueryKind) -> Query { Query(range: range, filters: filters, kind: kind) }
        return BenchDashboard(
            name: "\(b.name) (\(b.minutes + round)m\(b.applications.isEmpty ? "" : ", \(b.applications.count) applications"), \(b.metric.rawValue))",
            widgets: [
                ("top applications", q(.top(dimension: .application, metric: b.metric, limit: 10))),
                ("series by application", q(.series(metric: b.metric, stepMs: 0, splitBy: .application, splitLimit: 5))),
                ("totals", q(.totals)),
                ("top subscribers", q(.top(dimension: .subscriber, metric: b.metric, limit: 10))),
            ])
    }
}

struct Sample: Sendable {
    var client: Int
    var dashboard: Int
    var widget: Int
    var receivedMs: Double
    var computedAtMs: UInt64
    var cached: Bool
}

/// Every update received, and errors by kind.
final class Recorder: Sendable {
    private struct State {
        var samples: [Sample] = []
        var started: Set<Int> = []
        var errors: [String: Int] = [:]
    }
    private let state = Mutex(State())
    /// Stream index base of each client.
    private let base: [Int]
    private let streamCount: Int

    init(streams perClient: [Int]) {
        var b: [Int] = []
        var n = 0
        for k in perClient {
            b.append(n)
            n += k
        }
        base = b
        streamCount = n
    }

    static func nowMs() -> Double { Date().timeIntervalSince1970 * 1000 }

    func add(_ s: Sample) {
        let stream = base[s.client] + s.widget
        state.withLock {
            $0.samples.append(s)
            $0.started.insert(stream)
        }
    }

    func error(_ kind: String) { state.withLock { $0.errors[kind, default: 0] += 1 } }
    var allStarted: Bool { state.withLock { $0.started.count } == streamCount }
    var samples: [Sample] { state.withLock { $0.samples } }
    var errorCounts: [String: Int] { state.withLock { $0.errors } }
}

/// fault-proxy.py's counters and the length of its log at one moment.
struct StoreSnapshot {
    var searches: Int?
    var requests: Int?
    var bulks: Int?
    var logOffset: UInt64?

    static func take(stats: String?, log: String?) -> StoreSnapshot {
        var s = StoreSnapshot()
        if let stats, let data = FileManager.default.contents(atPath: stats),
            let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        {
            s.searches = o["searches"] as? Int
            s.requests = o["requests"] as? Int
            s.bulks = o["bulk_requests"] as? Int
        }
        if let log, let a = try? FileManager.default.attributesOfItem(atPath: log), let size = a[.size] as? NSNumber {
            s.logOffset = size.uint64Value
        }
        return s
    }
}

/// Nearest-rank percentiles of a sample.
struct Distribution {
    let sorted: [Double]
    init(_ values: [Double]) { sorted = values.sorted() }
    var count: Int { sorted.count }
    func p(_ q: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }
    var maximum: Double? { sorted.last }
    var mean: Double? { sorted.isEmpty ? nil : sorted.reduce(0, +) / Double(sorted.count) }

    func json() -> [String: Any] {
        var o: [String: Any] = ["count": count]
        if let v = p(0.5) { o["p50"] = v }
        if let v = p(0.99) { o["p99"] = v }
        if let v = sorted.first { o["min"] = v }
        if let v = maximum { o["max"] = v }
        if let v = mean { o["mean"] = v }
        return o
    }

    func text(_ unit: String = "ms") -> String {
        guard let p50 = p(0.5), let p99 = p(0.99), let max = maximum else { return "no samples" }
        let u = unit.isEmpty ? "" : " " + unit
        return String(format: "p50 %.1f%@, p99 %.1f%@, max %.1f%@ (%d)", p50, u, p99, u, max, u, count)
    }
}

struct Analysis {
    var samples: [Sample]
    var errors: [String: Int]
    var window: (startMs: Double, endMs: Double)
    var refreshMs: Double
    var clients: Int
    var boards: [BenchDashboard]
    var storeBefore: StoreSnapshot?
    var storeAfter: StoreSnapshot?
    var storeLog: String?

    func report(warmedUp: Bool) -> (text: String, json: [String: Any]) {
        let inWindow = samples.filter { $0.receivedMs >= window.startMs && $0.receivedMs < window.endMs }
        let seconds = (window.endMs - window.startMs) / 1000
        let intervals = (window.endMs - window.startMs) / refreshMs

        // Group each widget's receipts into refreshes.
        struct Key: Hashable {
            var dashboard: Int
            var widget: Int
        }
        var all: [Double] = []
        var fresh: [Double] = []
        var cachedLatency: [Double] = []
        var spread: [Double] = []
        var refreshes = 0
        var refreshesFresh = 0
        var mixedRefreshes = 0
        var freshStamps = Set<String>()
        // Refreshes that asked the store: (stamp, first receipt) — the node's refresh time, and
        // how many such refreshes were in flight together.
        var storeRefreshes: [(start: Double, end: Double)] = []
        for (key, group) in Dictionary(grouping: inWindow, by: { Key(dashboard: $0.dashboard, widget: $0.widget) }) {
            let ordered = group.sorted { $0.receivedMs < $1.receivedMs }
            var ticks: [[Sample]] = []
            for s in ordered {
                if let first = ticks.last?.first, s.receivedMs - first.receivedMs <= refreshMs / 2 {
                    ticks[ticks.count - 1].append(s)
                } else {
                    ticks.append([s])
                }
            }
            refreshes += ticks.count
            for tick in ticks {
                let first = tick[0].receivedMs
                spread.append(tick.last!.receivedMs - first)
                // One shared loop sends every watcher the same answer: one stamp per refresh.
                if Set(tick.map { "\($0.computedAtMs)/\($0.cached)" }).count > 1 { mixedRefreshes += 1 }
                if let f = tick.first(where: { !$0.cached }) {
                    refreshesFresh += 1
                    storeRefreshes.append((Double(f.computedAtMs), f.receivedMs))
                }
                for s in tick {
                    if s.cached {
                        let l = s.receivedMs - first
                        cachedLatency.append(l)
                        all.append(l)
                    } else {
                        let l = s.receivedMs - Double(s.computedAtMs)
                        fresh.append(l)
                        all.append(l)
                        freshStamps.insert("\(key.dashboard)/\(key.widget)/\(s.computedAtMs)")
                    }
                }
            }
        }
        let allD = Distribution(all)
        let freshD = Distribution(fresh)
        let cachedD = Distribution(cachedLatency)
        let spreadD = Distribution(spread)
        let nodeRefreshD = Distribution(storeRefreshes.map { $0.end - $0.start })
        let inFlightD = Distribution(storeRefreshes.map { r in Double(storeRefreshes.filter { $0.start <= r.start && r.start < $0.end }.count) })

        // Updates per watch (client × widget) in the window.
        var perStream: [String: Int] = [:]
        for c in 0..<clients {
            for w in boards[c % boards.count].widgets.indices { perStream["\(c)/\(w)"] = 0 }
        }
        for s in inWindow { perStream["\(s.client)/\(s.widget)", default: 0] += 1 }
        let streams = Distribution(perStream.values.map(Double.init))
        let loops = boards.prefix(min(clients, boards.count)).reduce(0) { $0 + $1.widgets.count }

        var json: [String: Any] = [
            "clients": clients, "dashboards": boards.count, "watches": perStream.count, "loops_expected": loops,
            "refresh_ms": refreshMs, "window_s": seconds, "intervals": intervals, "warmed_up": warmedUp,
            "updates": inWindow.count, "updates_fresh": fresh.count, "updates_cached": cachedLatency.count,
            "latency_all_ms": allD.json(), "latency_fresh_ms": freshD.json(), "latency_cached_ms": cachedD.json(),
            "fanout_spread_ms": spreadD.json(), "updates_per_watch": streams.json(),
            "node_refresh_ms": nodeRefreshD.json(), "store_refreshes_in_flight": inFlightD.json(),
            "refreshes": refreshes, "refreshes_with_fresh_answer": refreshesFresh, "refreshes_with_differing_answers": mixedRefreshes,
            "distinct_fresh_answers": freshStamps.count, "errors": errors,
            "dashboards_detail": boards.map { $0.name },
        ]
        var lines = [
            "watch: \(clients) clients, \(boards.count) dashboards, \(perStream.count) watches (\(loops) distinct queries), refresh \(Int(refreshMs)) ms, window \(String(format: "%.1f", seconds)) s\(warmedUp ? "" : " (warm-up incomplete)")",
            "  updates \(inWindow.count) (\(fresh.count) fresh, \(cachedLatency.count) from the node's cache); per watch \(streams.text("")), expected ≤ \(String(format: "%.1f", intervals))",
            "  latency, all updates:   \(allD.text())",
            "  latency, fresh answers: \(freshD.text())",
            "  latency, cached:        \(cachedD.text())",
            "  fan-out spread per refresh (last − first receipt): \(spreadD.text())",
            "  node refresh time when the store was asked (first receipt − stamp): \(nodeRefreshD.text()); such refreshes in flight together: \(inFlightD.text(""))",
            "  refreshes observed \(refreshes) (\(String(format: "%.2f", Double(refreshes) / Double(max(1, loops)) / max(1, intervals))) per query per interval), \(refreshesFresh) with a fresh answer, \(freshStamps.count) distinct fresh answers, \(mixedRefreshes) refreshes whose watchers got different answers",
            "  errors: \(errors.isEmpty ? "none" : errors.map { "\($0.key) ×\($0.value)" }.sorted().joined(separator: ", "))",
        ]
        if let b = storeBefore, let a = storeAfter, let s0 = b.searches, let s1 = a.searches {
            let searches = s1 - s0
            var store: [String: Any] = [
                "searches": searches, "searches_per_interval": Double(searches) / intervals,
                "requests": (a.requests ?? 0) - (b.requests ?? 0), "bulk_requests": (a.bulks ?? 0) - (b.bulks ?? 0),
            ]
            var line = String(format: "  store: %d searches in the window = %.2f per %d ms interval", searches, Double(searches) / intervals, Int(refreshMs))
            if let log = storeLog, let o0 = b.logOffset, let o1 = a.logOffset, o1 > o0, let times = Self.searchTimes(log: log, from: o0, to: o1) {
                let d = Distribution(times.map { $0 * 1000 })
                store["search_time_ms"] = d.json()
                line += "; store time per search at the proxy \(d.text())"
            }
            json["store"] = store
            lines.append(line)
        }
        return (lines.joined(separator: "\n"), json)
    }

    /// Durations (s) of the `_search` lines fault-proxy.py logged between two offsets.
    static func searchTimes(log: String, from: UInt64, to: UInt64) -> [Double]? {
        guard let h = FileHandle(forReadingAtPath: log) else { return nil }
        defer { try? h.close() }
        guard (try? h.seek(toOffset: from)) != nil, let data = try? h.read(upToCount: Int(to - from)) else { return nil }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line -> Double? in
            // "POST /index/_search?… 123 bytes 0.012s"
            let parts = line.split(separator: " ")
            guard parts.count >= 5, parts[1].contains("/_search"), let last = parts.last, last.hasSuffix("s") else { return nil }
            return Double(last.dropLast())
        }
    }
}

/// What a watch of totals over the last hour saw while a paced live probe ran: per answer, its
/// receipt time and record count. Freshness is per record: the probe sends its records in
/// messages of `batch`, each when its first record is due, so record k of the live probe
/// (k ≥ 1) is produced no earlier than start + ⌊(k − 1) / batch⌋ · batch / rate (it starts
/// after `start`), and is visible from the receipt of the first answer counting at least
/// base + k records. So "produced → visible" as computed here is an upper bound for each
/// record (a late-starting probe only makes it larger).
final class FreshnessRecorder: Sendable {
    private let answers = Mutex<[(receivedMs: Double, records: UInt64, live: UInt32, store: UInt32)]>([])

    func add(receivedMs: Double, records: UInt64, live: UInt32, store: UInt32) {
        answers.withLock { $0.append((receivedMs, records, live, store)) }
    }

    /// Latency of every live record that became visible within the window.
    func report(window: (startMs: Double, endMs: Double), rate: Double, startMs: Double, base: UInt64, batch: UInt64) -> (text: String, json: [String: Any]) {
        let all = answers.withLock { $0 }
        var latencies: [Double] = []
        var seen = all.last(where: { $0.receivedMs < window.startMs })?.records ?? base
        var live = Distribution([])
        var store = Distribution([])
        let inWindow = all.filter { $0.receivedMs >= window.startMs && $0.receivedMs < window.endMs }
        for a in inWindow {
            if a.records > seen {
                let first = max(seen, base) + 1
                if a.records >= first {
                    for n in first...a.records {
                        let produced = startMs + Double((n - base - 1) / batch * batch) / rate * 1000
                        latencies.append(a.receivedMs - produced)
                    }
                }
                seen = a.records
            }
        }
        live = Distribution(inWindow.map { Double($0.live) })
        store = Distribution(inWindow.map { Double($0.store) })
        let d = Distribution(latencies)
        var json: [String: Any] = ["records": latencies.count, "answers": inWindow.count, "latency_ms": d.json()]
        json["live_partitions"] = live.json()
        json["store_partitions"] = store.json()
        let text = "  freshness (live record produced → visible in a watch of totals): \(d.text()) over \(latencies.count) records, \(inWindow.count) answers; live partitions per answer \(live.text("")), store partitions \(store.text(""))"
        return (text, json)
    }
}
