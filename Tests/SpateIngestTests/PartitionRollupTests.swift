import SpateCodec
import SpateIngest
import SpateModel
import SpateTestSupport
import Testing

/// A store with Elasticsearch's `version_type=external_gte` semantics, for the model check.
struct VersionedStore {
    struct Key: Hashable {
        var view: String
        var bucket: UInt64
        var dims: [String]
    }
    struct Value: Equatable {
        var records: UInt64, flows: UInt64, bytesUp: UInt64, bytesDown: UInt64, packets: UInt64
    }
    var docs: [Key: (version: Int64, value: Value)] = [:]
    var checkpoint: ResumeState?

    mutating func apply(_ d: RollupDocument) {
        let key = Key(view: d.view.name, bucket: d.bucketStart, dims: d.dimensionValues)
        let version = d.lastOffset + 1
        if let old = docs[key], old.version > version { return }  // 409: stored is newer
        docs[key] = (version, Value(records: d.records, flows: d.flows, bytesUp: d.bytesUp, bytesDown: d.bytesDown, packets: d.packetsUp &+ d.packetsDown))
    }

    mutating func store(checkpoint c: ResumeState) {
        if let old = checkpoint, old.horizonOffset > c.horizonOffset { return }
        checkpoint = c
    }
}

/// Collects a flush's documents.
struct CollectingSink: RollupDocumentSink {
    var documents: [RollupDocument] = []
    mutating func add(_ document: RollupDocument) { documents.append(document) }
}

@Suite("PartitionRollup: exactly-once rules")
struct PartitionRollupTests {
    static let view1m = ViewDefinition(name: "app_1m", bucketMs: 60_000, dimensions: [.application, .probe], sketches: [.subscribers, .rtt], flushIntervalMs: 1000)
    static let view5m = ViewDefinition(name: "sub_5m", bucketMs: 300_000, dimensions: [.subscriber], sketches: [], flushIntervalMs: 1000)
    static let viewTop = ViewDefinition(name: "top_5m", bucketMs: 300_000, dimensions: [.subscriber, .application], sketches: [.subscribers], flushIntervalMs: 1000, topK: 3)

    /// A partition's messages: event times mostly rising with jitter, some stragglers.
    static func makeMessages(count: Int, seed: UInt64) -> [[UInt8]?] {
        var rng = SplitMix64(seed: seed)
        let encoder = RecordBatchEncoder()
        var t: UInt64 = 1_790_000_000_000
        var out: [[UInt8]?] = []
        for m in 0..<count {
            if rng.next() % 40 == 0 {
                out.append(nil)  // a malformed message
                continue
            }
            var records = SampleRecords.make(count: 1 + Int(rng.next() % 20), seed: rng.next(), probeID: 3)
            for i in records.indices {
                t += rng.next() % 3000
                var ts = t
                if rng.next() % 50 == 0 { ts -= 60_000 + rng.next() % 400_000 }  // straggler, often late
                records[i].endTimeMs = ts
                records[i].startTimeMs = ts - 10
                records[i].application = ["a", "b", "c", "d"][Int(rng.next() % 4)]
                records[i].subscriberID = "s\(rng.next() % 30)"
            }
            out.append(RecordBatchEncoder.encodeShim(encoder, RecordBatch(probeID: 3, sequence: UInt64(m), createdMs: t, records: records)))
        }
        return out
    }

