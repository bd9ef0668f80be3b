import SpateCodec
import SpateIngest
import SpateSchema
import SpateJSON
import SpateModel
import SpateTestSupport
import Testing

/// What comes back from the store is hostile until checked: sketches and checkpoints decode to
/// values or to errors, never to a trap.
@Suite("Decoding store answers")
struct StoreAnswerTests {
    @Test("HyperLogLog bytes with an overflowing delta, an out-of-range entry or register are refused")
    func hllCorrupt() {
        var sparse: [UInt8] = [1, 14]
        Varint.append(2, to: &sparse)
        Varint.append(UInt64.max - 3, to: &sparse)
        Varint.append(10, to: &sparse)  // previous + 10 overflows UInt64
        #expect(HyperLogLog(serialized: sparse) == nil)

        var bigIndex: [UInt8] = [1, 14]
        Varint.append(1, to: &bigIndex)
        Varint.append(UInt64(1) << 31 | 5, to: &bigIndex)  // index 2^25: beyond precision 25
        #expect(HyperLogLog(serialized: bigIndex) == nil)

        var zeroRho: [UInt8] = [1, 14]
        Varint.append(1, to: &zeroRho)
        Varint.append(7 << 6, to: &zeroRho)  // rho 0 never occurs
        #expect(HyperLogLog(serialized: zeroRho) == nil)

        // Dense, precision 16: a register of 63 is above 64 − 16 + 1.
        var dense: [UInt8] = [2, 16] + [UInt8](repeating: 0, count: (65_536 * 6 + 7) / 8)
        dense[2] = 63
        #expect(HyperLogLog(serialized: dense) == nil)
        dense[2] = 49
        let ok = HyperLogLog(serialized: dense)
        #expect(ok != nil)
        #expect(ok.map { $0.estimate.isFinite } == true)
    }

    @Test("quantile sketch bytes with Int64.min as offset or overflowing counts are refused; merges saturate")
    func quantileCorrupt() {
        var minOffset: [UInt8] = [1, 0, 100]
        Varint.append(0, to: &minOffset)
        Varint.append(UInt64.max, to: &minOffset)  // zigzag of Int64.min
        Varint.append(0, to: &minOffset)
        #expect(QuantileSketch(serialized: minOffset) == nil)

        var overflow: [UInt8] = [1, 0, 100]
        Varint.append(5, to: &overflow)
        Varint.append(20, to: &overflow)
        Varint.append(2, to: &overflow)
        Varint.append(UInt64.max - 2, to: &overflow)
        Varint.append(9, to: &overflow)
        #expect(QuantileSketch(serialized: overflow) == nil)

        var huge: [UInt8] = [1, 0, 100]
        Varint.append(0, to: &huge)
        Varint.append(20, to: &huge)
        Varint.append(1, to: &huge)
        Varint.append(UInt64.max - 1, to: &huge)
        var merged = QuantileSketch(serialized: huge)
        #expect(merged != nil)
        if let other = QuantileSketch(serialized: huge) { merged?.merge(other) }
        #expect(merged?.count == .max)
        #expect(merged?.quantile(0.99) != nil)
    }

    @Test("quantile sketch bytes with buckets no value reaches are refused; adds to counts near 2^64 saturate")
    func quantileBounds() throws {
        func sketch(zero: UInt64, offset: Int64, counts: [UInt64]) -> [UInt8] {
            var b: [UInt8] = [1, 0, 100]
            Varint.append(zero, to: &b)
            Varint.append(UInt64(bitPattern: offset << 1 ^ offset >> 63), to: &b)
            Varint.append(UInt64(counts.count), to: &b)
            for c in counts { Varint.append(c, to: &b) }
            return b
        }
        let limit = QuantileSketch().bucketLimit
        #expect(limit.lowerBound == 0 && limit.upperBound > 30_000 && limit.upperBound < 40_000, "\(limit)")
        // A value ≥ 1 never falls below bucket 0: a sketch starting at −1,048,575 would make
        // the next add pad its counts by 8 MB.
        #expect(QuantileSketch(serialized: sketch(zero: 0, offset: -1_048_575, counts: [1])) == nil)
        #expect(QuantileSketch(serialized: sketch(zero: 0, offset: -1, counts: [1])) == nil)
        #expect(QuantileSketch(serialized: sketch(zero: 0, offset: Int64(limit.upperBound), counts: [1])) != nil)
        #expect(QuantileSketch(serialized: sketch(zero: 0, offset: Int64(limit.upperBound), counts: [1, 1])) == nil)
        #expect(QuantileSketch(serialized: sketch(zero: 0, offset: 0, counts: [1, 2, 3]))?.occupiedBuckets == 0...2)

        // Counts restored at 2^64 − 1 take more adds without trapping.
        var zero = try #require(QuantileSketch(serialized: sketch(zero: .max, offset: 0, counts: [])))
        zero.add(0.5)
        zero.add(7)
        #expect(zero.zeroCount == .max && zero.count == .max)
        let bucket = try #require(QuantileSketch().bucket(of: 100))
        var full = try #require(QuantileSketch(serialized: sketch(zero: 0, offset: Int64(bucket), counts: [.max])))
        full.add(bucket: bucket, times: 5)
        full.add(3) { _ in bucket }
        #expect(full.count == .max)
        #expect(full.quantile(0.5).map { abs($0 - 100) < 2 } == true)
    }

