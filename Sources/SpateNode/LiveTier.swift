import Foundation
import Logging
import SpateClient
import SpateIngest
import SpateModel
import SpateQuery
import SpateWire
import Synchronization

/// The live tier's scatter and gather (docs/DESIGN.md, "Live dashboards"): asks the owner of
/// every partition for the open buckets it holds — this node's own workers directly, other
/// nodes with the `OpenBuckets` call — and keeps, per partition, at most one answer: from
/// this node if it owns the partition now, else from the one node membership names as its
/// owner. A partition two members claim (a rebalance not yet published), an owner that does
/// not answer within `query.peer_timeout`, or one that declines is left to the store.
///
/// Calls to peers carry this node's query token, have a deadline, and go over one pooled
/// connection per peer; answers are validated (`OpenBucketsCall`) and bounded by the client's
/// frame limit (4 MiB, what any Spate node sends at most).
final class LiveTier: Sendable {
    private let configuration: NodeConfiguration
    private let local: @Sendable (OpenBucketRequest, OpenBucketLimits, Duration) async -> OpenBucketMailbox.Answers
    private let members: @Sendable () async -> [NodeStatus]
    private let logger: Logger
    /// Owners by partition from the last membership listing, refreshed at most every heartbeat.
    private let owners = Mutex<(map: [Int32: (node: String, address: String)], known: Set<Int32>, atMs: UInt64)?>(nil)
    private let refreshing = Mutex<Task<Void, Never>?>(nil)
    private let clients = Mutex<[String: SpateClient]>([:])
    let limits = OpenBucketLimits()
    /// Peer calls made and failed (metrics, tests).
    let peerCalls = Atomic<UInt64>(0)
    let peerFailures = Atomic<UInt64>(0)

    /// The topic's partition count (0: not known yet).
    private let partitionCount: @Sendable () -> Int

    init(
        configuration: NodeConfiguration, local: @escaping @Sendable (OpenBucketRequest, OpenBucketLimits, Duration) async -> OpenBucketMailbox.Answers,
        members: @escaping @Sendable () async -> [NodeStatus], partitionCount: @escaping @Sendable () -> Int, logger: Logger
    ) {
        self.partitionCount = partitionCount
        self.configuration = configuration
        self.local = local
        self.members = members
        self.logger = logger
    }

    private var nowMs: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    /// The owner map. When older than `ownersRefreshMs` it is listed again from membership
    /// in the background (one listing at a time); only the first call waits for a listing, so
    /// a slow store never holds up a refresh.
    private func ownerMap() async -> (map: [Int32: (node: String, address: String)], known: Set<Int32>) {
        let refreshMs = max(UInt64(configuration.node.heartbeat.wholeMilliseconds), 5000)
        let current = owners.withLock { $0 }
        if let o = current, o.atMs + refreshMs > nowMs { return (o.map, o.known) }
        let task = refreshing.withLock { t -> Task<Void, Never> in
            if let t { return t }
            let n = Task {
                let listed = await self.members()
                var claims: [Int32: [(String, String)]] = [:]
                for m in listed { for p in m.partitions { claims[p.partition, default: []].append((m.nodeID, m.queryAddress)) } }
                var map: [Int32: (node: String, address: String)] = [:]
                for (p, c) in claims where c.count == 1 { map[p] = (c[0].0, c[0].1) }
                let known = Set(claims.keys)
                self.owners.withLock { $0 = (map, known, self.nowMs) }
                self.refreshing.withLock { $0 = nil }
            }
            t = n
            return n
        }
        if let o = current { return (o.map, o.known) }
        await task.value
        let o = owners.withLock { $0 }
        return (o?.map ?? [:], o?.known ?? [])
    }

    /// Every partition's open buckets that an owner answered for, and every partition known
    /// to exist (membership), for `request`.
    func ask(_ request: OpenBucketRequest) async -> LiveAnswer {
        let timeout = configuration.query.peerTimeout
        let (map, known) = await ownerMap()
        let me = configuration.node.id
        var byNode: [String: (address: String, partitions: Set<Int32>)] = [:]
        for (p, o) in map where o.node != me { byNode[o.node, default: (o.address, [])].partitions.insert(p) }
        let limits = limits
        let mine = local
        async let localAnswers = mine(request, limits, timeout)
        var remote: [Int32: OpenBucketPart] = [:]
        await withTaskGroup(of: [OpenBucketPart].self) { group in
            for (_, target) in byNode {
                group.addTask {
                    let parts = await self.call(target.address, request, timeout: timeout)
                    return parts.filter { target.partitions.contains($0.partition) }
                }
            }
            for await parts in group { for p in parts where remote[p.partition] == nil { remote[p.partition] = p } }
        }
        var parts: [Int32: OpenBucketPart] = [:]
        var owned = known
        for (p, r) in await localAnswers {
            owned.insert(p)
            if case .success(let part) = r { parts[p] = part }
        }
        for (p, part) in remote where parts[p] == nil { parts[p] = part }
        return LiveAnswer(parts: parts, known: owned, partitionCount: partitionCount())
    }

    /// One OpenBuckets call to `address`; nothing when it fails (its partitions come from the store).
    private func call(_ address: String, _ request: OpenBucketRequest, timeout: Duration) async -> [OpenBucketPart] {
        peerCalls.add(1, ordering: .relaxed)
        do {
            let client = try await client(for: address, timeout: timeout)
            let bytes = try await client.unary(.openBuckets, request: OpenBucketsCall.encode(request), timeout: timeout)
            return try OpenBucketsCall.decodeAnswer(bytes)
        } catch {
            peerFailures.add(1, ordering: .relaxed)
            if let c = clients.withLock({ $0.removeValue(forKey: address) }) { Task { await c.close() } }
            logger.debug("live tier: \(address) did not answer: \(error)")
            return []
        }
    }

    private func client(for address: String, timeout: Duration) async throws -> SpateClient {
        if let c = clients.withLock({ $0[address] }) { return c }
        let q = configuration.query
        let c = try await SpateClient.connect(
            try ClientConfiguration(address: address, token: q.token, tls: q.tlsCertificateFile != nil, caFile: q.peerCAFile, connectTimeout: timeout))
        let (kept, evicted) = clients.withLock { pool -> (SpateClient, SpateClient?) in
            if let other = pool[address] { return (other, nil) }
            // One connection per peer address, at most 1024 (far more nodes than a cluster has).
            var evicted: SpateClient?
            if pool.count >= 1024, let k = pool.keys.first { evicted = pool.removeValue(forKey: k) }
            pool[address] = c
            return (c, evicted)
        }
        if let evicted { await evicted.close() }
        if kept !== c { await c.close() }
        return kept
    }

    /// Closes the pooled connections.
    func close() async {
        for c in clients.withLock({ pool in defer { pool.removeAll() }; return Array(pool.values) }) { await c.close() }
    }
}
