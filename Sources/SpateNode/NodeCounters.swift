public import Synchronization

/// The node's ingest counters, shared by workers (which add in batches) and readers (stats
/// log, Status, /metrics). Monotonic except the `pending*` gauges.
public final class NodeCounters: Sendable {
    public let messages = Atomic<UInt64>(0)
    /// Records in decodable messages (folded, late or skipped by a replay).
    public let records = Atomic<UInt64>(0)
    public let recordsFolded = Atomic<UInt64>(0)
    public let recordsLate = Atomic<UInt64>(0)
    public let recordsReplaySkipped = Atomic<UInt64>(0)
    /// Records read again below a resumed partition's checkpoint horizon (folded or skipped).
    public let recordsReplayed = Atomic<UInt64>(0)
    /// Open-bucket snapshots written with checkpoints, their bytes, and partitions restored
    /// from one (or that fell back to a replay because theirs was unusable).
    public let snapshotsWritten = Atomic<UInt64>(0)
    public let snapshotBytes = Atomic<UInt64>(0)
    public let snapshotRestores = Atomic<UInt64>(0)
    public let snapshotFallbacks = Atomic<UInt64>(0)
    public let messagesMalformed = Atomic<UInt64>(0)
    public let deadLetters = Atomic<UInt64>(0)
    public let deadLetterFailures = Atomic<UInt64>(0)
    public let documentsWritten = Atomic<UInt64>(0)
    public let documentsConflicted = Atomic<UInt64>(0)
    public let documentsRejected = Atomic<UInt64>(0)
    public let bulkRequests = Atomic<UInt64>(0)
    public let bulkRetries = Atomic<UInt64>(0)
    public let bulkFailures = Atomic<UInt64>(0)
    public let checkpoints = Atomic<UInt64>(0)
    public let commits = Atomic<UInt64>(0)
    public let pauses = Atomic<UInt64>(0)
    /// Bulk or checkpoint attempts the store refused (auth, write block, 413, unreadable answer).
    public let storeRefusals = Atomic<UInt64>(0)
    /// Dead letters sent again after Kafka did not acknowledge them.
    public let deadLetterRetries = Atomic<UInt64>(0)
    /// Documents and bytes handed to the writer and not yet acknowledged.
    public let pendingDocuments = Atomic<Int>(0)
    public let pendingBytes = Atomic<Int>(0)
    /// Open rollup state, summed over workers.
    public let openStateBytes = Atomic<Int>(0)
    /// The process's resident memory, sampled by the service.
    public let residentBytes = Atomic<Int>(0)

    /// Per-partition progress: next offset, committed resume offset, high watermark.
    private let partitionState = Mutex<[Int32: PartitionProgress]>([:])

    public struct PartitionProgress: Sendable, Hashable {
        public var worker: Int
        public var nextOffset: Int64
        public var committedOffset: Int64?
        public var highWatermark: Int64?
        /// Records not yet folded, when the broker's high watermark is known.
        public var lag: Int64? { highWatermark.map { max(0, $0 - nextOffset) } }
    }

    public init() {}

    func setProgress(_ partition: Int32, _ p: PartitionProgress?) {
        partitionState.withLock { $0[partition] = p }
    }

    /// The partitions this node owns now, with their progress.
    public var progress: [Int32: PartitionProgress] { partitionState.withLock { $0 } }
}

/// The calling process's resident set size in bytes (from /proc/self/statm), or nil.
public func residentMemoryBytes() -> Int? {
    let fd = open("/proc/self/statm", O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 128)
    let n = read(fd, &buffer, buffer.count)
    guard n > 0 else { return nil }
    let fields = buffer[..<n].split(separator: UInt8(ascii: " "))
    guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

#if canImport(Glibc)
import Glibc
#endif
