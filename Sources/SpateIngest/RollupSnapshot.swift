public import SpateModel
import SpateCodec

/// Where a partition's open state was saved: the snapshot written with a checkpoint. Records
/// below `offset` are in it; a new owner restores it and reads on from `offset` instead of
/// replaying every open bucket from its first record.
public struct SnapshotReference: Sendable, Hashable {
    /// The partition's next offset when the snapshot was taken.
    public var offset: Int64
    /// The partition's maximum event time then (restores the watermark).
    public var maxEventTs: UInt64
    /// Which of the partition's two snapshot slots holds it. A flush writes the slot its last
    /// stored checkpoint does not name, so a crash mid-write never damages the snapshot the
    /// stored checkpoint refers to.
    public var slot: Int
    /// Pieces it was stored in, total bytes and their `StableHash`: what the reader checks.
    public var chunks: Int
    public var bytes: Int
    public var hash: UInt64

    /// The hash a reference keeps of a snapshot's bytes; writer and reader both use this one.
    public static func hash(of bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { StableHash.hash($0) } }

    public init(offset: Int64, maxEventTs: UInt64, slot: Int, chunks: Int, bytes: Int, hash: UInt64) {
        self.offset = offset
        self.maxEventTs = maxEventTs
        self.slot = slot
        self.chunks = chunks
        self.bytes = bytes
        self.hash = hash
    }
}

/// Errors restoring a snapshot. The caller falls back to replaying from the checkpoint's
/// resume offset, which is always correct, only slower.
public struct SnapshotError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The binary form of a partition's open buckets: every cell of every open bucket of every
/// view, with its sums, version, dirty flag and sketches, and the strings its keys use.
///
/// Layout (varints unless noted): magic "SPS1"; partition; next offset; max event time; view
/// count, and per view its fingerprint (length-prefixed bytes — a snapshot of other views is
/// refused); string count, and per string its length and UTF-8 bytes (key string ids are
/// indices into this table, 0 the empty string); then per view: bucket count, and per bucket
/// its start, first offset + 1, max event time before its first record, cell count, and per
/// cell the key words, records, flows, bytes up/down, packets up/down, RTT count/sum/min/max,
/// last offset + 1, dirty (0/1), then the HyperLogLog and RTT sketch bytes (length-prefixed)
/// when the view keeps them.
enum RollupSnapshotCodec {
    static let magic: [UInt8] = Array("SPS1".utf8)

    static func fingerprint(_ v: ViewDefinition) -> [UInt8] {
        let sketches = v.sketches.map(\.rawValue).sorted().joined(separator: ",")
        let dims = v.dimensions.map(\.rawValue).joined(separator: ",")
        return Array("\(v.name)|\(v.bucketMs)|\(dims)|\(sketches)|\(v.hllPrecision)|\(v.topK)".utf8)
    }

    static func encode(_ rollup: PartitionRollup) -> [UInt8] {
        var out = magic
        func put(_ v: UInt64) { Varint.append(v, to: &out) }
        func putBytes(_ b: [UInt8]) {
            put(UInt64(b.count))
            out.append(contentsOf: b)
        }
        put(UInt64(UInt32(bitPattern: rollup.partition)))
        put(UInt64(max(0, rollup.nextOffset)))
        put(rollup.maxEventTs)
        put(UInt64(rollup.rollups.count))
        for v in rollup.rollups { putBytes(fingerprint(v.definition)) }
        // The strings the keys use, renumbered densely in first-use order.
        var map: [UInt32: UInt64] = [0: 0]
        var strings: [UInt32] = []
        for v in rollup.rollups {
            v.forEachStringID(includingReleased: false) { id in
                if map[id] == nil {
                    strings.append(id)
                    map[id] = UInt64(strings.count)
                }
            }
        }
        put(UInt64(strings.count))
        for id in strings { rollup.interner.withUTF8(id) { putBytes(Array($0)) } }
        for v in rollup.rollups {
            put(UInt64(v.buckets.count))
            let stringPositions = Set(v.stringPositions)
            for b in v.buckets {
                put(b.start)
                put(UInt64(b.firstOffset + 1))
                put(b.maxEventTsBeforeFirst)
                put(UInt64(b.count))
                let dirty = Set(b.dirtyCells.map(Int.init))
                for i in 0..<b.count {
                    let key = b.key(i)
                    for (k, word) in key.enumerated() {
                        put(stringPositions.contains(k) ? map[UInt32(truncatingIfNeeded: word)] ?? 0 : word)
                    }
                    let c = b.cells[i]
                    for s in [c.records, c.flows, c.bytesUp, c.bytesDown, c.packetsUp, c.packetsDown, c.rttCount, c.rttSum] { put(s) }
                    put(UInt64(c.rttMin))
                    put(UInt64(c.rttMax))
                    put(UInt64(max(-1, c.lastOffset) + 1))
                    out.append(dirty.contains(i) ? 1 : 0)
                    if b.trackSubscribers { putBytes(b.subscriberSketch(i).serialized()) }
                    if b.trackRTT { putBytes(b.rttSketches[i].serialized()) }
                }
            }
        }
        return out
    }

