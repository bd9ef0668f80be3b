import CPrefetch
import SpateModel

/// Cell sums never wrap: they stop at `max`, the largest value the store's `long` holds.
/// With the per-record ceilings of `RecordLimits` (≤ 2^46 per record) a sum below `max`
/// plus one record cannot overflow `UInt64`, so the saturation is one compare, no trap.
enum CellSum {
    static let max = UInt64(Int64.max)

    @inline(__always)
    static func add(_ a: UInt64, _ v: UInt64) -> UInt64 { a.saturatingAdd(v, limit: max) }
}

/// The summed metrics of one (view, bucket, dimensions) cell: 80 bytes, so that a cell spans
/// two cache lines, never three (an array's elements start 16-byte aligned).
struct RollupCell {
    /// The record count, and in bit 63 the dirty flag: every sum stops at `CellSum.max`
    /// (Int64.max), so bit 63 of a sum is always clear. A flag of its own would make the cell
    /// 88 bytes: 8 more per cell, and a third cache line for some cells.
    private var recordsAndDirty: UInt64 = 0
    var flows: UInt64 = 0
    var bytesUp: UInt64 = 0
    var bytesDown: UInt64 = 0
    var packetsUp: UInt64 = 0
    var packetsDown: UInt64 = 0
    var rttCount: UInt64 = 0
    var rttSum: UInt64 = 0
    var rttMin: UInt32 = .max
    var rttMax: UInt32 = 0
    /// The offset of the last record folded in: the document's version.
    var lastOffset: Int64 = -1

    var records: UInt64 {
        get { recordsAndDirty & CellSum.max }
        set { recordsAndDirty = recordsAndDirty & ~CellSum.max | newValue & CellSum.max }
    }

    /// Whether the cell changed since its last flush.
    var dirty: Bool {
        get { recordsAndDirty > CellSum.max }
        set { recordsAndDirty = recordsAndDirty & CellSum.max | (newValue ? ~CellSum.max : 0) }
    }
}

/// A bucket table's memory seen by a prefetch pass: the lines `cellIndex` and a cell update
/// will touch, asked for ahead for a whole chunk of records in a tight loop without references,
/// so the processor overlaps their cache misses instead of taking them one after another.
///
/// Why prefetches: the loads this pass used to make (summed into a sink) each waited for its
/// line before retiring, so the loop stalled as soon as the processor's load queue filled; a
/// prefetch retires at once. Measured with the fold bench: 5–8% less CPU per record.
struct TablePrefetch {
    let slots: UnsafeBufferPointer<UInt64>
    let mask: Int
    let keys: UnsafeBufferPointer<UInt64>
    let width: Int
    let cells: UnsafeBufferPointer<RollupCell>

    /// Prefetches the slot a lookup of `hash` probes first.
    @inline(__always)
    func prefetchSlot(hash: UInt64) {
        if let base = slots.baseAddress { spate_prefetch(base + (Int(truncatingIfNeeded: hash) & mask)) }
    }

    /// Prefetches the key and the cell that slot points to, if any: the slot itself is read, so
    /// call this once it has had time to arrive.
    @inline(__always)
    func prefetchCell(hash: UInt64) {
        let e = slots[Int(truncatingIfNeeded: hash) & mask]
        guard e != 0 else { return }
        let i = Int(e & 0xFFFF_FFFF) - 1
        guard i < cells.count, i * width < keys.count, let cellBase = cells.baseAddress, let keyBase = keys.baseAddress else { return }
        spate_prefetch(keyBase + i * width)
        Self.prefetch(cellBase + i)
    }

    /// Prefetches both cache lines a cell may span: its first and last bytes lie one in each.
    @inline(__always)
    static func prefetch(_ cell: UnsafePointer<RollupCell>) {
        let raw = UnsafeRawPointer(cell)
        spate_prefetch(raw)
        spate_prefetch(raw + (MemoryLayout<RollupCell>.size - 1))
    }
}

