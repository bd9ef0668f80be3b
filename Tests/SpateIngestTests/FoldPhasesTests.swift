import SpateCodec
import SpateIngest
import SpateModel
import SpateTestSupport
import Testing

/// The fold works a message in phases (cells found first, then records applied cell by cell,
/// in passes of a bounded number of records). Whatever the order of the work, the documents must
/// be those of adding the records one by one: sums, RTT statistics, versions and the sketches'
/// bytes.
@Suite("PartitionRollup: a message folded in phases equals record-by-record arithmetic")
struct FoldPhasesTests {
    static let plain = ViewDefinition(name: "sub_1m", bucketMs: 60_000, dimensions: [.subscriber, .application], flushIntervalMs: 1000)

    struct Expected {
        var records: UInt64 = 0, flows: UInt64 = 0, bytesUp: UInt64 = 0, bytesDown: UInt64 = 0
        var packetsUp: UInt64 = 0, packetsDown: UInt64 = 0
        var rttCount: UInt64 = 0, rttSum: UInt64 = 0, rttMin: UInt32 = .max, rttMax: UInt32 = 0
        var hll: HyperLogLog
        var rtt = QuantileSketch()
    }

    /// HyperLogLog precision 12 stays sparse here; 4 turns dense after 4 subscribers.
    @Test("3,000 records over three buckets, a cell's records scattered through the message", arguments: [(1, 12), (2, 4), (3, 12)] as [(UInt64, Int)])
    func oneLargeMessage(seed: UInt64, hllPrecision: Int) throws {
        let withSketches = ViewDefinition(
            name: "app_1m", bucketMs: 60_000, dimensions: [.application, .probe], sketches: [.subscribers, .rtt],
            hllPrecision: hllPrecision, flushIntervalMs: 1000)
        var rng = SplitMix64(seed: seed)
        let base: UInt64 = 1_790_000_040_000
        var records = SampleRecords.make(count: 3000, seed: seed, probeID: 3)
        for i in records.indices {
            records[i].endTimeMs = base + rng.next() % 180_000
            records[i].startTimeMs = records[i].endTimeMs - 10
            records[i].subscriberID = i % 13 == 0 ? "" : "s\(rng.next() % 400)"
            if i % 17 == 0 { records[i].rttMicros = 0 }
        }
        let views = [withSketches, Self.plain]
        let rollup = PartitionRollup(partition: 0, views: views, latenessMs: 600_000, resume: .beginning())
        let bytes = RecordBatchEncoder.encodeShim(RecordBatchEncoder(), RecordBatch(probeID: 3, sequence: 1, createdMs: base, records: records))
        let outcome = try bytes.withUnsafeBytes { raw in try RecordBatchDecoder().withBatch(raw) { try rollup.fold(offset: 5, batch: $0) } }
        #expect(outcome.folded == records.count)
        #expect(outcome.late.isEmpty)
        var sink = CollectingSink()
        _ = rollup.flush(due: { _ in true }, into: &sink)

        var expected: [VersionedStore.Key: Expected] = [:]
        for r in records {
            for v in views {
                let dims = v.dimensions.map { d -> String in
                    switch d {
                    case .application: return r.application
                    case .probe: return String(r.probeID)
                    default: return r.subscriberID
                    }
                }
                let key = VersionedStore.Key(view: v.name, bucket: r.endTimeMs - r.endTimeMs % v.bucketMs, dims: dims)
                var e = expected[key] ?? Expected(hll: HyperLogLog(precision: v.hllPrecision))
                e.records += 1
                e.flows += UInt64(r.flows)
                e.bytesUp += r.bytesUp
                e.bytesDown += r.bytesDown
                e.packetsUp += r.packetsUp
                e.packetsDown += r.packetsDown
                if r.rttMicros > 0 {
                    e.rttCount += 1
                    e.rttSum += UInt64(r.rttMicros)
                    e.rttMin = min(e.rttMin, r.rttMicros)
                    e.rttMax = max(e.rttMax, r.rttMicros)
                    e.rtt.add(Double(r.rttMicros))
                }
                if !r.subscriberID.isEmpty { e.hll.add(hash: StableHash.hash(r.subscriberID)) }
                expected[key] = e
            }
        }
        #expect(sink.documents.count == expected.count)
        for d in sink.documents {
            let key = VersionedStore.Key(view: d.view.name, bucket: d.bucketStart, dims: d.dimensionValues)
            let e = try #require(expected[key], "unexpected document \(key)")
            #expect(d.lastOffset == 5)
            #expect([d.records, d.flows, d.bytesUp, d.bytesDown, d.packetsUp, d.packetsDown] == [e.records, e.flows, e.bytesUp, e.bytesDown, e.packetsUp, e.packetsDown])
            #expect([d.rttCount, d.rttSum] == [e.rttCount, e.rttSum] && d.rttMin == e.rttMin && d.rttMax == e.rttMax)
            if d.view.name == withSketches.name {
                #expect(d.subscribers?.serialized() == e.hll.serialized())
                #expect(d.rtt?.serialized() == e.rtt.serialized())
            }
        }
    }