    /// What the store must end with: sums per (view, bucket, dims) of every record that was not
    /// late under the rule, and the set of late (offset, index) pairs.
    static func reference(_ messages: [[UInt8]?], views: [ViewDefinition], lateness: UInt64) throws -> ([VersionedStore.Key: VersionedStore.Value], Set<[Int64]>) {
        var sums: [VersionedStore.Key: VersionedStore.Value] = [:]
        var late: Set<[Int64]> = []
        var maxTs: UInt64 = 0
        let decoder = RecordBatchDecoder()
        for (offset, m) in messages.enumerated() {
            guard let m, let batch = try? decoder.decode(m) else { continue }
            let w = maxTs > lateness ? maxTs - lateness : 0
            for (i, r) in batch.records.enumerated() {
                maxTs = max(maxTs, r.endTimeMs)
                if r.endTimeMs < w {
                    late.insert([Int64(offset), Int64(i)])
                    continue
                }
                for v in views {
                    let dims = v.dimensions.map { d -> String in
                        switch d {
                        case .application: return r.application
                        case .probe: return String(r.probeID)
                        case .subscriber: return r.subscriberID
                        default: return "?"
                        }
                    }
                    let key = VersionedStore.Key(view: v.name, bucket: r.endTimeMs - r.endTimeMs % v.bucketMs, dims: dims)
                    var s = sums[key] ?? .init(records: 0, flows: 0, bytesUp: 0, bytesDown: 0, packets: 0)
                    s.records += 1
                    s.flows &+= UInt64(r.flows)
                    s.bytesUp &+= r.bytesUp
                    s.bytesDown &+= r.bytesDown
                    s.packets &+= r.packetsUp &+ r.packetsDown
                    sums[key] = s
                }
            }
        }
        return (sums, late)
    }

    static func maxEventTime(_ messages: [[UInt8]?]) throws -> UInt64 {
        let decoder = RecordBatchDecoder()
        var m: UInt64 = 0
        for bytes in messages.compactMap({ $0 }) { for r in try decoder.decode(bytes).records { m = max(m, r.endTimeMs) } }
        return m
    }

    @Test("random crashes, replays and lost acknowledgements never change the stored sums", arguments: 1...12)
    func crashesAndReplays(seed: UInt64) throws {
        let run = try Self.modelCheck(seed: seed, snapshots: false)
        #expect(run.restores == 0)
    }

    @Test("crashes with open-bucket snapshots: restores read on from the snapshot and the sums stay exact", arguments: [1, 41, 81, 121] as [UInt64])
    func crashesWithSnapshots(firstSeed: UInt64) throws {
        // A run restores only when a crash follows a stored checkpoint whose snapshot is still
        // whole; over 40 seeds most crashes do.
        var restores = 0
        var crashes = 0
        for seed in firstSeed..<(firstSeed + 40) {
            let run = try Self.modelCheck(seed: seed, snapshots: true)
            restores += run.restores
            crashes += run.crashes
        }
        #expect(restores * 3 >= crashes, "\(restores) restores in \(crashes) crashes")
    }

    /// What a model-check run did.
    struct ModelRun {
        var crashes = 0
        /// Restarts that restored a snapshot.
        var restores = 0
    }

