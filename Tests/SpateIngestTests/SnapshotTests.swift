import SpateCodec
import SpateElastic
import SpateIngest
import SpateJSON
import SpateModel
import SpateSchema
import SpateTestSupport
import Testing

/// Open-bucket snapshots: a restored partition continues exactly as the one that wrote the
/// snapshot, and bytes from the store that are not a valid snapshot are an error, not a trap.
@Suite("Open-bucket snapshots")
struct SnapshotTests {
    static let lateness: UInt64 = 120_000

    /// Messages of the default views' shape: 2 minutes of event time per 40 messages.
    static func messages(count: Int, seed: UInt64, from start: UInt64 = 1_790_000_000_000) -> [[UInt8]] {
        let encoder = RecordBatchEncoder()
        var out: [[UInt8]] = []
        for m in 0..<count {
            var records = SampleRecords.make(count: 30, seed: seed &+ UInt64(m))
            for i in records.indices {
                let ts = start + UInt64(m) * 3000 + UInt64(i) * 100
                records[i].endTimeMs = ts
                records[i].startTimeMs = ts - 10
            }
            out.append(encoder.encode(RecordBatch(probeID: 7, sequence: UInt64(m), createdMs: start, records: records)))
        }
        return out
    }

    static func fold(_ rollup: PartitionRollup, _ messages: [[UInt8]], from first: Int) throws {
        let decoder = RecordBatchDecoder()
        for (k, m) in messages.enumerated() {
            try m.withUnsafeBytes { raw in try decoder.withBatch(raw) { _ = try rollup.fold(offset: Int64(first + k), batch: $0) } }
        }
    }

    /// Every document of a final flush, rendered comparably (sketches as their bytes).
    static func finalDocuments(_ rollup: PartitionRollup) -> [String] {
        struct Sink: RollupDocumentSink {
            var lines: [String] = []
            mutating func add(_ d: RollupDocument) {
                let sums = [d.records, d.flows, d.bytesUp, d.bytesDown, d.packetsUp, d.packetsDown, d.rttCount, d.rttSum]
                lines.append(
                    "\(d.view.name) \(d.bucketStart) \(d.dimensionValues) \(sums) \(d.rttMin) \(d.rttMax) v\(d.lastOffset) "
                        + "\(d.subscribers?.serialized() ?? []) \(d.rtt?.serialized() ?? [])")
            }
        }
        var sink = Sink()
        _ = rollup.flush(due: { _ in true }, into: &sink)
        return sink.lines.sorted()
    }

    /// Folds `before` messages, flushes some views, snapshots; returns the writer, the bytes
    /// and the checkpoint naming them.
    static func snapshotAfter(_ before: [[UInt8]], views: [ViewDefinition]) throws -> (PartitionRollup, [UInt8], ResumeState) {
        let writer = PartitionRollup(partition: 4, views: views, latenessMs: lateness, resume: .beginning())
        try fold(writer, before, from: 0)
        var ignore = CollectingSink()
        var resume = writer.flush(due: { $0 % 2 == 0 }, into: &ignore)
        let bytes = writer.snapshot()
        resume.snapshot = SnapshotReference(
            offset: writer.nextOffset, maxEventTs: writer.maxEventTs, slot: 0, chunks: 1, bytes: bytes.count,
            hash: SnapshotReference.hash(of: bytes))
        return (writer, bytes, resume)
    }

    @Test("a restored partition writes exactly the documents the original writes, and snapshots the same bytes")
    func restoreContinuesExactly() throws {
        let all = Self.messages(count: 120, seed: 11)
        let (writer, bytes, resume) = try Self.snapshotAfter(Array(all[..<70]), views: ViewDefinition.defaults)
        #expect(resume.readOffset == 70 && resume.offset < 70, "the snapshot is after the oldest open bucket's first record")
        let restored = try PartitionRollup.restoring(
            partition: 4, views: ViewDefinition.defaults, latenessMs: Self.lateness, snapshot: bytes, resume: resume)
        #expect(restored.nextOffset == 70)
        #expect(restored.openCells == writer.openCells && restored.openCells > 0)
        #expect(restored.snapshot() == bytes)
        try Self.fold(writer, Array(all[70...]), from: 70)
        try Self.fold(restored, Array(all[70...]), from: 70)
        let expected = Self.finalDocuments(writer)
        #expect(!expected.isEmpty)
        #expect(Self.finalDocuments(restored) == expected)
    }

    @Test("buckets the checkpoint's horizon closed are dropped on restore: the store holds their final documents")
    func closedByHorizonDropped() throws {
        let all = Self.messages(count: 60, seed: 5)
        let views = [PartitionRollupTests.view1m]
        var (_, bytes, resume) = try Self.snapshotAfter(Array(all[..<30]), views: views)
        // A later checkpoint whose horizon is 10 minutes on: every snapshot bucket has closed.
        resume.horizonOffset = 200
        resume.horizonMaxEventTs = (resume.snapshot?.maxEventTs ?? 0) + 600_000
        let restored = try PartitionRollup.restoring(partition: 4, views: views, latenessMs: Self.lateness, snapshot: bytes, resume: resume)
        #expect(restored.openCells == 0)
        #expect(restored.nextOffset == 30)
    }