    /// Reads `bytes` into `rollup`, which must be fresh (no buckets). Validates everything:
    /// the bytes come back from the store and are hostile until checked.
    static func decode(_ bytes: [UInt8], into rollup: PartitionRollup, dropEndingBy closedBy: UInt64) throws {
        var r = Varint.Reader(bytes: bytes, position: 0)
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else { throw SnapshotError("not a rollup snapshot") }
        r.position = magic.count
        func next(_ what: String, max limit: UInt64 = .max) throws -> UInt64 {
            guard let v = r.next() else { throw SnapshotError("snapshot ends inside \(what)") }
            guard v <= limit else { throw SnapshotError("snapshot \(what) \(v) is out of range") }
            return v
        }
        func count(_ what: String) throws -> Int {
            // Every counted item takes at least one byte: a count beyond the bytes left is corrupt.
            let n = try next(what)
            guard n <= UInt64(bytes.count - r.position) else { throw SnapshotError("snapshot \(what) \(n) exceeds the bytes left") }
            return Int(n)
        }
        func nextBytes(_ what: String) throws -> [UInt8] {
            let n = try count(what)
            defer { r.position += n }
            return Array(bytes[r.position..<(r.position + n)])
        }
        let partition = try next("partition", max: UInt64(UInt32.max))
        guard Int32(bitPattern: UInt32(partition)) == rollup.partition else {
            throw SnapshotError("snapshot of partition \(Int32(bitPattern: UInt32(partition))), not \(rollup.partition)")
        }
        let nextOffset = Int64(try next("next offset", max: UInt64(Int64.max)))
        let maxEventTs = try next("max event time", max: RecordLimits.maxEventTimeMs)
        guard nextOffset == rollup.nextOffset, maxEventTs == rollup.maxEventTs else {
            throw SnapshotError("snapshot position (\(nextOffset), \(maxEventTs)) is not the checkpoint's (\(rollup.nextOffset), \(rollup.maxEventTs))")
        }
        guard try count("view count") == rollup.rollups.count else { throw SnapshotError("snapshot has other views") }
        for v in rollup.rollups {
            guard try nextBytes("view") == fingerprint(v.definition) else {
                throw SnapshotError("snapshot view differs from the configured \(v.definition.name)")
            }
        }
        let stringCount = try count("string count")
        var ids: [UInt32] = [0]
        ids.reserveCapacity(stringCount + 1)
        for _ in 0..<stringCount {
            let s = try nextBytes("string")
            guard let id = s.withUnsafeBufferPointer({ rollup.interner.intern($0) }) else { throw SnapshotError("snapshot string is not UTF-8") }
            ids.append(id)
        }
        let watermark = rollup.watermark
        for v in rollup.rollups {
            let positions = Set(v.stringPositions)
            let bucketCount = try count("bucket count")
            var starts: Set<UInt64> = []
            var key = [UInt64](repeating: 0, count: v.width)
            for _ in 0..<bucketCount {
                let start = try next("bucket start", max: RecordLimits.maxEventTimeMs)
                guard start % v.bucketMs == 0, starts.insert(start).inserted else { throw SnapshotError("snapshot bucket \(start) of \(v.definition.name) is misaligned or repeated") }
                let first = Int64(try next("first offset", max: UInt64(nextOffset))) - 1
                let maxBefore = try next("max event time", max: maxEventTs)
                let cells = try count("cell count")
                let b = BucketCells(start: start, width: v.bucketMs, keyWidth: v.width, firstOffset: first, maxEventTsBeforeFirst: maxBefore, view: v.definition)
                guard first >= 0, b.end > watermark else { throw SnapshotError("snapshot bucket \(start) of \(v.definition.name) is closed or empty") }
                for i in 0..<cells {
                    for k in 0..<v.width {
                        let word = try next("key")
                        if positions.contains(k) {
                            guard word < UInt64(ids.count) else { throw SnapshotError("snapshot key names string \(word) of \(stringCount)") }
                            key[k] = UInt64(ids[Int(word)])
                        } else {
                            key[k] = word
                        }
                    }
                    let index = key.withUnsafeBufferPointer { kp in b.cellIndex(kp.baseAddress!, hash: ViewRollup.keyHash(start, kp)) }
                    guard index == i else { throw SnapshotError("snapshot bucket \(start) of \(v.definition.name) repeats a key") }
                    var c = RollupCell()
                    c.records = try next("sum", max: CellSum.max)
                    c.flows = try next("sum", max: CellSum.max)
                    c.bytesUp = try next("sum", max: CellSum.max)
                    c.bytesDown = try next("sum", max: CellSum.max)
                    c.packetsUp = try next("sum", max: CellSum.max)
                    c.packetsDown = try next("sum", max: CellSum.max)
                    c.rttCount = try next("sum", max: CellSum.max)
                    c.rttSum = try next("sum", max: CellSum.max)
                    c.rttMin = UInt32(try next("RTT minimum", max: UInt64(UInt32.max)))
                    c.rttMax = UInt32(try next("RTT maximum", max: UInt64(UInt32.max)))
                    c.lastOffset = Int64(try next("last offset", max: UInt64(nextOffset))) - 1
                    guard c.lastOffset >= first else { throw SnapshotError("snapshot cell version \(c.lastOffset) is before its bucket's first offset") }
                    let dirty = try next("dirty flag", max: 1)
                    c.dirty = dirty == 1
                    b.cells[i] = c
                    if c.dirty { b.dirtyCells.append(Int32(i)) }
                    if b.trackSubscribers {
                        guard let h = HyperLogLog(serialized: try nextBytes("subscriber sketch")), h.precision == b.hllPrecision else {
                            throw SnapshotError("snapshot subscriber sketch is malformed")
                        }
                        b.setSubscriberSketch(i, h)
                    }
                    if b.trackRTT {
                        guard let q = QuantileSketch(rttSerialized: try nextBytes("RTT sketch")) else {
                            throw SnapshotError("snapshot RTT sketch is malformed")
                        }
                        b.rttSketches[i] = q
                    }
                }
                // Buckets the horizon's watermark closed are final in the store already.
                if b.end > closedBy { v.buckets.append(b) }
            }
            v.buckets.sort { $0.start < $1.start }
        }
        guard r.position == bytes.count else { throw SnapshotError("snapshot has \(bytes.count - r.position) bytes after its end") }
    }
}

