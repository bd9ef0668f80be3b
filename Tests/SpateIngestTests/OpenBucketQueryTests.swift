import SpateCodec
import SpateIngest
import SpateModel
import SpateTestSupport
import Testing

/// The live tier's answer from a partition's memory must be what the store would hold for
/// the same buckets once they are flushed: the same sums per group, per slot.
@Suite("Open buckets answered from memory")
struct OpenBucketQueryTests {
    static let view = ViewDefinition(
        name: "app_1m", bucketMs: 60_000, dimensions: [.application, .applicationCategory, .l4Protocol, .probe], sketches: [.subscribers, .rtt])
    static let base: UInt64 = 1_800_000_000_000 - 1_800_000_000_000 % 300_000

    /// A rollup holding `messages` messages of random records over four minutes.
    static func rollup(messages: Int, seed: UInt64) throws -> PartitionRollup {
        let encoder = RecordBatchEncoder()
        let decoder = RecordBatchDecoder()
        let rollup = PartitionRollup(partition: 5, views: [view], latenessMs: 600_000, interner: StringInterner(), resume: .beginning())
        var rng = SplitMix64(seed: seed)
        for m in 0..<messages {
            var records = SampleRecords.make(count: 20, seed: rng.next(), probeID: 3)
            for i in records.indices {
                let t = base + rng.next() % 240_000
                records[i].endTimeMs = t
                records[i].startTimeMs = t
            }
            let bytes = encoder.encode(RecordBatch(probeID: 3, sequence: UInt64(m), createdMs: 1, records: records))
            _ = try bytes.withUnsafeBytes { raw in try decoder.withBatch(raw) { try rollup.fold(offset: Int64(m), batch: $0) } }
        }
        return rollup
    }

    @Test("sums per slot and group equal the documents a flush writes, with filters and a lower bound", arguments: [1, 2, 3] as [UInt64])
    func equalsFlushedDocuments(seed: UInt64) throws {
        let rollup = try Self.rollup(messages: 40, seed: seed)
        let excluded = "youtube"
        let request = OpenBucketRequest(
            view: "app_1m", startMs: Self.base, endMs: Self.base + 300_000, stepMs: 120_000,
            filters: [QueryFilter(dimension: .application, op: .notEq, values: [excluded])], grouped: .application, sketch: .subscribers,
            fromMs: [5: Self.base + 60_000])
        let part = try rollup.answerOpen(request, limits: OpenBucketLimits())
        #expect(part.partition == 5)
        // The oldest bucket held, or the watermark's bucket if that is older (here it is: the
        // lateness is 10 minutes).
        #expect(part.heldFromMs == min(Self.base, rollup.watermark / 60_000 * 60_000))
        #expect(part.heldFromMs < Self.base)
        var sink = CollectingSink()
        _ = rollup.flush(due: { _ in true }, into: &sink)
        // What the store would answer: documents from the lower bound on, without the excluded value, per slot and application.
        var expected: [UInt64: [String: MetricTotals]] = [:]
        for d in sink.documents where d.bucketStart >= Self.base + 60_000 && d.dimensionValues[0] != excluded {
            let slot = d.bucketStart / 120_000 * 120_000
            var t = expected[slot]?[d.dimensionValues[0]] ?? MetricTotals()
            t.records += d.records
            t.flows += d.flows
            t.bytesUp += d.bytesUp
            t.bytesDown += d.bytesDown
            t.packetsUp += d.packetsUp
            t.packetsDown += d.packetsDown
            t.rttCount += d.rttCount
            t.rttSumMicros += d.rttSum
            expected[slot, default: [:]][d.dimensionValues[0]] = t
        }
        #expect(!expected.isEmpty)
        #expect(part.slots.mapValues(\.groups) == expected)
        #expect(part.slots.values.allSatisfy { $0.subscribers != nil })
        #expect(part.slots.values.allSatisfy { $0.groups[excluded] == nil })
    }

