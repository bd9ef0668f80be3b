public import Foundation
public import SpateElastic
public import SpateSchema
import SpateJSON
public import Synchronization

/// Per partition, the time before which every bucket is final in the store: the watermark at
/// the horizon of the partition's checkpoint (docs/DESIGN.md, "Exactly-once rollups": the
/// checkpoint is written only after the final documents of every bucket ending at or before
/// that watermark were acknowledged, and a later record for such a bucket is late and goes to
/// no view). Read from `<prefix>-checkpoints` in the background, at most once per
/// `readIntervalMs` (5 s), shared by every query.
///
/// A checkpoint is put into force only `settleMs` after this node first saw it: an
/// acknowledged document becomes visible to searches at the store's next refresh (the view
/// templates ask for 1 s), and the checkpoint is in another index, refreshed on its own
/// schedule. Boundaries never move back: a checkpoint read that fails or returns less keeps
/// what is in force, and a partition without a checkpoint has no boundary (nothing of it is
/// final).
public final class ClosedHorizons: Sendable {
    /// The partitions' boundaries in force (ms; a partition that is absent has none).
    public typealias Boundaries = [Int32: UInt64]

    private let client: ElasticClient
    private let naming: IndexNaming
    private let group: String
    private let topic: String
    private let latenessMs: UInt64
    /// How long after first seeing a checkpoint it is put into force.
    public let settleMs: UInt64
    /// The shortest time between two reads of the checkpoints.
    public let readIntervalMs: UInt64
    private let clock: @Sendable () -> UInt64
    private let state = Mutex(State())
    /// Checkpoint reads made (tests, metrics).
    public let reads = Atomic<UInt64>(0)

    private struct State {
        var tracker = HorizonTracker()
        var lastReadMs: UInt64 = 0
        var reading: Task<Void, Never>?
        var hasRead = false
    }

    /// Most checkpoints read at once: partitions of one topic (Kafka allows far fewer in practice).
    static let maxPartitions = 10_000

    /// Boundaries for the checkpoints of `group` on `topic`; `latenessMs` is the cluster's
    /// `ingest.allowed_lateness` (every node of a group must use the same, as replays already
    /// require).
    public init(
        client: ElasticClient, naming: IndexNaming, group: String, topic: String, latenessMs: UInt64, settleMs: UInt64 = 2000,
        readIntervalMs: UInt64 = 5000, clock: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }
    ) {
        self.client = client
        self.naming = naming
        self.group = group
        self.topic = topic
        self.latenessMs = latenessMs
        self.settleMs = settleMs
        self.readIntervalMs = readIntervalMs
        self.clock = clock
    }

    /// The boundaries in force now. When the last read is older than `readIntervalMs` a new
    /// one starts in the background (one at a time); only the very first call waits for it, so
    /// a slow store never holds up a refresh. Never throws: a failed read keeps the boundaries
    /// in force, which only makes queries ask the store for more.
    public func current() async -> Boundaries {
        let now = clock()
        let first: Task<Void, Never>? = state.withLock { s in
            if s.reading == nil, now >= s.lastReadMs + readIntervalMs || s.lastReadMs == 0 {
                s.lastReadMs = now
                s.reading = Task { await self.read() }
            }
            return s.hasRead ? nil : s.reading
        }
        if let first { await first.value }
        let at = clock()
        return state.withLock { $0.tracker.inForce(nowMs: at, settleMs: settleMs) }
    }

    private func read() async {
        defer {
            state.withLock {
                $0.reading = nil
                $0.hasRead = true
            }
        }
        reads.add(1, ordering: .relaxed)
        let body: JSONValue = [
            "size": .number(Self.maxPartitions),
            "_source": ["partition", "resume_offset", "resume_max_event_ts", "horizon_offset", "horizon_max_event_ts"],
            "query": ["bool": ["filter": [["term": ["group": .string(group)]], ["term": ["topic": .string(topic)]]]]],
        ]
        guard let answer = try? await client.searchRaw(index: naming.checkpointIndex, body: body) else { return }
        let now = clock()
        var seen: [(Int32, UInt64)] = []
        for hit in answer["hits"]?["hits"]?.arrayValue ?? [] {
            guard let source = hit["_source"], let p = source["partition"]?.int64Value, (0...Int64(Int32.max)).contains(p),
                let resume = try? CheckpointDocument.resume(from: source)
            else { continue }
            let w = resume.horizonMaxEventTs > latenessMs ? resume.horizonMaxEventTs - latenessMs : 0
            seen.append((Int32(p), w))
        }
        state.withLock { s in for (p, w) in seen { s.tracker.observe(partition: p, boundary: w, nowMs: now) } }
    }
}

/// The bookkeeping of `ClosedHorizons`, I/O-free: per partition the boundary in force and the
/// newer ones waiting to settle (at most `maxPending`; a newer one arriving when full is seen
/// again at the next read, since checkpoints stay in the store).
public struct HorizonTracker: Sendable {
    private var inForce: [Int32: UInt64] = [:]
    private var pending: [Int32: [(boundary: UInt64, seenMs: UInt64)]] = [:]
    static let maxPending = 8

    /// No partition has a boundary.
    public init() {}

    /// A read found `boundary` for `partition` at `nowMs`.
    public mutating func observe(partition: Int32, boundary: UInt64, nowMs: UInt64) {
        let newest = pending[partition]?.last?.boundary ?? inForce[partition] ?? 0
        guard boundary > newest || (inForce[partition] == nil && pending[partition] == nil) else { return }
        guard (pending[partition]?.count ?? 0) < Self.maxPending else { return }
        pending[partition, default: []].append((boundary, nowMs))
    }

    /// The boundaries in force at `nowMs`: every observation at least `settleMs` old counts.
    public mutating func inForce(nowMs: UInt64, settleMs: UInt64) -> [Int32: UInt64] {
        for (p, list) in pending {
            let settled = list.filter { $0.seenMs + settleMs <= nowMs }
            guard let best = settled.map(\.boundary).max() else { continue }
            inForce[p] = max(inForce[p] ?? 0, best)
            let rest = list.filter { $0.seenMs + settleMs > nowMs }
            pending[p] = rest.isEmpty ? nil : rest
        }
        return inForce
    }
}
