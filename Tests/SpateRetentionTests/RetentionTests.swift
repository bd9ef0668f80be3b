import Foundation
import SpateElastic
import SpateIngest
import SpateSchema
import SpateModel
import SpateProbe
import SpateTestSupport
import Testing

@Suite("Retention plan (pure rules)")
struct RetentionPlanTests {
    let today: Int64 = 20_000
    func index(_ view: String, _ day: Int64, _ bytes: Int64) -> DailyIndex {
        DailyIndex(name: "spate-\(view)-\(IndexNaming.day(UInt64(day) * 86_400_000))", view: view, day: day, bytes: bytes, documents: 1)
    }

    @Test("over the cap: oldest day first, minute view before hour view, never today")
    func sizeOrder() {
        var all: [DailyIndex] = []
        for d in (today - 5)...today { all += [index("app_1m", d, 100), index("app_1h", d, 10)] }
        let plan = RetentionPlan(indices: all, maxAgeDays: ["app_1m": 30, "app_1h": 30], bucketMs: ["app_1m": 60_000, "app_1h": 3_600_000], today: today, maxTotalBytes: 250)
        // 660 bytes in all; removing day −5, −4, −3 (minute then hour) and day −2's minute
        // index leaves 230 ≤ 250.
        #expect(plan.deletions.map(\.index.name) == [all[0].name, all[1].name, all[2].name, all[3].name, all[4].name, all[5].name, all[6].name])
        #expect(plan.deletions.allSatisfy { $0.reason == "size" })
        #expect(plan.remainingBytes == 10 + 100 + 10 + 100 + 10)
        #expect(!plan.overCapWithTodayOnly)
    }

    @Test("age: a view keeping 3 days keeps today and the 2 days before")
    func age() {
        let all = ((today - 6)...today).map { index("app_1m", $0, 1) }
        let plan = RetentionPlan(indices: all, maxAgeDays: ["app_1m": 3], bucketMs: ["app_1m": 60_000], today: today, maxTotalBytes: 1 << 40)
        #expect(Set(plan.deletions.map(\.index.day)) == Set((today - 6)...(today - 3)))
    }

    @Test("today's index alone over the cap is kept and reported")
    func todayOverCap() {
        let plan = RetentionPlan(indices: [index("app_1m", today - 1, 5), index("app_1m", today, 500)], maxAgeDays: [:], bucketMs: [:], today: today, maxTotalBytes: 100)
        #expect(plan.deletions.map(\.index.day) == [today - 1])
        #expect(plan.overCapWithTodayOnly)
    }

    @Test("sizes summing past Int64.max: the plan is exact instead of trapping, oldest deleted first")
    func hugeSizes() {
        let today: Int64 = 20_000
        let big = Int64.max / 2 + 1
        let indices = (0..<3).map { k in
            DailyIndex(name: "spate-app_1m-\(k)", view: "app_1m", day: today - 2 + Int64(k), bytes: big, documents: big)
        }
        #expect(indices.map(\.bytes).saturatingSum() == .max)
        let plan = RetentionPlan(indices: indices, maxAgeDays: ["app_1m": 10], bucketMs: ["app_1m": 60_000], today: today, maxTotalBytes: big)
        #expect(plan.deletions.map(\.index.day) == [today - 2, today - 1])
        #expect(plan.remainingBytes == big)
        #expect(!plan.overCapWithTodayOnly)
    }

    @Test("index names parse for known views only", arguments: [
        ("spate-app_1m-2026.11.20", "app_1m"), ("spate-app_1h-2026.01.02", "app_1h"), ("spate-checkpoints", nil), ("spate-app_1m-2026.13.01", nil),
        ("other-app_1m-2026.11.20", nil), ("spate-app_1m-2000.01.01", "app_1m"), ("spate-app_1m-2099.12.31", "app_1m"),
        // Spate writes days of 2000 to 2099 only; 1969 would be day −1.
        ("spate-app_1m-1969.12.31", nil), ("spate-app_1m-2100.01.01", nil), ("spate-app_1m-0000.01.01", nil),
    ] as [(String, String?)])
    func parse(name: String, view: String?) {
        #expect(RetentionPlan.parse(name, prefix: "spate", views: ["app_1m", "app_1h"])?.view == view)
    }
}

