#if canImport(Glibc)
import Glibc
#endif

/// A mergeable quantile sketch with relative-error guarantees (DDSketch, Masson et al. 2019).
///
/// Values ≥ 1 fall into logarithmic buckets of ratio γ = (1+α)/(1−α); a quantile is answered
/// with the bucket's midpoint, so every returned value is within relative error α of the true
/// value of that rank. Values below 1 (e.g. RTT 0 µs) count in a dedicated zero bucket.
/// Merging adds bucket counts and is exact. Default α = 1%.
public struct QuantileSketch: Sendable, Hashable {
    public let relativeAccuracy: Double
    private let gamma: Double
    private let logGamma: Double
    /// counts[i] belongs to bucket index `offset + i`.
    private var counts: [UInt64] = []
    private var offset = 0
    public private(set) var zeroCount: UInt64 = 0
    public private(set) var count: UInt64 = 0

    public init(relativeAccuracy: Double = 0.01) {
        precondition(relativeAccuracy > 0 && relativeAccuracy < 1)
        self.relativeAccuracy = relativeAccuracy
        gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy)
        logGamma = log(gamma)
    }

    /// The bucket of value `v` (≥ 1): ⌈log_γ v⌉.
    @inline(__always)
    func index(_ v: Double) -> Int { Int((log(v) / logGamma).rounded(.up)) }

    /// Adds `value` `times` times.
    @inline(__always)
    public mutating func add(_ value: Double, times: UInt64 = 1) {
        add(bucket: bucket(of: value), times: times)
    }

    /// The bucket `value` falls into (nil: the zero bucket), so a caller adding one value to
    /// several sketches of the same accuracy computes the logarithm once.
    @inline(__always)
    public func bucket(of value: Double) -> Int? { value >= 1 ? index(value) : nil }

    /// Adds `times` values of bucket `i` (from `bucket(of:)` of a sketch of the same accuracy).
    @inline(__always)
    public mutating func add(bucket i: Int?, times: UInt64 = 1) {
        // Counts saturate: a sketch restored from the store may already hold any count.
        count = count.saturatingAdd(times)
        guard let i else {
            zeroCount = zeroCount.saturatingAdd(times)
            return
        }
        cover(i, i)
        counts[i - offset] = counts[i - offset].saturatingAdd(times)
    }

    /// Grows the counts with zeros so that they hold buckets `lo...hi`.
    @inline(__always)
    private mutating func cover(_ lo: Int, _ hi: Int) {
        if counts.isEmpty {
            offset = lo
            counts = [UInt64](repeating: 0, count: hi - lo + 1)
            return
        }
        if lo < offset {
            counts.insert(contentsOf: repeatElement(0, count: offset - lo), at: 0)
            offset = lo
        }
        if hi >= offset + counts.count { counts.append(contentsOf: repeatElement(0, count: hi - offset - counts.count + 1)) }
    }

    /// Adds one value to bucket `bucket(k)` for each k in `0..<n` where it is not nil (nil: no
    /// value; this never adds to the zero bucket). The same state as those `add(bucket:)` calls
    /// one by one, with the counts checked and grown once instead of at every add. `bucket` is
    /// called twice per k and must return the same both times.
    @inline(__always)
    public mutating func add(_ n: Int, nonZeroBuckets bucket: (Int) -> Int?) {
        var lo = Int.max
        var hi = Int.min
        var added: UInt64 = 0
        for k in 0..<n {
            guard let i = bucket(k) else { continue }
            if i < lo { lo = i }
            if i > hi { hi = i }
            added += 1
        }
        guard added > 0 else { return }
        count = count.saturatingAdd(added)
        cover(lo, hi)
        let base = offset
        counts.withUnsafeMutableBufferPointer { c in
            for k in 0..<n {
                if let i = bucket(k) { c[i - base] = c[i - base].saturatingAdd(1) }
            }
        }
    }

    /// Where the count `add(bucket:)` would update for bucket `i` lies (nil: outside the counts,
    /// an add would grow them), for a prefetch hint only: the address is never to be read or
    /// written through, and is stale after the sketch changes.
    @inline(__always)
    public func countAddress(bucket i: Int) -> UnsafeRawPointer? {
        let k = i &- offset
        guard k >= 0 && k < counts.count else { return nil }
        return counts.withUnsafeBufferPointer { $0.baseAddress.map { UnsafeRawPointer($0 + k) } }
    }

    public mutating func merge(_ other: QuantileSketch) {
        precondition(other.relativeAccuracy == relativeAccuracy, "merging sketches of different accuracy")
        zeroCount = zeroCount.saturatingAdd(other.zeroCount)
        count = count.saturatingAdd(other.count)
        guard !other.counts.isEmpty else { return }
        if counts.isEmpty {
            counts = other.counts
            offset = other.offset
            return
        }
        let low = min(offset, other.offset)
        let high = max(offset + counts.count, other.offset + other.counts.count)
        if low < offset {
            counts.insert(contentsOf: repeatElement(0, count: offset - low), at: 0)
            offset = low
        }
        if high > offset + counts.count { counts.append(contentsOf: repeatElement(0, count: high - offset - counts.count)) }
        for (k, c) in other.counts.enumerated() where c > 0 {
            // Merged counts of sketches read from the store saturate, never trap.
            counts[other.offset + k - offset] = counts[other.offset + k - offset].saturatingAdd(c)
        }
    }

    /// The value at quantile `q` ∈ [0, 1] (lower rank: the item at rank ⌊q·(n−1)⌋ of the
    /// sorted values); nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        // Double(count − 1) rounds up to 2^64 for counts near UInt64.max: clamp before converting.
        let position = (min(max(q.isNaN ? 0 : q, 0), 1) * Double(count - 1)).rounded(.down)
        let rank = position >= 18_446_744_073_709_551_616 ? UInt64.max : UInt64(position)  // 2^64
        if rank < zeroCount { return 0 }
        var seen = zeroCount
        for (k, c) in counts.enumerated() {
            seen = seen.saturatingAdd(c)
            if seen > rank {
                let i = Double(offset + k)
                return 2 * pow(gamma, i) / (gamma + 1)
            }
        }
        return 2 * pow(gamma, Double(offset + counts.count - 1)) / (gamma + 1)
    }

    /// Compact bytes: [1, α×10⁴ as big-endian UInt16, zero-count varint, first bucket index
    /// zigzag varint, n varint, n count varints] — empty buckets at either end are dropped.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = [1]
        let a = UInt16((relativeAccuracy * 10_000).rounded())
        out.append(UInt8(a >> 8))
        out.append(UInt8(a & 0xff))
        Varint.append(zeroCount, to: &out)
        let first = counts.firstIndex { $0 > 0 } ?? 0
        let last = counts.lastIndex { $0 > 0 } ?? -1
        let start = Int64(offset + first)
        Varint.append(UInt64(bitPattern: start << 1 ^ start >> 63), to: &out)
        Varint.append(UInt64(max(0, last - first + 1)), to: &out)
        if last >= first { for c in counts[first...last] { Varint.append(c, to: &out) } }
        return out
    }

    /// The buckets any finite value ≥ 1 falls into: 0 through the bucket of the largest Double.
    public var bucketLimit: ClosedRange<Int> { 0...index(.greatestFiniteMagnitude) }

    /// The lowest and highest buckets holding a count (nil: none; the zero bucket aside).
    public var occupiedBuckets: ClosedRange<Int>? {
        guard let first = counts.firstIndex(where: { $0 > 0 }), let last = counts.lastIndex(where: { $0 > 0 }) else { return nil }
        return (offset + first)...(offset + last)
    }

    /// Parses `serialized()` output; nil when malformed (a bad header, buckets outside
    /// `bucketLimit`, counts whose total does not fit 64 bits): bytes from the store are checked
    /// here. Buckets no value can reach are refused, not only for what they say: an add far
    /// from them would grow the counts to span the gap.
    public init?(serialized bytes: [UInt8]) {
        guard bytes.count >= 3, bytes[0] == 1 else { return nil }
        let a = Double(UInt16(bytes[1]) << 8 | UInt16(bytes[2])) / 10_000
        guard a > 0, a < 1 else { return nil }
        self.init(relativeAccuracy: a)
        var r = Varint.Reader(bytes: bytes, position: 3)
        guard let zero = r.next(), let zz = r.next(), let n = r.next(), n <= 100_000 else { return nil }
        let off = Int64(bitPattern: zz >> 1) ^ -Int64(bitPattern: zz & 1)
        let limit = bucketLimit
        guard off >= Int64(limit.lowerBound), off <= Int64(limit.upperBound) - Int64(max(n, 1)) + 1 else { return nil }
        zeroCount = zero
        offset = Int(off)
        var total = zero
        for _ in 0..<n {
            guard let c = r.next() else { return nil }
            let (sum, overflow) = total.addingReportingOverflow(c)
            guard !overflow else { return nil }
            counts.append(c)
            total = sum
        }
        count = total
    }

    public var memoryBytes: Int { counts.count * 8 + 48 }
}

