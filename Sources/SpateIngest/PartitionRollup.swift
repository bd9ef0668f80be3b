public import SpateCodec
public import SpateModel

/// Where a partition's processing (re)starts: the checkpoint read from the store, or the
/// beginning of the partition.
public struct ResumeState: Sendable, Hashable {
    /// First offset to read.
    public var offset: Int64
    /// The partition's maximum event time before `offset` (restores the watermark).
    public var maxEventTs: UInt64
    /// Records below `horizonOffset` were fully accounted before the checkpoint: their late
    /// and malformed side effects happened, and buckets ending at or before the horizon's
    /// watermark are final in the store.
    public var horizonOffset: Int64
    public var horizonMaxEventTs: UInt64
    /// The open state saved with this checkpoint (or an earlier one), if any. Used only when it
    /// lies after `offset`: then a new owner restores it and reads on from its offset.
    public var snapshot: SnapshotReference?

    public init(offset: Int64, maxEventTs: UInt64, horizonOffset: Int64, horizonMaxEventTs: UInt64, snapshot: SnapshotReference? = nil) {
        self.offset = offset
        self.maxEventTs = maxEventTs
        self.horizonOffset = horizonOffset
        self.horizonMaxEventTs = horizonMaxEventTs
        self.snapshot = snapshot
    }

    /// The snapshot worth restoring: one after the replay offset and not after the horizon.
    public var usableSnapshot: SnapshotReference? {
        guard let s = snapshot, s.offset > offset, s.offset <= horizonOffset else { return nil }
        return s
    }

    /// Where a new owner starts reading when the snapshot restores: the snapshot's offset when
    /// there is a usable one, else the first offset of the oldest open bucket. (Kafka commits
    /// are the horizon, not this.)
    public var readOffset: Int64 { usableSnapshot?.offset ?? offset }

    /// The beginning of a partition with no checkpoint.
    public static func beginning(at offset: Int64 = 0) -> ResumeState {
        ResumeState(offset: offset, maxEventTs: 0, horizonOffset: offset, horizonMaxEventTs: 0)
    }
}

/// What folding one message did.
public struct FoldOutcome: Sendable {
    /// Records added to the views.
    public var folded = 0
    /// Indices (in the batch) of records older than the watermark allows, to be dead-lettered.
    public var late: [Int] = []
    /// Records below the replay horizon whose effect the store already holds.
    public var skippedReplay = 0
    /// Whether side effects (dead letters) are due: false below the replay horizon.
    public var sideEffects = true
}

/// One partition's rollup state: open buckets of every view, the event-time watermark and
/// the offsets that make its checkpoint. Pure state — no I/O — so the exactly-once rules are
/// unit-tested directly. Owned by one ingest worker thread.
///
/// Rules (docs/DESIGN.md):
/// - a record is *late* when its event time is below the watermark (max event time − allowed
///   lateness) as of the start of its message; late records go to the dead-letter topic and
///   into no view. The rule depends only on the partition's history, so a replay decides the
///   same way;
/// - a bucket closes when the watermark passes its end; its final document is flushed and its
///   memory released;
/// - below the replay horizon of the checkpoint this state resumed from, records of buckets
///   that had closed by the horizon are skipped (the store holds their final value) and no
///   side effect is repeated.
public final class PartitionRollup {
    public let partition: Int32
    public let views: [ViewDefinition]
    public let latenessMs: UInt64
    /// Next offset to fold (last folded + 1).
    public private(set) var nextOffset: Int64
    public private(set) var maxEventTs: UInt64
    let horizon: ResumeState
    /// This partition's dimension strings. Compacted when it holds far more strings than the
    /// open buckets use, and freed with the partition: memory follows the open state.
    private(set) var interner: StringInterner
    /// Compact the interner once it holds this many strings.
    private var compactAt: Int
    /// Strings below which the interner is never compacted.
    public static let minimumCompaction = 1 << 16
    var rollups: [ViewRollup]
    /// Scratch: string ids of the current message, `stringFields.count` per record.
    private var scratchIDs: [UInt32] = []
    /// Scratch: the current message's records that go into the views.
    private var inputs: [FoldInput] = []
    /// Scratch: the slot hashes (`StringInterner.slotHash`) of the current message's strings, like `scratchIDs`.
    private var stringHashes: [UInt64] = []
    private let stringFields: [Dimension]
    private let needsSubscriber: Bool
    /// The subscriber's position among a record's interned strings (-1: not interned).
    private let subscriberSlot: Int