/// Six days of backfilled data in two views (15 minutes and 1 hour, by L4 protocol: few
/// documents, so osmem-server keeps up), ingested with retention off.
func backfilledBed(_ bed: NodeTestBed) async throws -> (Manifest, [IndexInfo]) {
    bed.views = """
          - {name: app_15m, bucket: 15m, dimensions: [l4_protocol], flush_interval: 1s}
          - {name: app_1h, bucket: 1h, dimensions: [l4_protocol], flush_interval: 1s}
        """
    let ingest = try bed.startNode("ingest", ingest: ["allowed_lateness": "1h"], workers: 1, retention: ["enabled": "false"])
    // 30,000 records at 100k/s of event time × 1,728,000 = six days, ending now.
    let manifest = try bed.runProbe(["--probes", "2", "--subscribers", "50", "--count", "30000", "--rate", "0", "--start", "now-6d", "--speedup", "1728000"])
    let es = try bed.elastic()
    defer { es.shutdown() }
    let deadline = ContinuousClock.now + .seconds(180)
    while ContinuousClock.now < deadline {
        var complete = true
        for view in ["app_15m", "app_1h"] {
            let r = try await es.search(index: "\(bed.prefix)-\(view)-*", body: ["size": 0, "aggs": ["r": ["sum": ["field": "records"]]]])
            complete = complete && UInt64(r.aggregations["r"]?.value ?? 0) == manifest.totals.records
        }
        if complete { break }
        try await Task.sleep(for: .seconds(1))
    }
    ingest.signal(SIGTERM)
    #expect(ingest.wait(timeout: .seconds(30)) == 0)
    let indices = try await es.catIndices("\(bed.prefix)-app_*")
    return (manifest, indices)
}

/// What retention must keep: the reference rule over the listed indices.
func expectedRemaining(_ indices: [IndexInfo], prefix: String, cap: Int64, maxAge: [String: UInt32], fixedBytes: Int64) -> Set<String> {
    let today = Int64(Date().timeIntervalSince1970 * 1000) / 86_400_000
    let daily = indices.compactMap { i -> DailyIndex? in
        guard let (v, d) = RetentionPlan.parse(i.name, prefix: prefix, views: ["app_15m", "app_1h"]) else { return nil }
        return DailyIndex(name: i.name, view: v, day: d, bytes: i.storeBytes, documents: i.documents)
    }
    let plan = RetentionPlan(indices: daily, maxAgeDays: maxAge, bucketMs: ["app_15m": 900_000, "app_1h": 3_600_000], today: today, maxTotalBytes: cap - fixedBytes)
    return Set(daily.map(\.name)).subtracting(plan.deletions.map(\.index.name))
}