    @Test("truncated, altered or foreign snapshot bytes are refused with an error")
    func hostileBytes() throws {
        let views = ViewDefinition.defaults
        let (_, bytes, resume) = try Self.snapshotAfter(Self.messages(count: 20, seed: 3), views: views)
        func restore(_ b: [UInt8], views: [ViewDefinition] = ViewDefinition.defaults, partition: Int32 = 4) throws {
            var r = resume
            r.snapshot?.bytes = b.count
            r.snapshot?.hash = SnapshotReference.hash(of: b)
            _ = try PartitionRollup.restoring(partition: partition, views: views, latenessMs: Self.lateness, snapshot: b, resume: r)
        }
        try restore(bytes)
        for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 300)) {
            #expect(throws: SnapshotError.self, "cut at \(cut)") { try restore(Array(bytes[..<cut])) }
        }
        #expect(throws: SnapshotError.self) { try restore(bytes + [0]) }
        #expect(throws: SnapshotError.self) { try restore(bytes, partition: 5) }
        var other = views
        other[0].bucketMs = 120_000
        #expect(throws: SnapshotError.self) { try restore(bytes, views: other) }
        // The checkpoint's hash guards the bytes as stored.
        var flipped = bytes
        flipped[flipped.count / 2] ^= 0x40
        #expect(throws: SnapshotError.self) {
            _ = try PartitionRollup.restoring(partition: 4, views: views, latenessMs: Self.lateness, snapshot: flipped, resume: resume)
        }
        // Past the hash (a forged reference), every altered byte decodes or is refused — no trap.
        var rng = SplitMix64(seed: 99)
        var refused = 0
        for _ in 0..<2000 {
            var b = bytes
            b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next())
            do { try restore(b) } catch { refused += 1 }
        }
        #expect(refused > 0)
    }

    @Test("snapshot pieces reassemble; a piece of another snapshot is refused")
    func pieces() throws {
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var body = BulkBody()
        let ref = SnapshotDocument.append(
            bytes, to: &body, index: "x-snapshots", group: "g", topic: "t", partition: 2, offset: 77, maxEventTs: 5, slot: 1,
            chunkBytes: 3000)
        #expect(ref.chunks == 4 && body.count == 4 && ref.bytes == bytes.count)
        var joined: [UInt8] = []
        for k in 0..<ref.chunks {
            let source = try JSONParser.parse(Array(body.itemSource(k)))
            joined += try SnapshotDocument.piece(from: source, reference: ref, partition: 2, chunk: k)
        }
        #expect(joined == bytes)
        var newer = ref
        newer.offset = 78
        let source = try JSONParser.parse(Array(body.itemSource(0)))
        #expect(throws: SnapshotError.self) { try SnapshotDocument.piece(from: source, reference: newer, partition: 2, chunk: 0) }
        #expect(throws: SnapshotError.self) { try SnapshotDocument.piece(from: source, reference: ref, partition: 2, chunk: 1) }
        #expect(SnapshotDocument.chunkBytes(bulkMaxBytes: 10_000) * 4 / 3 < 5_000)
    }

    @Test("a checkpoint keeps its snapshot reference; an out-of-range one is an error")
    func checkpointReference() throws {
        var good = ResumeState(offset: 10, maxEventTs: 1_700_000_000_000, horizonOffset: 20, horizonMaxEventTs: 1_700_000_060_000)
        good.snapshot = SnapshotReference(offset: 18, maxEventTs: 1_700_000_050_000, slot: 1, chunks: 3, bytes: 2_500_000, hash: .max - 5)
        let source = CheckpointDocument.source(group: "g", topic: "t", partition: 3, resume: good, node: "n", writtenAtMs: 1)
        #expect(try CheckpointDocument.resume(from: source) == good)
        #expect(good.readOffset == 18)
        guard case .object(let o) = source else { return }
        for (key, value) in [
            ("snapshot_offset", JSONValue.integer(21)), ("snapshot_slot", .integer(2)), ("snapshot_chunks", .integer(0)),
            ("snapshot_chunks", .integer(1 << 40)), ("snapshot_hash", .string("zz")), ("snapshot_bytes", .integer(-1)),
        ] {
            var bad = o
            bad[key] = value
            #expect(throws: CheckpointDocument.DecodingError.self, "\(key) = \(value)") { _ = try CheckpointDocument.resume(from: .object(bad)) }
        }
        // A snapshot at or before the replay offset is not worth restoring.
        var old = good
        old.snapshot?.offset = 10
        #expect(old.usableSnapshot == nil && old.readOffset == 10)
    }
}