    /// The model check: one partition's messages folded by a node that flushes at random,
    /// dies at random (between messages, mid-bulk, with an acknowledgement lost) and resumes
    /// from the checkpoint in a `external_gte` store — from its snapshot when `snapshots` and the
    /// checkpoint names a usable one (a snapshot slot can be overwritten by a flush whose
    /// checkpoint never landed: then the restore falls back to the replay). Every stored sum
    /// must equal the reference; dead letters and malformed messages must each be seen once.
    static func modelCheck(seed: UInt64, snapshots: Bool) throws -> ModelRun {
        let messages = Self.makeMessages(count: 400, seed: seed)
        let views = [Self.view1m, Self.view5m, Self.viewTop]
        let lateness: UInt64 = 120_000
        let (allExpected, expectedLate) = try Self.reference(messages, views: views, lateness: lateness)
        // Top-K views keep K documents per bucket plus "(other)": their per-bucket totals must
        // be exact; the others must be exact per cell.
        // A top-K bucket is written when it closes, so only buckets the final watermark closed count.
        let finalWatermark = try Self.maxEventTime(messages) - lateness
        func perBucket(_ m: [VersionedStore.Key: VersionedStore.Value]) -> [String: VersionedStore.Value] {
            var out: [String: VersionedStore.Value] = [:]
            for (k, v) in m where k.view == Self.viewTop.name && k.bucket + Self.viewTop.bucketMs <= finalWatermark {
                var t = out["\(k.bucket)"] ?? .init(records: 0, flows: 0, bytesUp: 0, bytesDown: 0, packets: 0)
                t.records &+= v.records
                t.flows &+= v.flows
                t.bytesUp &+= v.bytesUp
                t.bytesDown &+= v.bytesDown
                t.packets &+= v.packets
                out["\(k.bucket)"] = t
            }
            return out
        }
        let expected = allExpected.filter { $0.key.view != Self.viewTop.name }
        var rng = SplitMix64(seed: seed &* 7919)
        var store = VersionedStore()
        var deadLettered: Set<[Int64]> = []
        var malformedSeen: Set<Int64> = []
        let decoder = RecordBatchDecoder()
        var run = ModelRun()
        var crashes: Int {
            get { run.crashes }
            set { run.crashes = newValue }
        }
        // The snapshot slots: (offset, bytes), written with `external_gte` on the offset.
        var slots: [Int: (offset: Int64, bytes: [UInt8])] = [:]
        func writeSnapshot(_ ref: SnapshotReference, _ bytes: [UInt8]) {
            if let old = slots[ref.slot], old.offset > ref.offset { return }
            slots[ref.slot] = (ref.offset, bytes)
        }

        var resume = ResumeState.beginning()
        restart: while true {
            var rollup = PartitionRollup(partition: 0, views: views, latenessMs: lateness, interner: StringInterner(), resume: resume)
            if let ref = resume.usableSnapshot, let stored = slots[ref.slot], stored.offset == ref.offset {
                rollup = try PartitionRollup.restoring(partition: 0, views: views, latenessMs: lateness, snapshot: stored.bytes, resume: resume)
                run.restores += 1
                // It reads on from the snapshot, not from the oldest open bucket's first record.
                #expect(rollup.nextOffset == ref.offset && ref.offset > resume.offset)
            }
            var offset = Int(rollup.nextOffset)
            // What the node last submitted (its checkpoint names the snapshot slot in use).
            var lastSubmitted: ResumeState? = store.checkpoint
            // A flush whose documents reached the store but whose acknowledgement is pending.
            var unacked: ResumeState?
            while offset < messages.count {
                if let m = messages[offset] {
                    try m.withUnsafeBytes { raw in
                        try decoder.withBatch(raw) { batch in
                            let outcome = try rollup.fold(offset: Int64(offset), batch: batch)
                            if outcome.sideEffects { for i in outcome.late { deadLettered.insert([Int64(offset), Int64(i)]) } }
                        }
                    }
                } else {
                    rollup.skipMessage(offset: Int64(offset))
                    if rollup.sideEffectsDue(offset: Int64(offset)) { malformedSeen.insert(Int64(offset)) }
                }
                offset += 1
                switch rng.next() % 100 {
                case 0..<8:
                    // Flush. The node makes a new flush only once the previous one is stored
                    // (documents, then checkpoint), so the pending checkpoint lands first.
                    // A flush either lands whole — its checkpoint written later, or never if
                    // the node dies first — or the node dies mid-bulk with part of it stored.
                    if let u = unacked { store.store(checkpoint: u) }
                    unacked = nil
                    var sink = CollectingSink()
                    var r = rollup.flush(due: { _ in rng.next() % 2 == 0 }, into: &sink)
                    r.snapshot = lastSubmitted?.snapshot
                    var snapshot: (SnapshotReference, [UInt8])?
                    if snapshots && rng.next() % 2 == 0 && rollup.nextOffset > r.offset {
                        let bytes = rollup.snapshot()
                        let ref = SnapshotReference(
                            offset: rollup.nextOffset, maxEventTs: rollup.maxEventTs, slot: 1 - (lastSubmitted?.snapshot?.slot ?? 1),
                            chunks: 1, bytes: bytes.count, hash: SnapshotReference.hash(of: bytes))
                        r.snapshot = ref
                        snapshot = (ref, bytes)
                    }
                    lastSubmitted = r
                    if rng.next() % 6 == 0 && crashes < 6 {
                        let landed = Int(rng.next() % UInt64(sink.documents.count + 1))
                        for d in sink.documents.prefix(landed) { store.apply(d) }
                        if let (ref, bytes) = snapshot, rng.next() % 2 == 0 { writeSnapshot(ref, bytes) }
                        crashes += 1
                        resume = store.checkpoint ?? .beginning()
                        continue restart
                    }
                    for d in sink.documents { store.apply(d) }
                    if let (ref, bytes) = snapshot { writeSnapshot(ref, bytes) }
                    unacked = r
                case 8..<10 where crashes < 6:
                    crashes += 1
                    resume = store.checkpoint ?? .beginning()
                    continue restart
                default:
                    break
                }
            }
            if let u = unacked { store.store(checkpoint: u) }
            var sink = CollectingSink()
            _ = rollup.flush(due: { _ in true }, into: &sink)
            for d in sink.documents { store.apply(d) }
            break
        }
        let allActual = store.docs.mapValues(\.value)
        let actual = allActual.filter { $0.key.view != Self.viewTop.name }
        #expect(perBucket(allActual) == perBucket(allExpected), "seed \(seed): top-K bucket totals differ")
        let topDocs = Dictionary(grouping: allActual.keys.filter { $0.view == Self.viewTop.name }, by: \.bucket)
        #expect(topDocs.values.allSatisfy { $0.count <= Self.viewTop.topK + 1 }, "seed \(seed): a top-K bucket has too many documents")
        #expect(topDocs.values.contains { $0.contains { $0.dims == ["(other)", "(other)"] } })
        let wrong = Set(actual.keys).union(expected.keys).filter { actual[$0] != expected[$0] }
        let sample = wrong.prefix(3).map { "\($0): stored \(String(describing: actual[$0])) expected \(String(describing: expected[$0]))" }
        #expect(wrong.isEmpty, "seed \(seed), \(crashes) crashes, \(wrong.count) of \(expected.count) cells differ: \(sample)")
        #expect(deadLettered == expectedLate)
        #expect(malformedSeen == Set(messages.indices.filter { messages[$0] == nil }.map(Int64.init)))
        #expect(crashes > 0)
        return run
    }

