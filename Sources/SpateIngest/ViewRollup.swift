import SpateCodec
import SpateModel

/// What every view reads of one accepted record of a message, computed once per record: the
/// record's summed fields copied out of the decoded message (a view's cell updates then read
/// one small array in order, not each record's protobuf-c struct through its pointer, four
/// times over), the RTT sketch bucket and the subscriber's hash.
struct FoldInput {
    /// The record's index in its batch.
    var record: Int
    var endTimeMs: UInt64
    var flows: UInt64
    var bytesUp: UInt64
    var bytesDown: UInt64
    var packetsUp: UInt64
    var packetsDown: UInt64
    /// The RTT (0: none), and its bucket in every RTT sketch.
    var rttMicros: UInt32
    var rttBucket: Int?
    /// Whether the record has a subscriber, and its hash (the subscribers sketches' input).
    var hasSubscriber: Bool
    var subscriberHash: UInt64

    var hasRTT: Bool { rttMicros > 0 }
}

/// One view's open and closing buckets within a partition.
final class ViewRollup {
    let definition: ViewDefinition
    let width: Int
    /// The bucket width, read per record.
    let bucketMs: UInt64
    /// Open buckets, usually one or two.
    var buckets: [BucketCells] = []
    /// Closed buckets waiting for their final flush.
    var closing: [BucketCells] = []
    /// Closed buckets past their final flush (or closed with nothing left to write), kept for
    /// the live tier while `keepsReleased` (`PartitionRollup.keepReleased`): ordered by start,
    /// each with the wall-clock time it was first seen here by `expireReleased` (0: not yet).
    /// Read-only: never folded into, flushed or saved in a snapshot.
    var released: [(bucket: BucketCells, sinceMs: UInt64)] = []
    var keepsReleased = false
    private var last: BucketCells?
    /// Scratch of `fold`, holding nothing between calls: the current chunk's entries, keys,
    /// key hashes and buckets.
    private var entries: [UInt64] = []
    private var chunkBuckets: [BucketCells] = []
    private var chunkKeys: [UInt64] = []
    private var chunkHashes: [UInt64] = []
    private var grouping = CellGrouping()
    /// The view's dimensions (a copy, read per record without touching `definition`).
    private let dimensions: [Dimension]
    /// For each dimension, its slot among the message's resolved strings (-1: not a string).
    private let stringSlots: [Int]
    /// The key positions that hold string ids (renumbered when the interner is compacted).
    let stringPositions: [Int]

    init(definition: ViewDefinition, stringFields: [Dimension]) {
        self.definition = definition
        width = definition.dimensions.count
        bucketMs = definition.bucketMs
        let slots = definition.dimensions.map { stringFields.firstIndex(of: $0) ?? -1 }
        stringSlots = slots
        stringPositions = slots.indices.filter { slots[$0] >= 0 }
        dimensions = definition.dimensions
    }

    var cellCount: Int { buckets.reduce(0) { $0 + $1.count } + closing.reduce(0) { $0 + $1.count } }
    var releasedCells: Int { released.reduce(0) { $0 + $1.bucket.count } }
    var memoryBytes: Int {
        buckets.reduce(0) { $0 + $1.memoryBytes } + closing.reduce(0) { $0 + $1.memoryBytes } + released.reduce(0) { $0 + $1.bucket.memoryBytes }
    }
    /// Every bucket held: open, closing and released.
    var held: [BucketCells] { buckets + closing + released.map(\.bucket) }
    var isDirty: Bool { (definition.topK == 0 && buckets.contains { !$0.dirtyCells.isEmpty }) || !closing.isEmpty }

