/// A mergeable distinct-count sketch (HyperLogLog with HLL++'s sparse mode).
///
/// Small sets are kept sparse: each distinct hash contributes one 32-bit entry at precision
/// 25, which is nearly exact up to tens of thousands of items. Past a quarter of the dense
/// register count the sketch turns dense: 2^p registers, standard error 1.04/√(2^p) (0.81% at
/// p = 14, 0.41% at p = 16). The estimate uses Ertl's improved estimator (2017), unbiased over
/// the whole range without empirical bias tables. Merging is exact: merge(A, B) equals the
/// sketch of A ∪ B.
public struct HyperLogLog: Sendable, Hashable {
    /// Dense precision: 2^p registers.
    public let precision: Int
    /// Sparse entries at precision 25, keyed by index' (empty once dense).
    private var entries = SparseEntries()
    private var dense = false
    private var registers: [UInt8]

    public static let sparsePrecision = 25

    public init(precision: Int) {
        precondition((4...16).contains(precision), "HyperLogLog precision must be 4...16")
        self.precision = precision
        registers = []
    }

    public var isSparse: Bool { !dense }

    /// Adds an item by its 64-bit hash (use a well-mixed hash).
    @inline(__always)
    public mutating func add(hash: UInt64) {
        if !dense {
            let p2 = Self.sparsePrecision
            let index = UInt32(truncatingIfNeeded: hash >> UInt64(64 - p2))
            let rho = UInt8(min((hash << UInt64(p2)).leadingZeroBitCount + 1, 64 - p2 + 1))
            if entries.update(index: index, rho: rho) && entries.count > (1 << precision) / 4 { densify() }
        } else {
            addDense(hash: hash)
        }
    }

    /// Reads the memory `add(hash:)` would touch first and returns it (meaningless to the
    /// caller): a read-ahead over many adds lets the processor overlap their cache misses.
    @inline(__always)
    public func readAhead(hash: UInt64) -> UInt32 {
        if !dense { return entries.readAhead(index: UInt32(truncatingIfNeeded: hash >> UInt64(64 - Self.sparsePrecision))) }
        return UInt32(registers[Int(hash >> UInt64(64 - precision))])
    }

    @inline(__always)
    private mutating func addDense(hash: UInt64) {
        let index = Int(hash >> UInt64(64 - precision))
        let rho = UInt8(min((hash << UInt64(precision)).leadingZeroBitCount + 1, 64 - precision + 1))
        if rho > registers[index] { registers[index] = rho }
    }

    private mutating func densify() {
        guard !dense else { return }
        registers = [UInt8](repeating: 0, count: 1 << precision)
        dense = true
        let old = entries
        entries = SparseEntries()
        old.forEach { index, rho in mergeSparseEntry(index: index, rho: rho) }
    }

    /// Folds a precision-25 entry into the dense registers (HLL++ conversion).
    private mutating func mergeSparseEntry(index: UInt32, rho: UInt8) {
        let extra = Self.sparsePrecision - precision
        let denseIndex = Int(index >> UInt32(extra))
        let low = index & ((1 << UInt32(extra)) - 1)
        let r: UInt8
        if low != 0 {
            // The first set bit among the `extra` low bits decides rho at precision p.
            r = UInt8(low.leadingZeroBitCount - (32 - extra) + 1)
        } else {
            r = rho + UInt8(extra)
        }
        if r > registers[denseIndex] { registers[denseIndex] = r }
    }

    /// Adds every item of `other` (same precision).
    public mutating func merge(_ other: HyperLogLog) {
        precondition(other.precision == precision, "merging HyperLogLogs of different precision")
        if !other.dense {
            let theirs = other.entries
            if !dense {
                theirs.forEach { i, r in _ = entries.update(index: i, rho: r) }
                if entries.count > (1 << precision) / 4 { densify() }
            } else {
                theirs.forEach { i, r in mergeSparseEntry(index: i, rho: r) }
            }
        } else {
            densify()
            for i in 0..<registers.count where other.registers[i] > registers[i] { registers[i] = other.registers[i] }
        }
    }

