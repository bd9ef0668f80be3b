import Foundation
import Logging
import ServiceLifecycle
import SpateElastic
import SpateIngest
import SpateSchema
import SpateJSON
import SpateModel
import Synchronization

/// Index lifecycle: deletes daily indices older than their view keeps, then the oldest ones
/// (finer views first within a day) while all Spate indices together exceed the size cap —
/// never today's. Exactly one node acts at a time: it holds a lease document (owner, expiry)
/// written with optimistic concurrency; a dead holder's lease expires and another node takes
/// over. A run is idempotent, so one that died half way is finished by the next.
final class RetentionService: Service, Sendable {
    struct State: Sendable {
        var owner = ""
        var holding = false
        var lastRunMs: UInt64 = 0
        var lastRun = ""
        var warnings: [String] = []
        var deletedIndices: UInt64 = 0
        /// Bytes of Spate indices over `retention.max_total_bytes` after the last run (0: under).
        var bytesOverCap: Int64 = 0
    }

    /// What `/metrics` shows: the cluster's last run, as recorded in the lease by whichever
    /// node ran it, and this node's own deletions and lease.
    var snapshot: RetentionSnapshot {
        state.withLock { RetentionSnapshot(lastRunMs: $0.lastRunMs, deletedIndices: $0.deletedIndices, bytesOverCap: $0.bytesOverCap, holdsLease: $0.holding) }
    }

    static let leaseID = "retention"

    private let configuration: NodeConfiguration
    private let client: ElasticClient
    private let logger: Logger
    private let naming: IndexNaming
    let state = Mutex<State>(State())

    init(configuration: NodeConfiguration, client: ElasticClient, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.logger = logger
        naming = IndexNaming(prefix: configuration.elasticsearch.indexPrefix)
    }

    private var me: String { configuration.node.id }
    private static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
    private var leaseMs: Int64 { configuration.retention.lease.wholeMilliseconds }