    @inline(__always)
    private func bucket(start: UInt64, offset: Int64, maxEventTsBefore: UInt64) -> BucketCells {
        if let last, last.start == start { return last }
        // `buckets` is sorted by start. A binary search, and an insert in place: one message
        // may hold records of thousands of buckets (its event times may span the whole window the
        // boundary rules allow), and a scan plus a sort per new bucket made that quadratic.
        var lo = 0
        var hi = buckets.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if buckets[mid].start < start { lo = mid + 1 } else { hi = mid }
        }
        if lo < buckets.count && buckets[lo].start == start {
            last = buckets[lo]
            return buckets[lo]
        }
        // A bucket after every open one is sized for as many cells as the newest bucket holds
        // so far (at most memory already in use): its table does not grow and copy its way up
        // from 64 slots, faulting in new pages at each step. An older bucket (late records)
        // starts small.
        let newest = lo == buckets.count && !buckets.isEmpty
        let b = BucketCells(
            start: start, width: definition.bucketMs, keyWidth: width, firstOffset: offset,
            maxEventTsBeforeFirst: maxEventTsBefore, view: definition, expectedCells: newest ? buckets.last?.count ?? 0 : 0)
        buckets.insert(b, at: lo)
        last = b
        return b
    }

    /// Folds the accepted records of one message, `chunkRecords` at a time. `ids` are the
    /// message's interned strings (`stride` per record); `inputs` carry what every view shares
    /// per record. With `replayWatermark`, records of buckets ending at or before it are skipped
    /// (the store holds their final value).
    ///
    /// Why in phases rather than record by record: nearly all of a fold's time is cache misses
    /// (cells, sketch headers, sketch slots in tables far larger than the caches). Finding
    /// every record's cell first, then updating cell by cell, touches each cell and each of its
    /// sketches once per message instead of once per record, and keeps the loops short enough
    /// for the processor to overlap the misses that remain. The result is the same: sums
    /// saturate monotonically, sketches are sets, cells are created in record order, and the
    /// whole message is applied before this returns, except the subscriber-sketch adds, which
    /// wait in their bucket's log (`BucketCells.addSubscriber`) that every read applies first.
    func fold(
        batch: DecodedBatch, inputs: UnsafeBufferPointer<FoldInput>, ids: UnsafeBufferPointer<UInt32>, stride: Int,
        offset: Int64, maxEventTsBefore: UInt64, replayWatermark: UInt64?
    ) {
        var start = 0
        while start < inputs.count {
            let end = min(start + Self.chunkRecords, inputs.count)
            foldChunk(
                batch: batch, inputs: UnsafeBufferPointer(rebasing: inputs[start..<end]), ids: ids, stride: stride,
                offset: offset, maxEventTsBefore: maxEventTsBefore, replayWatermark: replayWatermark)
            start = end
        }
    }

    /// Records folded per phase pass: bounds the scratch buffers whatever the message size.
    static let chunkRecords = 1024

    /// Whether a replay skips a record at `eventTimeMs` in this view: its bucket ended at or
    /// before the horizon's watermark `replayWatermark`.
    @inline(__always)
    func replaySkips(eventTimeMs ts: UInt64, replayWatermark: UInt64) -> Bool {
        ts - ts % bucketMs + bucketMs <= replayWatermark
    }

    private func foldChunk(
        batch: DecodedBatch, inputs: UnsafeBufferPointer<FoldInput>, ids: UnsafeBufferPointer<UInt32>, stride: Int,
        offset: Int64, maxEventTsBefore: UInt64, replayWatermark: UInt64?
    ) {
        // The scratch arrays are sized once for the longest chunk seen (≤ chunkRecords) and
        // written through pointers: an append per key word checked uniqueness and capacity,
        // ~20 calls per record across the views.
        let n = inputs.count
        if entries.count < n { entries = [UInt64](repeating: 0, count: n) }
        if chunkHashes.count < n { chunkHashes = [UInt64](repeating: 0, count: n) }
        if chunkKeys.count < n * width { chunkKeys = [UInt64](repeating: 0, count: n * width) }
        chunkBuckets.removeAll(keepingCapacity: true)
        // Phase 1, in record order: each record's bucket, key and key hash; entry = bucket
        // ordinal (in `chunkBuckets`) << 48 | position in `inputs` (< 2^16: chunkRecords).
        // `m` records are kept (a replay skips some).
        var m = 0
        entries.withUnsafeMutableBufferPointer { e in
            chunkHashes.withUnsafeMutableBufferPointer { hashes in
                chunkKeys.withUnsafeMutableBufferPointer { keys in
                    // The bucket of the previous record: most records of a message share it, and
                    // looking it up only when the start changes keeps references (atomics) out of
                    // the loop.
                    var ordinal = -1
                    var ordinalStart: UInt64 = 0
                    let secret = KeyedHash.secret
                    for p in 0..<n {
                        let input = inputs[p]
                        let ts = input.endTimeMs
                        if let replayWatermark, replaySkips(eventTimeMs: ts, replayWatermark: replayWatermark) { continue }
                        let bucketStart = ts - ts % bucketMs
                        if ordinal < 0 || bucketStart != ordinalStart {
                            let b = bucket(start: bucketStart, offset: offset, maxEventTsBefore: maxEventTsBefore)
                            ordinal = chunkBuckets.firstIndex { $0 === b } ?? chunkBuckets.count
                            if ordinal == chunkBuckets.count { chunkBuckets.append(b) }
                            ordinalStart = bucketStart
                        }
                        let idBase = input.record * stride
                        let r = batch[input.record]
                        let key = UnsafeMutableBufferPointer(rebasing: keys[(m * width)..<((m + 1) * width)])
                        for k in 0..<width {
                            switch dimensions[k] {
                            case .probe: key[k] = UInt64(r.probeID)
                            case .interface: key[k] = UInt64(r.interfaceIndex)
                            case .l4Protocol: key[k] = UInt64(r.l4Protocol)
                            case .serverPort: key[k] = UInt64(r.serverPort)
                            case .serverPrefix: key[k] = Self.prefix(r.serverIP)
                            case .clientPrefix: key[k] = Self.prefix(r.clientIP)
                            default: key[k] = UInt64(ids[idBase + stringSlots[k]])
                            }
                        }
                        hashes[m] = Self.keyHash(bucketStart, UnsafeBufferPointer(key), secret: secret)
                        e[m] = UInt64(ordinal) << 48 | UInt64(p)
                        m += 1
                    }
                }
            }
        }
        // Phase 2, bucket by bucket: prefetch what the lookups will touch (table slots, then
        // the keys and cells they point to), then each record's cell, in record order (cells
        // are created in the order records arrive), into the entry's bits 16..<48. The prefetch
        // loops hold no references (a retain is an atomic, which waits for outstanding misses).
        entries.withUnsafeMutableBufferPointer { all in
            let e = UnsafeMutableBufferPointer(rebasing: all[0..<m])
            chunkHashes.withUnsafeBufferPointer { hashes in
                chunkKeys.withUnsafeBufferPointer { keys in
                    for (ordinal, b) in chunkBuckets.enumerated() {
                        let o = UInt64(ordinal)
                        b.withPrefetch { table in
                            for k in e.indices where e[k] >> 48 == o { table.prefetchSlot(hash: hashes[k]) }
                            for k in e.indices where e[k] >> 48 == o { table.prefetchCell(hash: hashes[k]) }
                        }
                        for k in e.indices where e[k] >> 48 == o {
                            e[k] |= UInt64(b.cellIndex(keys.baseAddress! + k * width, hash: hashes[k])) << 16
                        }
                    }
                }
            }
            // Phase 3: group by (bucket, cell); within a cell, records stay in order.
            grouping.sort(e)
        }
        // Phase 4: each touched cell once, with all of its records, after prefetching the
        // cells and what their RTT sketches' adds will touch.
        entries.withUnsafeBufferPointer { all in
            let e = UnsafeBufferPointer(rebasing: all[0..<m])
            var first = 0
            while first < e.count {
                let ordinal = e[first] >> 48
                var end = first + 1
                while end < e.count && e[end] >> 48 == ordinal { end += 1 }
                let b = chunkBuckets[Int(ordinal)]
                let bucketEntries = UnsafeBufferPointer(rebasing: e[first..<end])
                b.prefetchUpdates(entries: bucketEntries, inputs: inputs)
                apply(bucketEntries, to: b, batch: batch, inputs: inputs, offset: offset)
                first = end
            }
        }
        chunkBuckets.removeAll(keepingCapacity: true)
    }

    /// Adds the records of `entries` (grouped by cell, all of bucket `b`) to their cells, each
    /// cell once for its group: sums, then the RTT sketch, then the subscribers sketch's log.
    @inline(__always)
    private func apply(
        _ entries: UnsafeBufferPointer<UInt64>, to b: BucketCells, batch: DecodedBatch, inputs: UnsafeBufferPointer<FoldInput>,
        offset: Int64
    ) {
        let trackRTT = b.trackRTT
        let trackSubscribers = b.trackSubscribers
        b.cells.withUnsafeMutableBufferPointer { cells in
            b.rttSketches.withUnsafeMutableBufferPointer { rttSketches in
                var k = 0
                while k < entries.count {
                    let group = entries[k] >> 16
                    var j = k + 1
                    while j < entries.count && entries[j] >> 16 == group { j += 1 }
                    let i = Int(group & 0xFFFF_FFFF)
                    let records = UnsafeBufferPointer(rebasing: entries[k..<j])
                    var c = cells[i]
                    if !c.dirty { b.dirtyCells.append(Int32(i)) }
                    c.dirty = true
                    c.lastOffset = offset
                    var rttSeen = false
                    for e in records {
                        let r = inputs[Int(e & 0xFFFF)]
                        c.records = CellSum.add(c.records, 1)
                        c.flows = CellSum.add(c.flows, r.flows)
                        c.bytesUp = CellSum.add(c.bytesUp, r.bytesUp)
                        c.bytesDown = CellSum.add(c.bytesDown, r.bytesDown)
                        c.packetsUp = CellSum.add(c.packetsUp, r.packetsUp)
                        c.packetsDown = CellSum.add(c.packetsDown, r.packetsDown)
                        let rtt = r.rttMicros
                        if rtt > 0 {
                            rttSeen = true
                            c.rttCount = CellSum.add(c.rttCount, 1)
                            c.rttSum = CellSum.add(c.rttSum, UInt64(rtt))
                            if rtt < c.rttMin { c.rttMin = rtt }
                            if rtt > c.rttMax { c.rttMax = rtt }
                        }
                    }
                    cells[i] = c
                    if rttSeen && trackRTT {
                        rttSketches[i].add(records.count) { k in
                            let input = inputs[Int(records[k] & 0xFFFF)]
                            return input.hasRTT ? input.rttBucket : nil
                        }
                    }
                    if trackSubscribers {
                        for e in records {
                            let input = inputs[Int(e & 0xFFFF)]
                            if input.hasSubscriber { b.addSubscriber(cell: i, hash: input.subscriberHash) }
                        }
                    }
                    k = j
                }
            }
        }
    }

    /// A cell key's hash: the bucket start and every key word, keyed (`KeyedHash`: key words
    /// are record fields). Fold, table growth, a snapshot's restore and `remapStrings` must
    /// agree; it lives only in this process's memory (the bucket tables). One multiply per
    /// word, where `StableHash.combine` (unkeyed) took two and a longer dependency chain.
    @inline(__always)
    static func keyHash(_ bucketStart: UInt64, _ key: UnsafeBufferPointer<UInt64>, secret: (UInt64, UInt64) = KeyedHash.secret) -> UInt64 {
        var h = KeyedHash.mix(0, bucketStart, secret)
        for v in key { h = KeyedHash.mix(h, v, secret) }
        return h
    }

    /// An address's network as one word: 4 << 56 | /24 for IPv4, 6 << 56 | /48 for IPv6.
    @inline(__always)
    static func prefix(_ ip: BytesView) -> UInt64 {
        if ip.count == 4 {
            return 4 << 56 | UInt64(ip[0]) << 16 | UInt64(ip[1]) << 8 | UInt64(ip[2])
        }
        var v: UInt64 = 6 << 56
        for k in 0..<6 { v |= UInt64(ip[k]) << UInt64(40 - 8 * k) }
        return v
    }

    /// Text of a prefix word: "203.0.113.0/24" or "2001:db8:1::/48".
    static func prefixText(_ v: UInt64) -> String {
        if v >> 56 == 4 {
            return "\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff).0/24"
        }
        let hi = (v & 0xffff_ffff_ffff) << 16
        return IPAddress.v6(hi, 0).description + "/48"
    }

    /// Rewrites the string ids in every cell key through `map` (after the interner was
    /// compacted) and rebuilds the bucket tables, whose hashes include the ids.
    func remapStrings(_ map: [UInt32]) {
        guard !stringPositions.isEmpty else { return }
        for b in held {
            b.rekey { key in
                for k in stringPositions { key[k] = UInt64(map[Int(key[k])]) }
                return key.withUnsafeBufferPointer { Self.keyHash(b.start, $0) }
            }
        }
        last = nil
    }

    /// Every string id used by a cell key, passed to `body` (of the released buckets too when
    /// `includingReleased`: the interner must keep their strings, a snapshot does not save them).
    func forEachStringID(includingReleased: Bool = true, _ body: (UInt32) -> Void) {
        guard !stringPositions.isEmpty else { return }
        for b in includingReleased ? held : buckets + closing {
            for i in 0..<b.count {
                let key = b.key(i)
                for k in stringPositions { body(UInt32(truncatingIfNeeded: key[key.startIndex + k])) }
            }
        }
    }

    /// Moves buckets ending at or before `watermark` to `closing`.
    func close(before watermark: UInt64) {
        guard let first = buckets.first, first.end <= watermark else { return }
        var keep: [BucketCells] = []
        for b in buckets {
            if b.end <= watermark {
                b.finishAdds()
                if !b.dirtyCells.isEmpty || (definition.topK > 0 && b.count > 0) {
                    closing.append(b)
                } else if keepsReleased {
                    release(b)
                }
            } else {
                keep.append(b)
            }
        }
        buckets = keep
        last = nil
    }

    /// Keeps `bucket`, closed and written, for the live tier (when `keepsReleased`).
    func release(_ bucket: BucketCells) {
        guard keepsReleased else { return }
        released.append((bucket, 0))
        if released.count > 1 && released[released.count - 2].bucket.start > bucket.start {
            released.sort { $0.bucket.start < $1.bucket.start }
        }
    }

    /// Drops the released buckets kept longer than `keepMs` (from when this first saw them,
    /// `nowMs` on the wall clock), and the oldest while more than `maxCells` cells are kept.
    /// Always the lowest starts first, and never one starting after a bucket still closing: the
    /// buckets held then stay every bucket from the oldest held on (what `answerOpen` claims).
    func expireReleased(nowMs: UInt64, keepMs: UInt64, maxCells: Int) {
        guard !released.isEmpty else { return }
        let stamp = max(nowMs, 1)
        for i in released.indices where released[i].sinceMs == 0 { released[i].sinceMs = stamp }
        var cells = releasedCells
        let firstClosing = closing.lazy.map(\.start).min() ?? UInt64.max
        var drop = 0
        while drop < released.count, released[drop].bucket.start < firstClosing {
            let (b, since) = released[drop]
            let deadline = since > UInt64.max - keepMs ? UInt64.max : since + keepMs
            guard deadline <= nowMs || cells > maxCells else { break }
            cells -= b.count
            drop += 1
        }
        released.removeFirst(drop)
    }

    /// The dimension values of cell `i`, rendered.
    private func values(_ b: BucketCells, _ i: Int, _ interner: StringInterner) -> [String] {
        let key = b.key(i)
        var values: [String] = []
        values.reserveCapacity(width)
        for (k, d) in definition.dimensions.enumerated() { values.append(Self.text(of: key[key.startIndex + k], d, interner)) }
        return values
    }

    /// Emits the final documents of a closed bucket of a top-K view: its K largest cells by
    /// bytes (ties by records, then by dimension values — the same choice on every replay) and
    /// one "(other)" document with the sums, sketches and latest offset of the rest.
    func emitTopK(bucket b: BucketCells, partition: Int32, interner: StringInterner, into sink: inout some RollupDocumentSink) {
        let top = topCells(b, interner: interner)
        for (i, values) in top { emitCell(b, i, values, partition: partition, into: &sink) }
        guard b.count > top.count else { return }
        var inTop = [Bool](repeating: false, count: b.count)
        for (i, _) in top { inTop[i] = true }
        // Sums saturate and sketches merge as sets: the rest may be taken in any order.
        var other = RollupCell()
        var hll: HyperLogLog? = b.trackSubscribers ? HyperLogLog(precision: b.hllPrecision) : nil
        var rtt: QuantileSketch? = b.trackRTT ? QuantileSketch.emptyRTT : nil
        for i in 0..<b.count where !inTop[i] {
            let c = b.cells[i]
            other.records = CellSum.add(other.records, c.records)
            other.flows = CellSum.add(other.flows, c.flows)
            other.bytesUp = CellSum.add(other.bytesUp, c.bytesUp)
            other.bytesDown = CellSum.add(other.bytesDown, c.bytesDown)
            other.packetsUp = CellSum.add(other.packetsUp, c.packetsUp)
            other.packetsDown = CellSum.add(other.packetsDown, c.packetsDown)
            other.rttCount = CellSum.add(other.rttCount, c.rttCount)
            other.rttSum = CellSum.add(other.rttSum, c.rttSum)
            other.rttMin = min(other.rttMin, c.rttMin)
            other.rttMax = max(other.rttMax, c.rttMax)
            other.lastOffset = max(other.lastOffset, c.lastOffset)
            if b.trackSubscribers { hll?.merge(b.subscriberSketch(i)) }
            if b.trackRTT { rtt?.merge(b.rttSketches[i]) }
        }
        sink.add(document(b, other, Array(repeating: ViewDefinition.otherValue, count: width), partition: partition, hll: hll, rtt: rtt))
    }

    /// A top-K bucket's written cells with their rendered values, in order: the K largest by
    /// bytes (up + down), ties by records, then by dimension values.
    ///
    /// The same cells, in the same order, as sorting every cell by that order, but only the
    /// cells that can be among the K are rendered and sorted: those whose (bytes, records) is at
    /// least the K-th largest, found by one pass with a min-heap of K. A 5-minute bucket of a
    /// subscriber view holds hundreds of thousands of cells for K = 1,000; rendering and sorting
    /// them all cost more than folding their records.
    func topCells(_ b: BucketCells, interner: StringInterner) -> [(Int, [String])] {
        let k = definition.topK
        let n = b.count
        func rank(_ i: Int) -> CellRank {
            let c = b.cells[i]
            return CellRank(bytes: c.bytesUp &+ c.bytesDown, records: c.records)
        }
        var candidates = Array(0..<n)
        if n > k, let least = Self.kthLargest(candidates.lazy.map(rank), k: k) {
            candidates = candidates.filter { rank($0) >= least }
        }
        let rendered = candidates.map { values(b, $0, interner) }
        let order = candidates.indices.sorted { x, y in
            let (rx, ry) = (rank(candidates[x]), rank(candidates[y]))
            if rx != ry { return rx > ry }
            return rendered[x].lexicographicallyPrecedes(rendered[y])
        }
        return order.prefix(k).map { (candidates[$0], rendered[$0]) }
    }

    /// A cell's place in a top-K order before its dimension values: bytes, then records.
    struct CellRank: Comparable {
        var bytes: UInt64
        var records: UInt64
        static func < (a: CellRank, b: CellRank) -> Bool { a.bytes != b.bytes ? a.bytes < b.bytes : a.records < b.records }
    }

    /// The `k`-th largest of `values` (nil when there are fewer than `k`, or `k` < 1): one
    /// pass, keeping the `k` largest seen in a binary min-heap.
    static func kthLargest<T: Comparable>(_ values: some Sequence<T>, k: Int) -> T? {
        guard k >= 1 else { return nil }
        var heap: [T] = []
        heap.reserveCapacity(k)
        for v in values {
            if heap.count < k {
                heap.append(v)
                var c = heap.count - 1
                while c > 0 {
                    let parent = (c - 1) / 2
                    guard heap[c] < heap[parent] else { break }
                    heap.swapAt(c, parent)
                    c = parent
                }
            } else if v > heap[0] {
                heap[0] = v
                var p = 0
                while true {
                    let (l, r) = (2 * p + 1, 2 * p + 2)
                    var m = p
                    if l < k && heap[l] < heap[m] { m = l }
                    if r < k && heap[r] < heap[m] { m = r }
                    if m == p { break }
                    heap.swapAt(p, m)
                    p = m
                }
            }
        }
        return heap.count == k ? heap[0] : nil
    }

    private func document(_ b: BucketCells, _ c: RollupCell, _ values: [String], partition: Int32, hll: HyperLogLog?, rtt: QuantileSketch?) -> RollupDocument {
        RollupDocument(
            view: definition, bucketStart: b.start, partition: partition, dimensionValues: values,
            records: c.records, flows: c.flows, bytesUp: c.bytesUp, bytesDown: c.bytesDown,
            packetsUp: c.packetsUp, packetsDown: c.packetsDown, rttCount: c.rttCount, rttSum: c.rttSum,
            rttMin: c.rttMin, rttMax: c.rttMax, lastOffset: c.lastOffset, subscribers: hll, rtt: rtt)
    }

    private func emitCell(_ b: BucketCells, _ i: Int, _ values: [String], partition: Int32, into sink: inout some RollupDocumentSink) {
        sink.add(
            document(
                b, b.cells[i], values, partition: partition, hll: b.trackSubscribers ? b.subscriberSketch(i) : nil,
                rtt: b.trackRTT ? b.rttSketches[i] : nil))
    }

    /// Emits the dirty cells of `bucket` as documents and marks them clean.
    func emit(bucket b: BucketCells, partition: Int32, interner: StringInterner, into sink: inout some RollupDocumentSink) {
        for i32 in b.dirtyCells {
            let i = Int(i32)
            emitCell(b, i, values(b, i, interner), partition: partition, into: &sink)
            b.cells[i].dirty = false
        }
        b.dirtyCells.removeAll(keepingCapacity: true)
    }

}