    public init(
        partition: Int32, views: [ViewDefinition], latenessMs: UInt64, interner: StringInterner = StringInterner(),
        resume: ResumeState
    ) {
        self.partition = partition
        self.views = views
        self.latenessMs = latenessMs
        self.interner = interner
        compactAt = max(Self.minimumCompaction, interner.count * 2)
        nextOffset = resume.offset
        maxEventTs = resume.maxEventTs
        horizon = resume
        needsSubscriber = views.contains { $0.sketches.contains(.subscribers) }
        var fields = Dimension.allCases.filter { d in d.isString && views.contains { $0.dimensions.contains(d) } }
        if needsSubscriber && !fields.contains(.subscriber) { fields.append(.subscriber) }
        stringFields = fields
        subscriberSlot = fields.firstIndex(of: .subscriber) ?? -1
        rollups = views.map { ViewRollup(definition: $0, stringFields: fields) }
    }

    /// The watermark: buckets ending at or before it are closed; records before it are late.
    public var watermark: UInt64 { watermark(at: maxEventTs) }

    var horizonWatermark: UInt64 { watermark(at: horizon.horizonMaxEventTs) }

    /// The watermark when the partition's maximum event time is `eventTimeMs`.
    private func watermark(at eventTimeMs: UInt64) -> UInt64 { eventTimeMs > latenessMs ? eventTimeMs - latenessMs : 0 }

    /// Moves every bucket the watermark has passed to its view's closing list.
    private func closePassedBuckets() {
        let closeBefore = watermark
        for v in rollups { v.close(before: closeBefore) }
    }

    /// Whether a message at `offset` needs its dead letter sent (false during a replay below
    /// the horizon: it was sent before the checkpoint).
    public func sideEffectsDue(offset: Int64) -> Bool { offset >= horizon.horizonOffset }

    /// An idle marker at `offset`: event time has reached `eventTimeMs` in this partition
    /// although no record says so (the probe is quiet). Advances the watermark like a record
    /// with that time would, closing what it passes — deterministically, since the marker is a
    /// message in the partition and a replay reads it at the same offset.
    public func advance(offset: Int64, eventTimeMs: UInt64) {
        if eventTimeMs > maxEventTs { maxEventTs = eventTimeMs }
        nextOffset = offset + 1
        closePassedBuckets()
    }

    /// Whether an idle marker at `eventTimeMs` would close an open bucket.
    public func wouldClose(atEventTime eventTimeMs: UInt64) -> Bool {
        guard eventTimeMs > maxEventTs else { return false }
        let w = watermark(at: eventTimeMs)
        return rollups.contains { v in v.buckets.contains { $0.end <= w } }
    }

    /// Notes a message that could not be decoded (it advances the offset only).
    public func skipMessage(offset: Int64) {
        nextOffset = offset + 1
    }