    /// Folds one message of `times.count` records at those event times at `offset`.
    static func fold(_ rollup: PartitionRollup, offset: Int64, times: [UInt64], seed: UInt64) throws {
        var records = SampleRecords.make(count: times.count, seed: seed, probeID: 3)
        for i in records.indices {
            records[i].endTimeMs = times[i]
            records[i].startTimeMs = times[i]
        }
        let bytes = RecordBatchEncoder().encode(RecordBatch(probeID: 3, sequence: UInt64(offset), createdMs: 1, records: records))
        _ = try bytes.withUnsafeBytes { raw in try RecordBatchDecoder().withBatch(raw) { try rollup.fold(offset: offset, batch: $0) } }
    }

    static func whole(_ fromMs: [Int32: UInt64] = [:]) -> OpenBucketRequest {
        OpenBucketRequest(
            view: "app_1m", startMs: base, endMs: base + 600_000, stepMs: 60_000, filters: [], grouped: .application, sketch: nil, fromMs: fromMs)
    }

    @Test("closed buckets kept after their final flush are answered as before it, until they expire, oldest first")
    func keptAfterFlush() throws {
        let rollup = try Self.rollup(messages: 30, seed: 4)
        rollup.keepsReleased = true
        // Every bucket closes; memory answers them while they wait for their flush.
        rollup.advance(offset: 30, eventTimeMs: Self.base + 1_200_000)
        let closing = try rollup.answerOpen(Self.whole(), limits: OpenBucketLimits())
        #expect(closing.slots.count == 4)
        #expect(closing.heldFromMs == Self.base)
        var sink = CollectingSink()
        _ = rollup.flush(due: { _ in true }, into: &sink)
        #expect(!sink.documents.isEmpty)
        // Flushed and kept: the same answer, from the same oldest bucket; also after the
        // interner is compacted (the kept cells' strings stay).
        #expect(try rollup.answerOpen(Self.whole(), limits: OpenBucketLimits()) == closing)
        rollup.compactInterner()
        #expect(try rollup.answerOpen(Self.whole(), limits: OpenBucketLimits()) == closing)
        // The first expiry call stamps them; they go `keepMs` later.
        rollup.expireReleased(nowMs: 1_000, keepMs: 60_000, maxCells: .max)
        rollup.expireReleased(nowMs: 60_999, keepMs: 60_000, maxCells: .max)
        #expect(try rollup.answerOpen(Self.whole(), limits: OpenBucketLimits()) == closing)
        // Over the cell cap, the oldest go first; what stays is every bucket from the new
        // oldest on.
        let lastCells = rollup.releasedCells - 1
        rollup.expireReleased(nowMs: 60_999, keepMs: 60_000, maxCells: lastCells)
        let capped = try rollup.answerOpen(Self.whole(), limits: OpenBucketLimits())
        #expect(capped.heldFromMs == Self.base + 60_000)
        #expect(capped.slots == closing.slots.filter { $0.key >= Self.base + 60_000 })
        rollup.expireReleased(nowMs: 61_000, keepMs: 60_000, maxCells: .max)
        #expect(rollup.releasedCells == 0)
        let expired = try rollup.answerOpen(Self.whole(), limits: OpenBucketLimits())
        #expect(expired.slots.isEmpty)
        #expect(expired.heldFromMs == (Self.base + 1_200_000 - 600_000) / 60_000 * 60_000, "nothing held: the watermark's bucket")
    }