    func run() async throws {
        // The wait between checks ends at once on SIGTERM: ServiceGroup stops services one at
        // a time, so a service that sleeps through shutdown delays every other one.
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                if try await holdLease() { try await runOnce() }
            } catch {
                logger.warning("retention: \(error)")
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.configuration.retention.checkInterval) }
        }
        // Bounded: the lease expires on its own if the store does not answer in time.
        _ = await awaitAtMost(.seconds(3)) { await self.releaseLease() }
    }

    /// Takes or renews the lease; true when this node holds it now.
    func holdLease() async throws -> Bool {
        let now = Self.now()
        let doc = try await client.fetchDocument(index: naming.leaseIndex, id: Self.leaseID)
        let owner = doc?.source["owner"]?.stringValue ?? ""
        let expires = doc?.source["expires_at"]?.int64Value ?? 0
        // Every node learns the last run's outcome from the lease, so that `spate status` and
        // `/metrics` of any node show it, not only the holder's.
        if let doc {
            let lastRun = UInt64(max(0, doc.source["last_run_at"]?.int64Value ?? 0))
            let warnings = doc.source["warnings"]?.arrayValue?.compactMap(\.stringValue)
            let over = doc.source["bytes_over_cap"]?.int64Value
            state.withLock {
                if lastRun > $0.lastRunMs {
                    $0.lastRunMs = lastRun
                    if let warnings { $0.warnings = warnings }
                    if let over { $0.bytesOverCap = over }
                }
            }
        }
        guard doc == nil || owner == me || expires < now else {
            state.withLock {
                $0.owner = owner
                $0.holding = false
            }
            return false
        }
        var source = JSONObject()
        source["owner"] = .string(me)
        source["expires_at"] = .integer(now + leaseMs)
        source["acquired_at"] = owner == me ? (doc?.source["acquired_at"] ?? .integer(now)) : .integer(now)
        if let last = doc?.source["last_run_at"] { source["last_run_at"] = last }
        for key in ["last_run", "warnings", "bytes_over_cap"] {
            if let v = doc?.source[key] { source[key] = v }
        }
        let won = try await client.putDocumentIfUnchanged(
            index: naming.leaseIndex, id: Self.leaseID, source: .object(source), ifSeqNo: doc?.seqNo, ifPrimaryTerm: doc?.primaryTerm)
        if won && owner != me { logger.info("retention: lease acquired (previous holder: \(owner.isEmpty ? "none" : owner))") }
        state.withLock {
            $0.owner = won ? me : owner
            $0.holding = won
        }
        return won
    }

    private func releaseLease() async {
        guard state.withLock({ $0.holding }) else { return }
        if let doc = try? await client.fetchDocument(index: naming.leaseIndex, id: Self.leaseID), doc.source["owner"]?.stringValue == me {
            var source = doc.source.objectValue ?? JSONObject()
            source["expires_at"] = .integer(0)
            _ = try? await client.putDocumentIfUnchanged(
                index: naming.leaseIndex, id: Self.leaseID, source: .object(source), ifSeqNo: doc.seqNo, ifPrimaryTerm: doc.primaryTerm)
        }
    }

    /// The daily indices of the configured views.
    func dailyIndices() async throws -> [DailyIndex] {
        let views = configuration.views.map(\.name)
        return try await client.catIndices("\(naming.prefix)-*").compactMap { info in
            guard let (view, day) = RetentionPlan.parse(info.name, prefix: naming.prefix, views: views) else { return nil }
            return DailyIndex(name: info.name, view: view, day: day, bytes: info.storeBytes, documents: info.documents)
        }
    }

    /// The plan over the daily indices, and the part of the cap left to them (the cap minus
    /// the non-daily indices).
    func plan() async throws -> (plan: RetentionPlan, dailyCap: Int64) {
        let today = Self.now() / 86_400_000
        let all = try await client.catIndices("\(naming.prefix)-*")
        let daily = try await dailyIndices()
        // The cap covers every Spate index; the non-daily ones (checkpoints, snapshots, leases,
        // members) only count.
        let fixed = all.filter { i in !daily.contains { $0.name == i.name } }.map(\.storeBytes).saturatingSum()
        var ages: [String: UInt32] = [:]
        var buckets: [String: UInt64] = [:]
        for v in configuration.views {
            ages[v.name] = configuration.retentionDays(for: v)
            buckets[v.name] = v.bucketMs
        }
        let cap = configuration.retention.maxTotalBytes - min(fixed, configuration.retention.maxTotalBytes)
        return (RetentionPlan(indices: daily, maxAgeDays: ages, bucketMs: buckets, today: today, maxTotalBytes: cap), cap)
    }

    /// One retention pass under the lease.
    func runOnce() async throws {
        let (plan, dailyCap) = try await plan()
        var deleted: [String] = []
        for d in plan.deletions {
            // Renew before each deletion; stop as soon as the lease is someone else's.
            guard try await holdLease() else {
                logger.warning("retention: lease lost during a run; stopping after \(deleted.count) deletions")
                return
            }
            if try await client.deleteIndex(d.index.name) {
                logger.info("retention: deleted \(d.index.name) (\(d.reason), \(d.index.bytes) bytes, \(d.index.documents) documents)")
                deleted.append(d.index.name)
            }
        }
        var warnings: [String] = []
        if plan.overCapWithTodayOnly {
            let w = "today's indices alone (\(plan.remainingBytes) bytes) exceed retention.max_total_bytes (\(configuration.retention.maxTotalBytes)); they are never deleted — raise the cap or reduce the views"
            logger.error("retention: \(w)")
            warnings.append(w)
        }
        let now = Self.now()
        let summary = "deleted \(deleted.count) indices\(deleted.isEmpty ? "" : ": " + deleted.joined(separator: ", "))"
        let over = max(0, plan.remainingBytes - dailyCap)
        state.withLock {
            $0.lastRunMs = UInt64(now)
            $0.lastRun = summary
            $0.warnings = warnings
            $0.deletedIndices += UInt64(deleted.count)
            $0.bytesOverCap = over
        }
        if let doc = try await client.fetchDocument(index: naming.leaseIndex, id: Self.leaseID), doc.source["owner"]?.stringValue == me {
            var source = doc.source.objectValue ?? JSONObject()
            source["last_run_at"] = .integer(now)
            source["last_run"] = .string(String(summary.prefix(2000)))
            source["warnings"] = .array(warnings.map { .string($0) })
            source["bytes_over_cap"] = .integer(over)
            _ = try await client.putDocumentIfUnchanged(
                index: naming.leaseIndex, id: Self.leaseID, source: .object(source), ifSeqNo: doc.seqNo, ifPrimaryTerm: doc.primaryTerm)
        }
    }

    /// The store's usage per view and the days that fit under the cap.
    func storageReport() async throws -> StorageReport {
        let all = try await client.catIndices("\(naming.prefix)-*")
        let daily = try await dailyIndices()
        let today = Self.now() / 86_400_000
        var views: [ViewStorage] = []
        for v in configuration.views {
            let mine = daily.filter { $0.view == v.name }.sorted { $0.day < $1.day }
            let bytes = mine.map(\.bytes).saturatingSum()
            var records: Double = 0
            if !mine.isEmpty {
                let r = try await client.search(index: naming.pattern(view: v.name), body: ["size": 0, "aggs": ["r": ["sum": ["field": "records"]]]])
                records = r.aggregations["r"]?.value ?? 0
            }
            views.append(
                ViewStorage(
                    view: v.name, indices: mine.count, documents: UInt64(mine.map(\.documents).saturatingSum()), bytes: UInt64(bytes),
                    bytesPerRecord: records > 0 ? Double(bytes) / records : 0, oldestDay: mine.first?.dayText ?? "",
                    newestDay: mine.last?.dayText ?? "", retentionDays: configuration.retentionDays(for: v)))
        }
        let total = all.map(\.storeBytes).saturatingSum()
        // Daily growth: the average full day (before today) when there is one, else today so far
        // extrapolated to a whole day.
        let past = Dictionary(grouping: daily.filter { $0.day < today }, by: \.day).mapValues { $0.map(\.bytes).saturatingSum() }
        var perDay: Double = 0
        if !past.isEmpty {
            perDay = Double(past.values.saturatingSum()) / Double(past.count)
        } else {
            let todayBytes = daily.filter { $0.day == today }.map(\.bytes).saturatingSum()
            let elapsed = Double(Self.now() % 86_400_000) / 86_400_000
            perDay = elapsed > 0.01 ? Double(todayBytes) / elapsed : 0
        }
        let s = state.withLock { $0 }
        let lease = try? await client.fetchDocument(index: naming.leaseIndex, id: Self.leaseID)
        return StorageReport(
            views: views, totalBytes: UInt64(total), maxTotalBytes: UInt64(configuration.retention.maxTotalBytes),
            projectedDays: perDay > 0 ? Double(configuration.retention.maxTotalBytes) / perDay : 0, bytesPerDay: UInt64(clamping: perDay),
            warnings: s.warnings, retentionOwner: lease?.source["owner"]?.stringValue ?? s.owner,
            lastRetentionMs: UInt64(max(0, lease?.source["last_run_at"]?.int64Value ?? Int64(s.lastRunMs))))
    }
}
