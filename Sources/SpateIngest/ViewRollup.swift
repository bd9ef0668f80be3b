import SpateCodec
import SpateModel

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
    private var key: [UInt64]
    private var last: BucketCells?
    /// The view's dimensions (a copy, read per record without touching `definition`).
    private let dimensions: [Dimension]
    /// For each dimension, its slot among the message's resolved strings (-1: not a string).
    private let stringSlots: [Int]
    /// The key positions that hold string ids (renumbered when the interner is compacted).
    private let stringPositions: [Int]

    init(definition: ViewDefinition, stringFields: [Dimension]) {
        self.definition = definition
        width = definition.dimensions.count
        bucketMs = definition.bucketMs
        key = [UInt64](repeating: 0, count: definition.dimensions.count)
        let slots = definition.dimensions.map { stringFields.firstIndex(of: $0) ?? -1 }
        stringSlots = slots
        stringPositions = slots.indices.filter { slots[$0] >= 0 }
        dimensions = definition.dimensions
    }

    var cellCount: Int { buckets.reduce(0) { $0 + $1.count } + closing.reduce(0) { $0 + $1.count } }
    var memoryBytes: Int { buckets.reduce(0) { $0 + $1.memoryBytes } + closing.reduce(0) { $0 + $1.memoryBytes } }
    var isDirty: Bool { (definition.topK == 0 && buckets.contains { !$0.dirtyCells.isEmpty }) || !closing.isEmpty }

    @inline(__always)
    private func bucket(start: UInt64, offset: Int64, maxEventTsBefore: UInt64) -> BucketCells {
        if let last, last.start == start { return last }
        if let b = buckets.first(where: { $0.start == start }) {
            last = b
            return b
        }
        let b = BucketCells(
            start: start, width: definition.bucketMs, keyWidth: width, firstOffset: offset,
            maxEventTsBeforeFirst: maxEventTsBefore, view: definition)
        buckets.append(b)
        buckets.sort { $0.start < $1.start }
        last = b
        return b
    }

    /// Folds one record. `ids` are the message's interned strings (`stride` per record, this
    /// record's from `idBase`); the RTT bucket and subscriber hash are computed once per record
    /// by the caller, for every view.
    @inline(__always)
    func fold(
        record r: DecodedRecord, ids: UnsafeBufferPointer<UInt32>, idBase: Int, bucketStart: UInt64,
        offset: Int64, maxEventTsBefore: UInt64, rttBucket: Int?, subscriberHash: UInt64?
    ) {
        let b = bucket(start: bucketStart, offset: offset, maxEventTsBefore: maxEventTsBefore)
        let i = key.withUnsafeMutableBufferPointer { kp -> Int in
            for k in 0..<kp.count {
                let v: UInt64
                switch dimensions[k] {
                case .probe: v = UInt64(r.probeID)
                case .interface: v = UInt64(r.interfaceIndex)
                case .l4Protocol: v = UInt64(r.l4Protocol)
                case .serverPort: v = UInt64(r.serverPort)
                case .serverPrefix: v = Self.prefix(r.serverIP)
                case .clientPrefix: v = Self.prefix(r.clientIP)
                default: v = UInt64(ids[idBase + stringSlots[k]])
                }
                kp[k] = v
            }
            return b.cellIndex(UnsafePointer(kp.baseAddress!), hash: Self.keyHash(bucketStart, UnsafeBufferPointer(kp)))
        }
        let rtt = r.rttMicros
        let newlyDirty = b.cells.withUnsafeMutableBufferPointer { cells -> Bool in
            var c = cells[i]
            let wasClean = !c.dirty
            c.dirty = true
            c.records = CellSum.add(c.records, 1)
            c.flows = CellSum.add(c.flows, UInt64(r.flows))
            c.bytesUp = CellSum.add(c.bytesUp, r.bytesUp)
            c.bytesDown = CellSum.add(c.bytesDown, r.bytesDown)
            c.packetsUp = CellSum.add(c.packetsUp, r.packetsUp)
            c.packetsDown = CellSum.add(c.packetsDown, r.packetsDown)
            c.lastOffset = offset
            if rtt > 0 {
                c.rttCount = CellSum.add(c.rttCount, 1)
                c.rttSum = CellSum.add(c.rttSum, UInt64(rtt))
                if rtt < c.rttMin { c.rttMin = rtt }
                if rtt > c.rttMax { c.rttMax = rtt }
            }
            cells[i] = c
            return wasClean
        }
        if newlyDirty { b.dirtyCells.append(Int32(i)) }
        if rtt > 0 && b.trackRTT { b.rttSketches[i].add(bucket: rttBucket) }
        if b.trackSubscribers, let s = subscriberHash { b.subscriberSketches[i].add(hash: s) }
    }

    /// A cell key's hash: the bucket start and every key word. Fold and `remapStrings` must agree.
    @inline(__always)
    static func keyHash(_ bucketStart: UInt64, _ key: UnsafeBufferPointer<UInt64>) -> UInt64 {
        var h = bucketStart
        for v in key { h = StableHash.combine(h, v) }
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
        for b in buckets + closing {
            b.rekey { key in
                for k in stringPositions { key[k] = UInt64(map[Int(key[k])]) }
                return key.withUnsafeBufferPointer { Self.keyHash(b.start, $0) }
            }
        }
        last = nil
    }

    /// Every string id used by a cell key, passed to `body`.
    func forEachStringID(_ body: (UInt32) -> Void) {
        guard !stringPositions.isEmpty else { return }
        for b in buckets + closing {
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
                if !b.dirtyCells.isEmpty || (definition.topK > 0 && b.count > 0) { closing.append(b) }
            } else {
                keep.append(b)
            }
        }
        buckets = keep
        last = nil
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
        let rendered = (0..<b.count).map { values(b, $0, interner) }
        let order = (0..<b.count).sorted { x, y in
            let (cx, cy) = (b.cells[x], b.cells[y])
            let (bx, by) = (cx.bytesUp &+ cx.bytesDown, cy.bytesUp &+ cy.bytesDown)
            if bx != by { return bx > by }
            if cx.records != cy.records { return cx.records > cy.records }
            return rendered[x].lexicographicallyPrecedes(rendered[y])
        }
        for i in order.prefix(definition.topK) { emitCell(b, i, rendered[i], partition: partition, into: &sink) }
        let rest = order.dropFirst(definition.topK)
        guard !rest.isEmpty else { return }
        var other = RollupCell()
        var hll: HyperLogLog? = b.trackSubscribers ? HyperLogLog(precision: b.hllPrecision) : nil
        var rtt: QuantileSketch? = b.trackRTT ? QuantileSketch() : nil
        for i in rest {
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
            if b.trackSubscribers { hll?.merge(b.subscriberSketches[i]) }
            if b.trackRTT { rtt?.merge(b.rttSketches[i]) }
        }
        sink.add(document(b, other, Array(repeating: ViewDefinition.otherValue, count: width), partition: partition, hll: hll, rtt: rtt))
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
                b, b.cells[i], values, partition: partition, hll: b.trackSubscribers ? b.subscriberSketches[i] : nil,
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