@Suite("Retention against osmem-server", .serialized, .timeLimit(.minutes(8)))
struct RetentionTests {
    @Test("a tiny cap deletes exactly the oldest indices, finer views first; a 3-day age limit deletes exactly the older days; today's survive")
    func capAndAge() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "ret-cap") { bed in
            let (_, indices) = try await backfilledBed(bed)
            let days = Set(indices.map { $0.name.suffix(10) })
            #expect(days.count >= 6, "backfill spans \(days.sorted())")
            let es = try bed.elastic()
            defer { es.shutdown() }
            let all = try await es.catIndices("\(bed.prefix)-*")
            let fixed = all.filter { !$0.name.contains("-app_") }.reduce(Int64(0)) { $0 + $1.storeBytes }
            let total = all.reduce(Int64(0)) { $0 + $1.storeBytes }
            let today = IndexNaming.day(UInt64(Date().timeIntervalSince1970 * 1000))
            let todayBytes = indices.filter { $0.name.hasSuffix(today) }.reduce(Int64(0)) { $0 + $1.storeBytes }
            // A cap between today's size and the total: some, not all, past indices must go.
            let cap = max(fixed + todayBytes + 1, min(200_000, total - 1))
            let keep = expectedRemaining(indices, prefix: bed.prefix, cap: cap, maxAge: ["app_15m": 30, "app_1h": 30], fixedBytes: fixed)
            #expect(keep.count < indices.count && keep.count > 2)

            let metricsPort = try freePort()
            let node = try bed.startNode(
                "cap", workers: 1, retention: ["max_total_bytes": String(cap), "check_interval": "1s"],
                extra: "metrics:\n  listen: \"127.0.0.1:\(metricsPort)\"\n")
            try await waitForLog(node, "retention: deleted", timeout: .seconds(60))
            try await Task.sleep(for: .seconds(3))
            var remaining = Set(try await es.catIndices("\(bed.prefix)-app_*").map(\.name))
            #expect(remaining == keep, "deleted \(Set(indices.map(\.name)).subtracting(remaining).sorted()); expected to keep \(keep.sorted())")
            #expect(remaining.contains { $0.hasSuffix(today) })
            // /metrics shows the run: the deletions, the lease, the last run, nothing over the cap.
            let scrape = try Shell.run("/usr/bin/curl", ["-sS", "--max-time", "10", "http://127.0.0.1:\(metricsPort)/metrics"])
            var samples: [String: Double] = [:]
            for line in scrape.output.split(separator: "\n") where line.hasPrefix("spate_retention_") {
                let f = line.split(separator: " ")
                if f.count == 2, let v = Double(f[1]) { samples[String(f[0])] = v }
            }
            #expect(samples["spate_retention_deleted_indices_total"] == Double(indices.count - keep.count), "\(scrape.output)")
            #expect(samples["spate_retention_lease_held"] == 1, "\(samples)")
            #expect((samples["spate_retention_last_run_timestamp_seconds"] ?? 0) > 0, "\(samples)")
            #expect(samples["spate_retention_over_cap_bytes"] == 0, "\(samples)")
            node.signal(SIGTERM)
            node.wait(timeout: .seconds(30))

            // Age: keep three days.
            let current = try await es.catIndices("\(bed.prefix)-app_*")
            let keepAge = expectedRemaining(current, prefix: bed.prefix, cap: 1 << 50, maxAge: ["app_15m": 3, "app_1h": 3], fixedBytes: 0)
            let aged = try bed.startNode("age", workers: 1, retention: ["check_interval": "1s"], extra: "retention:\n  max_age: {app_15m: 3d, app_1h: 3d}\n")
            if keepAge.count < current.count { try await waitForLog(aged, "retention: deleted", timeout: .seconds(60)) }
            try await Task.sleep(for: .seconds(3))
            remaining = Set(try await es.catIndices("\(bed.prefix)-app_*").map(\.name))
            #expect(remaining == keepAge)
            let kept = Set(remaining.map { String($0.suffix(10)) })
            #expect(kept.count <= 3 && kept.contains(today), "\(kept.sorted())")
        }
    }

    @Test("two nodes running retention at the same moment delete each index once and never a newer one")
    func twoNodes() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "ret-two") { bed in
            let (_, indices) = try await backfilledBed(bed)
            let keep = expectedRemaining(indices, prefix: bed.prefix, cap: 1 << 50, maxAge: ["app_15m": 2, "app_1h": 2], fixedBytes: 0)
            let proxy = try CountingProxy(upstream: bed.services.elasticURL, directory: bed.directory)
            defer { proxy.stop() }
            let extra = "retention:\n  max_age: {app_15m: 2d, app_1h: 2d}\n"
            let a = try bed.startNode("a", elasticURL: proxy.url, workers: 1, retention: ["check_interval": "500ms"], extra: extra)
            let b = try bed.startNode("b", elasticURL: proxy.url, workers: 1, retention: ["check_interval": "500ms"], extra: extra)
            let es = try bed.elastic()
            defer { es.shutdown() }
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline, Set(try await es.catIndices("\(bed.prefix)-app_*").map(\.name)) != keep {
                try await Task.sleep(for: .seconds(1))
            }
            try await Task.sleep(for: .seconds(3))
            let deletes = proxy.deletes
            let expected = Set(indices.map(\.name)).subtracting(keep)
            #expect(Set(deletes.keys) == expected, "deleted \(deletes.keys.sorted()), expected \(expected.sorted())")
            #expect(deletes.values.allSatisfy { $0 == 1 }, "\(deletes)")
            #expect(Set(try await es.catIndices("\(bed.prefix)-app_*").map(\.name)) == keep)
            let actors = [a, b].filter { $0.output.contains("retention: deleted") }
            #expect(actors.count == 1, "both nodes deleted indices")
        }
    }

    @Test("killing the acting node mid-retention: another takes over within the lease time and finishes")
    func takeover() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "ret-kill") { bed in
            let (_, indices) = try await backfilledBed(bed)
            let keep = expectedRemaining(indices, prefix: bed.prefix, cap: 1 << 50, maxAge: ["app_15m": 2, "app_1h": 2], fixedBytes: 0)
            #expect(indices.count - keep.count >= 4)
            // Every DELETE takes 2 s: a run takes long enough to be interrupted.
            let proxy = try CountingProxy(upstream: bed.services.elasticURL, directory: bed.directory, deleteDelay: 2)
            defer { proxy.stop() }
            let extra = "retention:\n  max_age: {app_15m: 2d, app_1h: 2d}\n"
            let settings = ["check_interval": "500ms", "lease": "4s"]
            let a = try bed.startNode("a", elasticURL: proxy.url, workers: 1, retention: settings, extra: extra)
            try await waitForLog(a, "retention: deleted", timeout: .seconds(60))
            let b = try bed.startNode("b", elasticURL: proxy.url, workers: 1, retention: settings, extra: extra)
            a.signal(SIGKILL)
            let killed = ContinuousClock.now
            try await waitForLog(b, "retention: lease acquired", timeout: .seconds(30))
            let takeover = ContinuousClock.now - killed
            #expect(takeover < .seconds(4) + .seconds(4), "took \(takeover) (lease 4 s, plus start-up)")
            let es = try bed.elastic()
            defer { es.shutdown() }
            let deadline = ContinuousClock.now + .seconds(90)
            while ContinuousClock.now < deadline, Set(try await es.catIndices("\(bed.prefix)-app_*").map(\.name)) != keep {
                try await Task.sleep(for: .seconds(1))
            }
            #expect(Set(try await es.catIndices("\(bed.prefix)-app_*").map(\.name)) == keep)
            #expect(proxy.deletes.keys.allSatisfy { !keep.contains($0) })
        }
    }
}

func waitForLog(_ p: ChildProcess, _ text: String, timeout: Duration) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if p.output.contains(text) { return }
        try await Task.sleep(for: .milliseconds(200))
    }
    throw TestSupportError("'\(text)' never appeared in the log:\n\(p.output.suffix(3000))")
}