    @Test("an RTT sketch from outside must have the rollup's accuracy and buckets a 32-bit RTT reaches")
    func rttSketches() throws {
        func sketch(accuracy: UInt16, offset: Int64, counts: [UInt64]) -> [UInt8] {
            var b: [UInt8] = [1, UInt8(accuracy >> 8), UInt8(accuracy & 0xFF)]
            Varint.append(0, to: &b)
            Varint.append(UInt64(bitPattern: offset << 1 ^ offset >> 63), to: &b)
            Varint.append(UInt64(counts.count), to: &b)
            for c in counts { Varint.append(c, to: &b) }
            return b
        }
        // Two sketches at accuracy 0.0001, one at bucket 0 and one at the highest bucket that
        // accuracy allows: each parses, and merging them filled 28 MB of zero counts.
        let fine = QuantileSketch(relativeAccuracy: 0.0001)
        let far = Int64(fine.bucketLimit.upperBound)
        let a = sketch(accuracy: 1, offset: 0, counts: [1])
        let b = sketch(accuracy: 1, offset: far, counts: [1])
        var merged = try #require(QuantileSketch(serialized: a))
        merged.merge(try #require(QuantileSketch(serialized: b)))
        #expect(merged.occupiedBuckets == 0...Int(far))
        #expect(QuantileSketch(rttSerialized: a) == nil && QuantileSketch(rttSerialized: b) == nil)
        // The rollup's accuracy, but a bucket above the largest RTT (2^32 − 1 µs).
        let top = QuantileSketch.maxRTTBucket
        #expect(top > 1_000 && top < 1_200, "\(top)")
        #expect(QuantileSketch(rttSerialized: sketch(accuracy: 100, offset: Int64(top) + 1, counts: [1])) == nil)
        #expect(QuantileSketch(rttSerialized: sketch(accuracy: 100, offset: Int64(top), counts: [1])) != nil)
        // Only a zero count, far above: nothing occupied, yet the next merge grew to cover it.
        #expect(QuantileSketch(rttSerialized: sketch(accuracy: 100, offset: 35_000, counts: [0])) == nil)
        #expect(QuantileSketch(rttSerialized: sketch(accuracy: 100, offset: 0, counts: [1] + Array(repeating: 0, count: top + 1))) == nil)
        // What the rollup writes reads back whole.
        var rtt = QuantileSketch(relativeAccuracy: QuantileSketch.rttAccuracy)
        for v in [0.0, 1, 250, 4_000, Double(UInt32.max)] { rtt.add(v) }
        let back = try #require(QuantileSketch(rttSerialized: rtt.serialized()))
        #expect(back.count == 5 && back.zeroCount == 1 && back.occupiedBuckets == rtt.occupiedBuckets)
        #expect([0.25, 0.5, 1].map { back.quantile($0) } == [0.25, 0.5, 1].map { rtt.quantile($0) })
    }

    @Test("a checkpoint with negative or inconsistent fields is an error")
    func checkpoints() throws {
        let good = ResumeState(offset: 10, maxEventTs: 1_700_000_000_000, horizonOffset: 20, horizonMaxEventTs: 1_700_000_060_000)
        let source = CheckpointDocument.source(group: "g", topic: "t", partition: 3, resume: good, node: "n", writtenAtMs: 1)
        #expect(try CheckpointDocument.resume(from: source) == good)
        let last = ResumeState(offset: .max - 1, maxEventTs: 1, horizonOffset: .max - 1, horizonMaxEventTs: 1)
        #expect(try CheckpointDocument.resume(from: CheckpointDocument.source(group: "g", topic: "t", partition: 3, resume: last, node: "n", writtenAtMs: 1)) == last)
        func with(_ key: String, _ value: JSONValue) -> JSONValue {
            guard case .object(var o) = source else { return source }
            o[key] = value
            return .object(o)
        }
        for (key, value) in [
            ("resume_max_event_ts", JSONValue.integer(-1)), ("resume_offset", .integer(-5)), ("horizon_offset", .integer(3)),
            ("horizon_max_event_ts", .double(1e30)), ("resume_offset", .string("x")), ("horizon_max_event_ts", .null),
            // The checkpoint's version is its horizon + 1: the largest Int64 trapped the writer.
            ("horizon_offset", .integer(.max)),
        ] {
            #expect(throws: CheckpointDocument.DecodingError.self, "\(key) = \(value)") {
                _ = try CheckpointDocument.resume(from: with(key, value))
            }
        }
    }
}

/// Rollup arithmetic and memory at the edges of what the boundary admits.
@Suite("Rollup edges")
struct RollupEdgeTests {
    static let view = ViewDefinition(name: "app_1m", bucketMs: 60_000, dimensions: [.application], sketches: [], flushIntervalMs: 1000)
    static let subscribers = ViewDefinition(name: "sub_1m", bucketMs: 60_000, dimensions: [.subscriber], sketches: [], flushIntervalMs: 1000)

