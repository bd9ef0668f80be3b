import Foundation
import Logging
import ServiceLifecycle
import SpateElastic
import SpateIngest
import SpateSchema
import SpateJSON
import SpateModel
import Synchronization

/// Cluster membership through the store every node already shares: each node publishes its
/// state (query address, owned partitions, lag, rates) to `<prefix>-members` every
/// `node.heartbeat`, and a node is live while its document is younger than ten heartbeats
/// (a store busy with bulks may delay a heartbeat by seconds; a live node must not vanish).
/// A node stopping cleanly removes its document; a killed one ages out.
///
/// Why not the Kafka group description: Tansu answers DescribeGroups with empty client ids,
/// hosts and assignments, so the query address carried in `client.id` cannot be read back
/// there (measured with librdkafka's DescribeConsumerGroups, docs/DESIGN.md).
final class Membership: Service, Sendable {
    private let configuration: NodeConfiguration
    private let client: ElasticClient
    private let naming: IndexNaming
    private let local: @Sendable () -> NodeStatus
    private let logger: Logger
    /// The last listing the store gave, for when it does not answer in time.
    private let lastListing = Mutex<[(state: NodeStatus, updatedMs: Int64)]>([])

    init(configuration: NodeConfiguration, client: ElasticClient, local: @escaping @Sendable () -> NodeStatus, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.naming = IndexNaming(prefix: configuration.elasticsearch.indexPrefix)
        self.local = local
        self.logger = logger
    }

    private var heartbeat: Duration { configuration.node.heartbeat }
    private var livenessMs: Int64 { 10 * heartbeat.wholeMilliseconds }

    func run() async throws {
        var failing = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // At most one heartbeat per call: a slow store must not hold up shutdown.
            let state = local()
            let published = await awaitAtMost(heartbeat * 2) { try await self.publish(state) } != nil
            if published && failing { logger.info("membership: publishing again") }
            if !published && !failing { logger.warning("membership: cannot publish this node's state (the store is slow or away)") }
            failing = !published
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.heartbeat) }
        }
        let (client, index, id) = (client, naming.memberIndex, configuration.node.id)
        if await awaitAtMost(.seconds(3), { try await client.deleteDocument(index: index, id: id) }) == nil {
            logger.warning("membership: could not remove this node's entry; it ages out in \(livenessMs) ms")
        }
    }

    func publish(_ state: NodeStatus) async throws {
        let text = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        var doc = JSONObject()
        doc["node"] = .string(state.nodeID)
        doc["updated_at"] = .integer(Self.nowMs())
        doc["state"] = .string(text)
        try await client.putDocument(index: naming.memberIndex, id: state.nodeID, source: .object(doc))
    }

    /// Every live node, as last published. Waits for the store at most 2 s, then answers
    /// from the last listing it gave (still filtered by age).
    func members() async -> [NodeStatus] {
        let (client, index, livenessMs) = (client, naming.memberIndex, livenessMs)
        let fresh = await awaitAtMost(.seconds(2)) { () async throws -> [(state: NodeStatus, updatedMs: Int64)] in
            let body: JSONValue = ["size": 1000, "query": ["range": ["updated_at": ["gte": .integer(Self.nowMs() - livenessMs)]]]]
            let answer = try await client.searchRaw(index: index, body: body)
            var out: [(state: NodeStatus, updatedMs: Int64)] = []
            for hit in answer["hits"]?["hits"]?.arrayValue ?? [] {
                guard let text = hit["_source"]?["state"]?.stringValue,
                    let state = try? JSONDecoder().decode(NodeStatus.self, from: Data(text.utf8))
                else { continue }
                out.append((state, hit["_source"]?["updated_at"]?.int64Value ?? 0))
            }
            return out
        }
        if let fresh { lastListing.withLock { $0 = fresh } }
        let oldest = Self.nowMs() - livenessMs
        return (fresh ?? lastListing.withLock { $0 }).filter { $0.updatedMs >= oldest }.map(\.state)
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// Runs `operation` and waits for it at most `limit`; nil when it failed or is still running
/// (it then finishes or fails on its own). For store calls made while the node stops: a slow
/// store must not eat the shutdown grace.
func awaitAtMost<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async -> T? {
    await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
        let once = ResumeOnce(continuation)
        Task { once.resume(try? await operation()) }
        Task {
            try? await Task.sleep(for: limit)
            once.resume(nil)
        }
    }
}

/// A continuation resumed by whichever of two tasks comes first.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T?, Never>?>
    init(_ c: CheckedContinuation<T?, Never>) { continuation = Mutex(c) }
    func resume(_ value: T?) { continuation.withLock { c in c.take() }?.resume(returning: value) }
}