extension QuantileSketch {
    /// The accuracy of every RTT sketch Spate writes (the rollup's and the documents').
    public static let rttAccuracy = 0.01

    /// An empty RTT sketch: the bucket mapping every RTT sketch shares, and what each new one
    /// starts as.
    public static let emptyRTT = QuantileSketch(relativeAccuracy: rttAccuracy)

    /// The highest bucket an RTT reaches at `rttAccuracy`: `rtt_us` is 32 bits.
    public static let maxRTTBucket = emptyRTT.bucket(of: Double(UInt32.max)) ?? 0

    /// An RTT sketch read from outside (a stored document, a snapshot, a peer's answer): nil
    /// unless it parses (`init(serialized:)`), has `rttAccuracy`, and holds counts (zeros
    /// included) for no bucket above `maxRTTBucket`. A sketch that merely parses can name any
    /// accuracy down to 0.0001 and buckets millions apart, and merging two such sketches fills
    /// the gap between them: 28 MB from 17 bytes. Valid RTT sketches span at most
    /// `maxRTTBucket + 1` buckets (~9 KB).
    public init?(rttSerialized bytes: [UInt8]) {
        guard let q = QuantileSketch(serialized: bytes), q.relativeAccuracy == Self.rttAccuracy,
            q.counts.isEmpty || q.offset + q.counts.count - 1 <= Self.maxRTTBucket
        else { return nil }
        self = q
    }
}