    /// Subscriber-sketch adds wait in their bucket's log (`BucketCells.addSubscriber`) across
    /// messages, until the log is full or something reads a sketch. 40 messages of 1,000 records
    /// into one bucket of three cells pass the log's limit twice; a flush every third message
    /// reads the sketches in between. Every document must carry the sketch of adding its records
    /// one by one, up to that message (p 12 turns dense midway, p 16 stays sparse).
    @Test("pending sketch adds: every flush sees the records folded so far", arguments: [12, 16])
    func pendingAddsAcrossMessages(hllPrecision: Int) throws {
        let view = ViewDefinition(
            name: "app_5m", bucketMs: 300_000, dimensions: [.application], sketches: [.subscribers, .rtt],
            hllPrecision: hllPrecision, flushIntervalMs: 1000)
        var rng = SplitMix64(seed: UInt64(hllPrecision))
        let base: UInt64 = 1_790_000_100_000
        let rollup = PartitionRollup(partition: 0, views: [view], latenessMs: 600_000, resume: .beginning())
        var expected: [String: HyperLogLog] = [:]
        var flushed = 0
        for message in 0..<40 {
            var records = SampleRecords.make(count: 1000, seed: UInt64(message), probeID: 3)
            for i in records.indices {
                records[i].endTimeMs = base + UInt64(message) * 1000 + UInt64(i)
                records[i].startTimeMs = records[i].endTimeMs - 10
                records[i].application = "app\(rng.next() % 3)"
                records[i].subscriberID = i % 11 == 0 ? "" : "s\(rng.next() % 20_000)"
                let r = records[i]
                if !r.subscriberID.isEmpty { expected[r.application, default: HyperLogLog(precision: hllPrecision)].add(hash: StableHash.hash(r.subscriberID)) }
            }
            let bytes = RecordBatchEncoder.encodeShim(
                RecordBatchEncoder(), RecordBatch(probeID: 3, sequence: UInt64(message), createdMs: base, records: records))
            let outcome = try bytes.withUnsafeBytes { raw in try RecordBatchDecoder().withBatch(raw) { try rollup.fold(offset: Int64(message), batch: $0) } }
            #expect(outcome.folded == records.count)
            if message % 3 == 2 || message == 39 {
                var sink = CollectingSink()
                _ = rollup.flush(due: { _ in true }, into: &sink)
                #expect(sink.documents.count == 3, "after message \(message)")
                for d in sink.documents {
                    let e = try #require(expected[d.dimensionValues[0]])
                    #expect(d.subscribers?.serialized() == e.serialized(), "\(d.dimensionValues[0]) after message \(message)")
                    #expect(d.subscribers?.isSparse == e.isSparse)
                }
                flushed += 1
            }
        }
        #expect(flushed == 14)
        #expect(expected.values.contains { !$0.isSparse } == (hllPrecision == 12))
    }