    @Test("without keeping, a flushed bucket leaves memory at once; kept buckets change no snapshot and no document")
    func notKept() throws {
        let rollup = try Self.rollup(messages: 10, seed: 5)
        let keeping = try Self.rollup(messages: 10, seed: 5)
        keeping.keepsReleased = true
        // Two buckets close; two stay open.
        for r in [rollup, keeping] { r.advance(offset: 10, eventTimeMs: Self.base + 720_000) }
        var sink = CollectingSink()
        _ = rollup.flush(due: { _ in true }, into: &sink)
        var keptSink = CollectingSink()
        _ = keeping.flush(due: { _ in true }, into: &keptSink)
        #expect(try rollup.answerOpen(Self.whole(), limits: OpenBucketLimits()).slots.count == 2)
        #expect(try keeping.answerOpen(Self.whole(), limits: OpenBucketLimits()).slots.count == 4)
        #expect(rollup.releasedCells == 0)
        #expect(keeping.releasedCells > 0)
        #expect(keptSink.documents.count == sink.documents.count)
        #expect(keeping.snapshot() == rollup.snapshot())
        // Nothing kept is written again.
        var again = CollectingSink()
        _ = keeping.flush(due: { _ in true }, into: &again)
        #expect(again.documents.allSatisfy { $0.bucketStart >= Self.base + 120_000 })
    }

    @Test("a kept bucket never expires before an older bucket still waiting for its flush")
    func neverPastClosing() throws {
        let rollup = PartitionRollup(partition: 5, views: [Self.view], latenessMs: 600_000, interner: StringInterner(), resume: .beginning())
        rollup.keepsReleased = true
        try Self.fold(rollup, offset: 0, times: [Self.base + 1_000, Self.base + 61_000], seed: 1)
        var sink = CollectingSink()
        _ = rollup.flush(due: { _ in true }, into: &sink)
        // Only the older bucket changes after the periodic flush; both then close: the newer,
        // clean, is kept at once, the older waits for its final flush.
        try Self.fold(rollup, offset: 1, times: [Self.base + 2_000], seed: 2)
        rollup.advance(offset: 2, eventTimeMs: Self.base + 1_200_000)
        rollup.expireReleased(nowMs: 10, keepMs: 0, maxCells: 0)
        let waiting = try rollup.answerOpen(Self.whole(), limits: OpenBucketLimits())
        #expect(waiting.heldFromMs == Self.base)
        #expect(Set(waiting.slots.keys) == [Self.base, Self.base + 60_000], "the newer kept bucket stays while the older one closes")
        _ = rollup.flush(due: { _ in true }, into: &sink)
        rollup.expireReleased(nowMs: 20, keepMs: 0, maxCells: 0)
        #expect(rollup.releasedCells == 0)
        #expect(try rollup.answerOpen(Self.whole(), limits: OpenBucketLimits()).slots.isEmpty)
    }

    @Test("a partition still replaying below its horizon declines; a grouping the view lacks declines; limits decline")
    func declines() throws {
        let rollup = PartitionRollup(
            partition: 1, views: [Self.view], latenessMs: 60_000, interner: StringInterner(),
            resume: ResumeState(offset: 0, maxEventTs: 0, horizonOffset: 10, horizonMaxEventTs: Self.base))
        let request = OpenBucketRequest(view: "app_1m", startMs: Self.base, endMs: Self.base + 60_000, stepMs: 60_000, filters: [], grouped: nil, sketch: nil, fromMs: [:])
        #expect(throws: OpenBucketRefusal.replaying) { try rollup.answerOpen(request, limits: OpenBucketLimits()) }
        let caughtUp = try Self.rollup(messages: 5, seed: 9)
        var bySubscriber = request
        bySubscriber.grouped = .subscriber
        #expect(throws: OpenBucketRefusal.unknownView) { try caughtUp.answerOpen(bySubscriber, limits: OpenBucketLimits()) }
        var wide = request
        wide.endMs = Self.base + 300_000
        #expect(throws: OpenBucketRefusal.tooLarge) { try caughtUp.answerOpen(wide, limits: OpenBucketLimits(maxCells: 1, maxGroups: 10)) }
        var unknown = request
        unknown.view = "nope"
        #expect(throws: OpenBucketRefusal.unknownView) { try caughtUp.answerOpen(unknown, limits: OpenBucketLimits()) }
    }
}