/// The cells of one time bucket of one view: an open-addressing table from dimension keys
/// (fixed-width `UInt64` words) to cells, plus the bucket's resume information.
final class BucketCells {
    let start: UInt64
    let end: UInt64
    let width: Int
    /// The offset of the first record folded into this bucket, and the partition's maximum
    /// event time just before it: where a replay must start to rebuild this bucket exactly.
    let firstOffset: Int64
    let maxEventTsBeforeFirst: UInt64
    private(set) var keys: [UInt64] = []
    var cells: [RollupCell] = []
    /// The cells' subscriber sketches, read through `subscriberSketch(_:)`: adds wait in
    /// `pendingSubscribers` first.
    private var subscriberSketches: [HyperLogLog] = []
    var rttSketches: [QuantileSketch] = []
    /// Subscriber-sketch adds not applied yet, in arrival order: cell index << 32 | the hash's
    /// sparse word (`HyperLogLog.sparseWord`).
    ///
    /// Why: adding to a cell's sketch at once reads the sketch and its buffer, two or three
    /// cache lines of their own for every record, and in a bucket with thousands of sketches
    /// they are seldom in cache. Appended here, an add writes the line the previous add wrote;
    /// applying the adds grouped by cell reads each sketch once per group. Each sketch receives
    /// the same words in the same order, so its state is the same as with adds made at once.
    /// (An RTT sketch is a few lines of counts, prefetched before its adds: a log measured no
    /// faster.)
    private var pendingSubscribers: [UInt64] = []
    /// Open addressing: each slot holds `hash >> 32 << 32 | (cell index + 1)`, 0 when empty,
    /// so a probe compares 32 hash bits (and, by the slot's position, more) without touching
    /// the key arrays; on a match it compares the key words. Key hashes are not kept per cell
    /// (8 bytes a cell, ~10^5 cells per partition and bucket in a subscriber view): growing the
    /// table computes them again from the keys.
    private var slots: [UInt64]
    private var mask: Int
    /// Indices of cells changed since their last flush.
    var dirtyCells: [Int32] = []
    let trackSubscribers: Bool
    let trackRTT: Bool
    let hllPrecision: Int
    /// Approximate bytes held by the sketches.
    private(set) var sketchBytes = 0

    /// `expectedCells`: room to reserve (keys, cells, sketches, and a table that holds them
    /// without growing); 0 starts small.
    init(
        start: UInt64, width: UInt64, keyWidth: Int, firstOffset: Int64, maxEventTsBeforeFirst: UInt64, view: ViewDefinition,
        expectedCells: Int = 0
    ) {
        self.start = start
        end = start > UInt64.max - width ? .max : start + width
        self.width = keyWidth
        self.firstOffset = firstOffset
        self.maxEventTsBeforeFirst = maxEventTsBeforeFirst
        trackSubscribers = view.sketches.contains(.subscribers)
        trackRTT = view.sketches.contains(.rtt)
        hllPrecision = view.hllPrecision
        var size = 64
        while size < 2 * expectedCells { size *= 2 }
        slots = [UInt64](repeating: 0, count: size)
        mask = size - 1
        if expectedCells > 0 {
            keys.reserveCapacity(expectedCells * keyWidth)
            cells.reserveCapacity(expectedCells)
            if trackSubscribers { subscriberSketches.reserveCapacity(expectedCells) }
            if trackRTT { rttSketches.reserveCapacity(expectedCells) }
        }
    }

    var count: Int { cells.count }

    /// Pending adds beyond which they are applied: 128 KB per open bucket (a closed bucket
    /// keeps none, `finishAdds`), and on average ten or more adds per sketch even in a bucket
    /// of a thousand cells.
    static let pendingLimit = 16384

    /// Adds the subscriber of `hash` to cell `i`'s sketch.
    @inline(__always)
    func addSubscriber(cell i: Int, hash: UInt64) {
        pendingSubscribers.append(UInt64(truncatingIfNeeded: i) << 32 | UInt64(HyperLogLog.sparseWord(hash: hash)))
        if pendingSubscribers.count >= Self.pendingLimit { applyPending() }
    }

    /// Cell `i`'s subscriber sketch, with every add made so far.
    func subscriberSketch(_ i: Int) -> HyperLogLog {
        applyPending()
        return subscriberSketches[i]
    }

    /// Replaces cell `i`'s subscriber sketch (a snapshot's restore).
    func setSubscriberSketch(_ i: Int, _ sketch: HyperLogLog) {
        applyPending()
        subscriberSketches[i] = sketch
    }