    /// A top-K bucket's documents are found by a one-pass selection, not by sorting every cell:
    /// they must still be the K largest cells by bytes, ties by records, then by dimension
    /// values, in that order, and "(other)" must carry the sums, latest offset and sketches of
    /// every other cell. Record bytes here are 0 or 100 and cells hold a few records, so hundreds of cells
    /// tie with the K-th and the dimension values decide. The reference: the same records
    /// folded into the same view without a top, every cell written, sorted.
    @Test("top-K: the K largest cells in order, ties by records then values, the rest in (other)", arguments: [1, 2, 3] as [UInt64])
    func topKSelection(seed: UInt64) throws {
        let all = ViewDefinition(
            name: "sub_all", bucketMs: 300_000, dimensions: [.subscriber, .application], sketches: [.subscribers, .rtt],
            hllPrecision: 12, flushIntervalMs: 1000)
        let k = [5, 20, 60][Int(seed - 1)]
        let top = ViewDefinition(
            name: "sub_top", bucketMs: 300_000, dimensions: [.subscriber, .application], sketches: [.subscribers, .rtt],
            hllPrecision: 12, flushIntervalMs: 1000, topK: k)
        var rng = SplitMix64(seed: seed)
        let base: UInt64 = 1_790_000_100_000
        let rollup = PartitionRollup(partition: 0, views: [all, top], latenessMs: 60_000, resume: .beginning())
        for message in 0..<6 {
            var records = SampleRecords.make(count: 500, seed: seed * 100 + UInt64(message), probeID: 3)
            for i in records.indices {
                records[i].endTimeMs = base + UInt64(message) * 1000 + UInt64(i)
                records[i].startTimeMs = records[i].endTimeMs - 10
                records[i].subscriberID = "s\(rng.next() % 300)"
                records[i].application = "app\(rng.next() % 2)"
                records[i].bytesUp = 100 * (rng.next() % 2)
                records[i].bytesDown = 0
            }
            let bytes = RecordBatchEncoder.encodeShim(
                RecordBatchEncoder(), RecordBatch(probeID: 3, sequence: UInt64(message), createdMs: base, records: records))
            let outcome = try bytes.withUnsafeBytes { raw in try RecordBatchDecoder().withBatch(raw) { try rollup.fold(offset: Int64(message), batch: $0) } }
            #expect(outcome.folded == records.count)
        }
        // A quiet partition's marker far past the bucket closes it.
        rollup.advance(offset: 6, eventTimeMs: base + 600_000)
        var sink = CollectingSink()
        _ = rollup.flush(due: { _ in true }, into: &sink)
        let cells = sink.documents.filter { $0.view.name == all.name }.sorted { x, y in
            let (bx, by) = (x.bytesUp + x.bytesDown, y.bytesUp + y.bytesDown)
            if bx != by { return bx > by }
            if x.records != y.records { return x.records > y.records }
            return x.dimensionValues.lexicographicallyPrecedes(y.dimensionValues)
        }
        let written = sink.documents.filter { $0.view.name == top.name }
        #expect(cells.count > 300, "cells: \(cells.count)")
        let kth = cells[k - 1]
        #expect(cells.filter { $0.bytesUp == kth.bytesUp && $0.records == kth.records }.count > 1, "no tie at the K-th cell")
        #expect(written.count == k + 1)
        #expect(written.prefix(k).map(\.dimensionValues) == cells.prefix(k).map(\.dimensionValues))
        #expect(written.prefix(k).map(\.bytesUp) == cells.prefix(k).map(\.bytesUp))
        let other = try #require(written.last)
        #expect(other.dimensionValues == [ViewDefinition.otherValue, ViewDefinition.otherValue])
        let rest = cells.dropFirst(k)
        #expect(other.records == rest.reduce(0) { $0 + $1.records })
        #expect(other.bytesUp == rest.reduce(0) { $0 + $1.bytesUp })
        #expect(other.packetsDown == rest.reduce(0) { $0 + $1.packetsDown })
        #expect(other.rttCount == rest.reduce(0) { $0 + $1.rttCount })
        #expect(other.rttMin == rest.map(\.rttMin).min() && other.rttMax == rest.map(\.rttMax).max())
        #expect(other.lastOffset == 5)
        var hll = HyperLogLog(precision: 12)
        var rtt = QuantileSketch()
        for d in rest {
            hll.merge(try #require(d.subscribers))
            rtt.merge(try #require(d.rtt))
        }
        #expect(other.subscribers?.serialized() == hll.serialized())
        #expect(other.rtt?.serialized() == rtt.serialized())
    }
}