    struct Collect: RollupDocumentSink {
        var documents: [(values: [String], records: UInt64, bytesUp: UInt64, bytesDown: UInt64)] = []
        mutating func add(_ d: RollupDocument) { documents.append((d.dimensionValues, d.records, d.bytesUp, d.bytesDown)) }
    }

    static func fold(_ rollup: PartitionRollup, _ records: [FlowRecord], offset: Int64) throws {
        let bytes = RecordBatchEncoder().encode(RecordBatch(probeID: 1, sequence: UInt64(offset), createdMs: 5, records: records))
        _ = try bytes.withUnsafeBytes { raw in try RecordBatchDecoder().withBatch(raw) { try rollup.fold(offset: offset, batch: $0) } }
    }

    @Test("a cell fed the largest counters stops at the store's long limit instead of wrapping")
    func saturation() throws {
        let rollup = PartitionRollup(partition: 0, views: [Self.view], latenessMs: 0, resume: .beginning())
        var r = SampleRecords.make(count: 2)[1]
        r.endTimeMs = 1_795_000_000_000
        r.application = "x"
        r.bytesUp = RecordLimits.maxBytes
        r.bytesDown = 1
        let batch = [FlowRecord](repeating: r, count: 4096)
        for offset in 0..<33 { try Self.fold(rollup, batch, offset: Int64(offset)) }  // 135,168 × 2^46 > 2^63
        var sink = Collect()
        _ = rollup.flush(due: { _ in true }, into: &sink)
        #expect(sink.documents.count == 1)
        #expect(sink.documents.first?.bytesUp == UInt64(Int64.max))
        #expect(sink.documents.first?.bytesDown == 135_168)
        #expect(sink.documents.first?.records == 135_168)
    }

    @Test("the interner forgets the strings of closed buckets; open cells keep their values")
    func internerCompaction() throws {
        let rollup = PartitionRollup(partition: 0, views: [Self.subscribers, Self.view], latenessMs: 0, resume: .beginning())
        var base = SampleRecords.make(count: 2)[1]
        base.application = "app"
        var t: UInt64 = 1_795_000_000_000 - 1_795_000_000_000 % 60_000
        var offset: Int64 = 0
        var peak = 0
        // 40 minutes of 5,000 new subscribers each: 200,000 distinct strings over the run.
        for minute in 0..<40 {
            var batch: [FlowRecord] = []
            for i in 0..<5000 {
                var r = base
                r.endTimeMs = t + UInt64(i)
                r.subscriberID = "m\(minute)-s\(i)"
                batch.append(r)
            }
            try Self.fold(rollup, batch, offset: offset)
            offset += 1
            var sink = Collect()
            _ = rollup.flush(due: { _ in true }, into: &sink)
            peak = max(peak, rollup.internedStrings)
            t += 60_000
        }
        #expect(peak < 3 * PartitionRollup.minimumCompaction, "the interner grew to \(peak) strings")
        // The last, still open minute renders its subscribers correctly after compactions.
        rollup.compactInterner()
        var sink = Collect()
        _ = rollup.flush(due: { _ in true }, into: &sink)
        #expect(rollup.internedStrings <= 5003)
        var again = base
        again.endTimeMs = t - 60_000 + 4999
        again.subscriberID = "m39-s7"
        try Self.fold(rollup, [again], offset: offset)
        var after = Collect()
        _ = rollup.flush(due: { _ in true }, into: &after)
        let s7 = after.documents.first { $0.values == ["m39-s7"] }
        #expect(s7?.records == 2, "\(after.documents.map(\.values))")
    }

    @Test("an idle marker advances the watermark like a record of its time: top-K buckets close, nothing is folded")
    func idleMarker() throws {
        let top = ViewDefinition(name: "sub_5m", bucketMs: 300_000, dimensions: [.subscriber], sketches: [], flushIntervalMs: 1000, topK: 2)
        let rollup = PartitionRollup(partition: 0, views: [top], latenessMs: 5000, resume: .beginning())
        var r = SampleRecords.make(count: 2)[1]
        let end: UInt64 = 1_795_000_200_000  // a 5-minute boundary
        r.endTimeMs = end - 1000
        r.startTimeMs = r.endTimeMs
        try Self.fold(rollup, [r, r], offset: 0)
        #expect(!rollup.wouldClose(atEventTime: end + 3999))
        #expect(rollup.wouldClose(atEventTime: end + 5000))
        rollup.advance(offset: 1, eventTimeMs: end + 5000)
        #expect(rollup.nextOffset == 2)
        #expect(rollup.hasClosedBuckets)
        var sink = Collect()
        _ = rollup.flush(due: { _ in false }, into: &sink)
        #expect(sink.documents.map(\.records) == [2])
        // A marker older than the partition's clock changes nothing.
        rollup.advance(offset: 2, eventTimeMs: 1)
        #expect(rollup.maxEventTs == end + 5000)
    }
}