    /// The estimated number of distinct items.
    public var estimate: Double {
        if !dense {
            let s = entries
            // Linear counting over the 2^25 sparse buckets.
            let m = Double(1 << Self.sparsePrecision)
            let empty = m - Double(s.count)
            return m * log(m / empty)
        }
        return Self.ertlEstimate(registers: registers, precision: precision)
    }

    /// Ertl, "New cardinality estimation algorithms for HyperLogLog sketches", Algorithm 6.
    static func ertlEstimate(registers: [UInt8], precision p: Int) -> Double {
        let q = 64 - p
        let m = Double(1 << p)
        var counts = [Int](repeating: 0, count: q + 2)
        for r in registers { counts[Int(r)] += 1 }
        var z = m * tau(1 - Double(counts[q + 1]) / m)
        for k in stride(from: q, through: 1, by: -1) {
            z = 0.5 * (z + Double(counts[k]))
        }
        z += m * sigma(Double(counts[0]) / m)
        let alphaInf = 1 / (2 * log(2.0))
        return alphaInf * m * m / z
    }

    private static func sigma(_ x: Double) -> Double {
        if x == 1 { return .infinity }
        var x = x
        var y = 1.0
        var z = x
        var previous: Double
        repeat {
            x *= x
            previous = z
            z += x * y
            y += y
        } while z != previous
        return z
    }

    private static func tau(_ x: Double) -> Double {
        if x == 0 || x == 1 { return 0 }
        var x = x
        var y = 1.0
        var z = 1 - x
        var previous: Double
        repeat {
            x = x.squareRoot()
            previous = z
            y *= 0.5
            z -= (1 - x) * (1 - x) * y
        } while z != previous
        return z / 3
    }

    // MARK: serialization

    /// Compact bytes: version 1; sparse = [1, p, count varint, delta-varint sorted entries];
    /// dense = [2, p, 6-bit packed registers].
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        if !dense {
            let s = entries
            out.append(1)
            out.append(UInt8(precision))
            let entries = s.sorted
            Varint.append(UInt64(entries.count), to: &out)
            var previous: UInt32 = 0
            for e in entries {
                Varint.append(UInt64(e - previous), to: &out)
                previous = e
            }
        } else {
            out.append(2)
            out.append(UInt8(precision))
            out.reserveCapacity(2 + registers.count * 6 / 8 + 1)
            var acc: UInt32 = 0
            var bits = 0
            for r in registers {
                acc |= UInt32(r & 0x3f) << UInt32(bits)
                bits += 6
                while bits >= 8 {
                    out.append(UInt8(truncatingIfNeeded: acc))
                    acc >>= 8
                    bits -= 8
                }
            }
            if bits > 0 { out.append(UInt8(truncatingIfNeeded: acc)) }
        }
        return out
    }

    /// Parses `serialized()` output; nil when malformed. Validates every entry and register
    /// (bytes come from the store: hostile until checked), so no later merge or estimate traps.
    public init?(serialized bytes: [UInt8]) {
        guard bytes.count >= 2, (4...16).contains(Int(bytes[1])) else { return nil }
        precision = Int(bytes[1])
        switch bytes[0] {
        case 1:
            var reader = Varint.Reader(bytes: bytes, position: 2)
            guard let count = reader.next(), count <= 1 << 25 else { return nil }
            var s = SparseEntries()
            var previous: UInt64 = 0
            let maxRho = UInt64(64 - Self.sparsePrecision + 1)
            for _ in 0..<count {
                guard let d = reader.next() else { return nil }
                let (next, overflow) = previous.addingReportingOverflow(d)
                guard !overflow else { return nil }
                previous = next
                // index < 2^25, rho in 1...40: anything else was not written by `serialized()`.
                let index = previous >> 6
                let rho = previous & 0x3f
                guard index < 1 << UInt64(Self.sparsePrecision), rho >= 1, rho <= maxRho else { return nil }
                _ = s.update(index: UInt32(index), rho: UInt8(rho))
            }
            entries = s
            registers = []
        case 2:
            let m = 1 << precision
            guard bytes.count >= 2 + (m * 6 + 7) / 8 else { return nil }
            var regs = [UInt8](repeating: 0, count: m)
            var acc: UInt32 = 0
            var bits = 0
            var pos = 2
            for i in 0..<m {
                while bits < 6 {
                    acc |= UInt32(bytes[pos]) << UInt32(bits)
                    pos += 1
                    bits += 8
                }
                let r = UInt8(acc & 0x3f)
                guard Int(r) <= 64 - precision + 1 else { return nil }
                regs[i] = r
                acc >>= 6
                bits -= 6
            }
            dense = true
            registers = regs
        default:
            return nil
        }
    }

    /// Approximate bytes held in memory (for memory accounting).
    public var memoryBytes: Int { dense ? registers.count + 32 : 32 + entries.capacity * 4 }
}