    @Test("a record behind the watermark is late, deterministically, and the watermark closes buckets")
    func lateness() throws {
        let encoder = RecordBatchEncoder()
        let decoder = RecordBatchDecoder()
        let rollup = PartitionRollup(partition: 0, views: [Self.view1m], latenessMs: 30_000, interner: StringInterner(), resume: .beginning())
        func fold(_ times: [UInt64], at offset: Int64) throws -> FoldOutcome {
            var records = SampleRecords.make(count: times.count, probeID: 1)
            for (i, t) in times.enumerated() {
                records[i].endTimeMs = t
                records[i].startTimeMs = t
            }
            let bytes = encoder.encode(RecordBatch(probeID: 1, sequence: 0, createdMs: 1, records: records))
            return try bytes.withUnsafeBytes { raw in try decoder.withBatch(raw) { try rollup.fold(offset: offset, batch: $0) } }
        }
        let base: UInt64 = 1_800_000_000_000 - 1_800_000_000_000 % 60_000
        #expect(try fold([base + 1000, base + 50_000], at: 0).late.isEmpty)
        #expect(rollup.watermark == base + 20_000)
        // Within the message, the watermark of its start applies: base+25s is on time.
        let o = try fold([base + 25_000, base + 19_999, base + 95_000], at: 1)
        #expect(o.late == [1])
        #expect(rollup.watermark == base + 65_000)
        // The first minute closed (end base+60s ≤ watermark base+65s): its final flush is due.
        #expect(rollup.hasClosedBuckets)
        var sink = CollectingSink()
        let resume = rollup.flush(due: { _ in false }, into: &sink)
        #expect(sink.documents.allSatisfy { $0.bucketStart == base })
        #expect(sink.documents.reduce(0) { $0 + $1.records } == 3)
        #expect(!rollup.hasClosedBuckets)
        // Only the second minute is open: a replay starts at its first offset.
        #expect(resume.offset == 1)
        #expect(resume.horizonOffset == 2)
        #expect(resume.horizonMaxEventTs == base + 95_000)
    }
}

extension RecordBatchEncoder {
    static func encodeShim(_ e: RecordBatchEncoder, _ b: RecordBatch) -> [UInt8] { e.encode(b) }
}