    /// Folds a decoded message into every view.
    /// - Throws: `RecordDecodingError(.invalidUTF8)` when a dimension string is not UTF-8; then
    ///   nothing of the message was folded.
    public func fold(offset: Int64, batch: DecodedBatch) throws -> FoldOutcome {
        var outcome = FoldOutcome()
        outcome.sideEffects = offset >= horizon.horizonOffset
        let n = batch.count
        let stride = stringFields.count
        // Pass 1: resolve every string first, so a bad one rejects the whole message untouched.
        // The strings are hashed and the interner's memory for them prefetched first (most
        // subscribers miss the caches), then interned.
        if scratchIDs.count < n * stride { scratchIDs = [UInt32](repeating: 0, count: n * stride) }
        if stringHashes.count < n * stride { stringHashes = [UInt64](repeating: 0, count: n * stride) }
        let interner = self.interner
        stringHashes.withUnsafeMutableBufferPointer { hashes in
            for i in 0..<n {
                let r = batch[i]
                for k in 0..<stride { hashes[i * stride + k] = StringInterner.slotHash(Self.string(stringFields[k], of: r)) }
            }
            interner.prefetch(slotHashes: UnsafeBufferPointer(rebasing: hashes.prefix(n * stride)))
        }
        for i in 0..<n {
            let r = batch[i]
            for (k, field) in stringFields.enumerated() {
                guard let id = interner.intern(Self.string(field, of: r), slotHash: stringHashes[i * stride + k]) else {
                    throw RecordDecodingError(.invalidUTF8, "record \(i): \(field.rawValue) is not valid UTF-8")
                }
                scratchIDs[i * stride + k] = id
            }
        }
        // Pass 2: which records count (late rule, replay rule) and, once per record, what every
        // view shares: the RTT sketch bucket (a logarithm) and the subscriber's hash.
        let w = watermark
        let replaying = offset < horizon.horizonOffset
        let wc = horizonWatermark
        var messageMax = maxEventTs
        let maxBefore = maxEventTs
        let subscriberSlot = self.subscriberSlot
        let rttMapping = QuantileSketch.emptyRTT
        inputs.removeAll(keepingCapacity: true)
        for i in 0..<n {
            let r = batch[i]
            let ts = r.endTimeMs
            if ts > messageMax { messageMax = ts }
            if ts < w {
                if replaying { outcome.skippedReplay += 1 } else { outcome.late.append(i) }
                continue
            }
            if rollups.isEmpty || replaying && rollups.allSatisfy({ $0.replaySkips(eventTimeMs: ts, replayWatermark: wc) }) {
                outcome.skippedReplay += 1
                continue
            }
            let rtt = r.rttMicros
            var input = FoldInput(
                record: i, endTimeMs: ts, flows: UInt64(r.flows), bytesUp: r.bytesUp, bytesDown: r.bytesDown, packetsUp: r.packetsUp,
                packetsDown: r.packetsDown, rttMicros: rtt, rttBucket: rtt > 0 ? rttMapping.bucket(of: Double(rtt)) : nil,
                hasSubscriber: false, subscriberHash: 0)
            if subscriberSlot >= 0 && scratchIDs[i * stride + subscriberSlot] != 0 {
                // The subscriber's stable hash, kept by the interner (its entry was just read).
                input.hasSubscriber = true
                input.subscriberHash = interner.hash(scratchIDs[i * stride + subscriberSlot])
            }
            inputs.append(input)
        }
        outcome.folded = inputs.count
        // Pass 3: every view folds the accepted records.
        scratchIDs.withUnsafeBufferPointer { ids in
            inputs.withUnsafeBufferPointer { inputs in
                for v in rollups {
                    v.fold(
                        batch: batch, inputs: inputs, ids: ids, stride: stride, offset: offset, maxEventTsBefore: maxBefore,
                        replayWatermark: replaying ? wc : nil)
                }
            }
        }
        maxEventTs = messageMax
        nextOffset = offset + 1
        closePassedBuckets()
        if interner.count >= compactAt { compactInterner() }
        return outcome
    }

    /// A record's string of dimension `field`, as bytes (empty for a dimension that is not a
    /// string; `stringFields` holds only strings).
    @inline(__always)
    private static func string(_ field: Dimension, of r: DecodedRecord) -> UnsafeBufferPointer<UInt8> {
        switch field {
        case .application: return r.application.utf8
        case .applicationCategory: return r.applicationCategory.utf8
        case .host: return r.host.utf8
        case .subscriber: return r.subscriberID.utf8
        case .deviceType: return r.deviceType.utf8
        case .country: return r.country.utf8
        case .probe, .interface, .l4Protocol, .serverPort, .serverPrefix, .clientPrefix: return UnsafeBufferPointer(start: nil, count: 0)
        }
    }

    /// Rebuilds the interner with only the strings the open and closing buckets use, and
    /// renumbers their keys. Amortized: the next compaction waits until the interner doubles.
    public func compactInterner() {
        let old = interner
        let fresh = StringInterner(capacity: 1024)
        var map = [UInt32](repeating: 0, count: old.count)
        var mapped = [Bool](repeating: false, count: old.count)
        for v in rollups {
            v.forEachStringID { id in
                let i = Int(id)
                guard i < map.count, !mapped[i] else { return }
                mapped[i] = true
                map[i] = old.withUTF8(id) { fresh.intern($0) } ?? 0
            }
        }
        for v in rollups { v.remapStrings(map) }
        interner = fresh
        compactAt = max(Self.minimumCompaction, fresh.count * 2)
    }

    /// Strings the interner holds.
    public var internedStrings: Int { interner.count }