/// The sparse form's entries: an open-addressing set of `index << 6 | rho` words keyed by
/// index (0 marks an empty slot: rho is never 0). Cheaper than a Dictionary per add.
struct SparseEntries: Sendable, Hashable {
    private var slots: [UInt32] = [UInt32](repeating: 0, count: 16)
    /// `slots.count - 1`, kept here so that a probe's address depends on this struct only, not
    /// on the array's header (one dependent cache miss less per add in a large table).
    private var mask = 15
    private(set) var count = 0

    var capacity: Int { slots.count }

    /// Sets rho for `index` to the larger of old and new; true when `index` was new.
    @inline(__always)
    mutating func update(index: UInt32, rho: UInt8) -> Bool {
        var slot = Int(truncatingIfNeeded: index &* 0x9E37_79B1) & mask
        while true {
            let e = slots[slot]
            if e == 0 {
                slots[slot] = index << 6 | UInt32(rho)
                count += 1
                if count * 4 > slots.count * 3 { grow() }
                return true
            }
            if e >> 6 == index {
                if UInt32(rho) > e & 0x3f { slots[slot] = index << 6 | UInt32(rho) }
                return false
            }
            slot = (slot + 1) & mask
        }
    }

    /// The first slot `update(index:rho:)` probes for `index`, read (see `HyperLogLog.readAhead`).
    @inline(__always)
    func readAhead(index: UInt32) -> UInt32 { slots[Int(truncatingIfNeeded: index &* 0x9E37_79B1) & mask] }

    private mutating func grow() {
        let old = slots
        slots = [UInt32](repeating: 0, count: old.count * 2)
        mask = slots.count - 1
        count = 0
        for e in old where e != 0 { _ = update(index: e >> 6, rho: UInt8(e & 0x3f)) }
    }

    func forEach(_ body: (UInt32, UInt8) -> Void) {
        for e in slots where e != 0 { body(e >> 6, UInt8(e & 0x3f)) }
    }

    /// The entries as sorted `index << 6 | rho` words.
    var sorted: [UInt32] { slots.filter { $0 != 0 }.sorted() }

    static func == (a: SparseEntries, b: SparseEntries) -> Bool { a.count == b.count && a.sorted == b.sorted }

    func hash(into hasher: inout Hasher) {
        var sum: UInt64 = 0
        forEach { i, r in sum &+= UInt64(i << 6 | UInt32(r)) &* 0x9E37_79B9_7F4A_7C15 }
        hasher.combine(count)
        hasher.combine(sum)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Protobuf-style unsigned varints, used by the sketches' compact encodings.
public enum Varint {
    public static func append(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Reads varints one after another.
    public struct Reader {
        let bytes: [UInt8]
        public var position: Int

        public init(bytes: [UInt8], position: Int) {
            self.bytes = bytes
            self.position = position
        }

        /// The next varint; nil at the end or on a malformed one.
        public mutating func next() -> UInt64? {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while position < bytes.count {
                let b = bytes[position]
                position += 1
                guard shift < 64 else { return nil }
                result |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return result }
                shift += 7
            }
            return nil
        }
    }
}