    /// Applies every pending sketch add, grouped by cell (a stable sort: each sketch gets its
    /// words in arrival order).
    func applyPending() {
        let n = pendingSubscribers.count
        guard n > 0 else { return }
        pendingSubscribers.withUnsafeMutableBufferPointer { pending in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: n) { scratch in
                RadixSort.sort(pending, scratch: scratch, fromBit: 32)
            }
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: n) { words in
                subscriberSketches.withUnsafeMutableBufferPointer { sketches in
                    var k = 0
                    while k < n {
                        let cell = pending[k] >> 32
                        var j = k
                        while j < n && pending[j] >> 32 == cell {
                            words[j - k] = UInt32(truncatingIfNeeded: pending[j])
                            j += 1
                        }
                        sketches[Int(cell)].add(sparseWords: UnsafeBufferPointer(rebasing: words[0..<(j - k)]))
                        k = j
                    }
                }
            }
        }
        pendingSubscribers.removeAll(keepingCapacity: true)
    }

    /// Applies every pending add and frees the log: the bucket has closed and takes no more.
    func finishAdds() {
        applyPending()
        pendingSubscribers = []
    }

    /// The index of the cell for `key` (`width` words), creating it when new.
    @inline(__always)
    func cellIndex(_ key: UnsafePointer<UInt64>, hash: UInt64) -> Int {
        var slot = Int(truncatingIfNeeded: hash) & mask
        let tag = hash & 0xFFFF_FFFF_0000_0000
        while true {
            let e = slots[slot]
            if e == 0 { break }
            if e & 0xFFFF_FFFF_0000_0000 == tag {
                let i = Int(e & 0xFFFF_FFFF) - 1
                if keyEquals(i, key) { return i }
            }
            slot = (slot + 1) & mask
        }
        let i = cells.count
        keys.append(contentsOf: UnsafeBufferPointer(start: key, count: width))
        cells.append(RollupCell())
        if trackSubscribers { subscriberSketches.append(HyperLogLog(precision: hllPrecision)) }
        if trackRTT { rttSketches.append(QuantileSketch.emptyRTT) }
        slots[slot] = tag | UInt64(i + 1)
        if cells.count * 2 > slots.count { grow() }
        return i
    }

    /// The table as raw memory for a prefetch pass (`TablePrefetch`), valid inside `body`.
    @inline(__always)
    func withPrefetch<R>(_ body: (TablePrefetch) -> R) -> R {
        slots.withUnsafeBufferPointer { slots in
            keys.withUnsafeBufferPointer { keys in
                cells.withUnsafeBufferPointer { cells in
                    body(TablePrefetch(slots: slots, mask: mask, keys: keys, width: width, cells: cells))
                }
            }
        }
    }

    /// Prefetches what adding the records of `entries` (cell << 16 | position in `inputs`, in
    /// bits 0..<48) to their cells will touch: every cell (both its lines; the lookup phase
    /// brought them in, but a chunk's lookups can push them out of the first-level cache
    /// again), every RTT sketch, then (once those have had time to arrive) the count each RTT
    /// add updates.
    func prefetchUpdates(entries: UnsafeBufferPointer<UInt64>, inputs: UnsafeBufferPointer<FoldInput>) {
        cells.withUnsafeBufferPointer { cells in
            guard let base = cells.baseAddress else { return }
            for e in entries {
                let cell = Int(e >> 16 & 0xFFFF_FFFF)
                if cell < cells.count { TablePrefetch.prefetch(base + cell) }
            }
        }
        guard trackRTT else { return }
        rttSketches.withUnsafeBufferPointer { sketches in
            guard let base = sketches.baseAddress else { return }
            for e in entries {
                let cell = Int(e >> 16 & 0xFFFF_FFFF)
                if inputs[Int(e & 0xFFFF)].hasRTT && cell < sketches.count { spate_prefetch(base + cell) }
            }
            for e in entries {
                let input = inputs[Int(e & 0xFFFF)]
                let cell = Int(e >> 16 & 0xFFFF_FFFF)
                if input.hasRTT, let bucket = input.rttBucket, cell < sketches.count, let p = sketches[cell].countAddress(bucket: bucket) {
                    spate_prefetch(p)
                }
            }
        }
    }

    @inline(__always)
    private func keyEquals(_ i: Int, _ key: UnsafePointer<UInt64>) -> Bool {
        let base = i * width
        for w in 0..<width where keys[base + w] != key[w] { return false }
        return true
    }

    private func grow() {
        rebuild(size: slots.count * 2) { i in
            keys.withUnsafeBufferPointer { ViewRollup.keyHash(start, UnsafeBufferPointer(rebasing: $0[(i * width)..<((i + 1) * width)])) }
        }
    }

    /// Refills the table, `size` slots, with every cell by its key hash `hash(i)`.
    private func rebuild(size: Int, hash: (Int) -> UInt64) {
        slots = [UInt64](repeating: 0, count: size)
        mask = size - 1
        for i in 0..<cells.count {
            let h = hash(i)
            var slot = Int(truncatingIfNeeded: h) & mask
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            slots[slot] = h & 0xFFFF_FFFF_0000_0000 | UInt64(i + 1)
        }
    }

    /// Rewrites every key in place with `transform` (which returns the key's new hash) and
    /// rebuilds the table: used when the interner is compacted and string ids change.
    func rekey(_ transform: (inout [UInt64]) -> UInt64) {
        var key = [UInt64](repeating: 0, count: width)
        var hashes = [UInt64](repeating: 0, count: cells.count)
        for i in 0..<cells.count {
            for w in 0..<width { key[w] = keys[i * width + w] }
            hashes[i] = transform(&key)
            for w in 0..<width { keys[i * width + w] = key[w] }
        }
        rebuild(size: slots.count) { hashes[$0] }
    }

    /// The key words of cell `i`.
    func key(_ i: Int) -> ArraySlice<UInt64> { keys[(i * width)..<((i + 1) * width)] }

    /// Approximate memory held, for backpressure accounting.
    var memoryBytes: Int {
        var total = cells.count * (MemoryLayout<RollupCell>.stride + 8 * width) + slots.count * 8
        if trackSubscribers { total += subscriberSketches.reduce(0) { $0 + $1.memoryBytes } + pendingSubscribers.capacity * 8 }
        if trackRTT { total += rttSketches.reduce(0) { $0 + $1.memoryBytes } }
        return total
    }
}