    /// Bytes the interner holds (strings, hashes, table).
    public var internerBytes: Int { interner.memoryBytes }

    /// Whether closed buckets stay in memory after their final flush, for the live tier
    /// (docs/DESIGN.md, "Live dashboards"): an asker whose cached slots have not reached them
    /// yet gets them from memory instead of searching the store. Off by default; turning it
    /// off drops what is kept.
    public var keepsReleased: Bool {
        get { rollups.first?.keepsReleased ?? false }
        set {
            for v in rollups {
                v.keepsReleased = newValue
                if !newValue { v.released.removeAll() }
            }
        }
    }

    /// Drops released buckets kept longer than `keepMs` (wall clock, from the first call that
    /// saw them) and, per view, the oldest beyond `maxCells` cells.
    public func expireReleased(nowMs: UInt64, keepMs: UInt64, maxCells: Int) {
        for v in rollups { v.expireReleased(nowMs: nowMs, keepMs: keepMs, maxCells: maxCells) }
    }

    /// Cells of the released buckets kept for the live tier.
    public var releasedCells: Int { rollups.reduce(0) { $0 + $1.releasedCells } }

    /// Whether closed buckets wait for their final flush.
    public var hasClosedBuckets: Bool { rollups.contains { !$0.closing.isEmpty } }

    /// Whether anything changed since the last flush in view `index`.
    public func isDirty(view index: Int) -> Bool { rollups[index].isDirty }

    /// Open cells across views.
    public var openCells: Int { rollups.reduce(0) { $0 + $1.cellCount } }

    /// Approximate memory of the open state (and of released buckets kept for the live tier).
    public var memoryBytes: Int { rollups.reduce(0) { $0 + $1.memoryBytes } }

    /// The checkpoint this state would have once everything flushed so far is stored.
    public var resumePoint: ResumeState {
        var r = ResumeState(offset: nextOffset, maxEventTs: maxEventTs, horizonOffset: nextOffset, horizonMaxEventTs: maxEventTs)
        for v in rollups {
            for b in v.buckets where b.firstOffset < r.offset {
                r.offset = b.firstOffset
                r.maxEventTs = b.maxEventTsBeforeFirst
            }
            for b in v.closing where b.firstOffset < r.offset {
                r.offset = b.firstOffset
                r.maxEventTs = b.maxEventTsBeforeFirst
            }
        }
        return r
    }

    /// Writes documents for the dirty cells of the views in `due` and of every closed bucket,
    /// releases the closed buckets, and returns the checkpoint that becomes valid once these
    /// documents are stored.
    public func flush(due: (Int) -> Bool, into sink: inout some RollupDocumentSink) -> ResumeState {
        for (index, v) in rollups.enumerated() {
            for b in v.closing {
                if v.definition.topK > 0 {
                    v.emitTopK(bucket: b, partition: partition, interner: interner, into: &sink)
                } else {
                    v.emit(bucket: b, partition: partition, interner: interner, into: &sink)
                }
                v.release(b)
            }
            v.closing.removeAll()
            // Top-K views write a bucket only when it closes: until then which cells are in the
            // top is not final, and a document once written could not be taken back.
            if due(index) && v.definition.topK == 0 {
                for b in v.buckets { v.emit(bucket: b, partition: partition, interner: interner, into: &sink) }
            }
        }
        return resumePoint
    }
}

/// Receives the documents a flush produces.
public protocol RollupDocumentSink {
    /// One document: the view, bucket start, cell key rendering and its metrics.
    mutating func add(_ document: RollupDocument)
}

/// A rollup document, borrowed for the duration of `RollupDocumentSink.add`.
public struct RollupDocument {
    public let view: ViewDefinition
    public let bucketStart: UInt64
    public let partition: Int32
    /// Dimension values in the view's order, rendered as strings.
    public let dimensionValues: [String]
    public let records: UInt64
    public let flows: UInt64
    public let bytesUp: UInt64
    public let bytesDown: UInt64
    public let packetsUp: UInt64
    public let packetsDown: UInt64
    public let rttCount: UInt64
    public let rttSum: UInt64
    public let rttMin: UInt32
    public let rttMax: UInt32
    /// The last folded offset: the document's version.
    public let lastOffset: Int64
    public let subscribers: HyperLogLog?
    public let rtt: QuantileSketch?
}