extension PartitionRollup {
    /// The open state as bytes, to be written with the checkpoint. Taken right after `flush`,
    /// which empties the closing list: only open buckets are saved.
    public func snapshot() -> [UInt8] { RollupSnapshotCodec.encode(self) }

    /// A partition restored from `bytes`, the snapshot `resume.snapshot` names; reading goes on
    /// at the snapshot's offset. Buckets the checkpoint's horizon had closed are dropped (the
    /// store holds their final documents), and the replay rules below the horizon apply as
    /// after any resume.
    /// - Throws: `SnapshotError` when the bytes are not that snapshot or not valid.
    public static func restoring(
        partition: Int32, views: [ViewDefinition], latenessMs: UInt64, snapshot bytes: [UInt8], resume: ResumeState
    ) throws -> PartitionRollup {
        guard let ref = resume.snapshot, ref.offset <= resume.horizonOffset, ref.maxEventTs <= resume.horizonMaxEventTs else {
            throw SnapshotError("the checkpoint names no snapshot at or before its horizon")
        }
        guard bytes.count == ref.bytes, SnapshotReference.hash(of: bytes) == ref.hash else {
            throw SnapshotError("snapshot bytes (\(bytes.count)) do not match the checkpoint's (\(ref.bytes), hash)")
        }
        var start = resume
        start.offset = ref.offset
        start.maxEventTs = ref.maxEventTs
        let rollup = PartitionRollup(partition: partition, views: views, latenessMs: latenessMs, resume: start)
        try RollupSnapshotCodec.decode(bytes, into: rollup, dropEndingBy: rollup.horizonWatermark)
        return rollup
    }
}
