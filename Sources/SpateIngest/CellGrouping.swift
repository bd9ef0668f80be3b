/// Groups a chunk's fold entries (bucket ordinal << 48 | cell << 16 | position) by bucket and
/// cell, keeping record order within a cell: what `ViewRollup` needs to touch each cell once.
///
/// Why not `sort()`: a comparison sort of a few hundred random keys mispredicts a branch at
/// nearly every compare, and it was ~6% of the fold. This is a least-significant-digit radix
/// sort over bits 16..<64, 8 bits a pass: stable, so entries of one cell stay in position order
/// (the order they were appended in), which gives the same order as sorting the whole words.
/// Passes above the highest set key bit are not made, nor passes whose digit is the same for
/// every entry (the bucket ordinal, usually).
struct CellGrouping {
    /// Per-pass digit counts, then their running sums.
    private var counts = [Int](repeating: 0, count: 256)
    /// Where a pass writes; as long as the longest chunk sorted so far (≤ `ViewRollup.chunkRecords`).
    private var scratch: [UInt64] = []

    /// Sorts `entries` by bits 16..<64, stably.
    mutating func sort(_ entries: UnsafeMutableBufferPointer<UInt64>) {
        let n = entries.count
        guard n > 1, let base = entries.baseAddress else { return }
        if scratch.count < n { scratch = [UInt64](repeating: 0, count: n) }
        var keys: UInt64 = 0
        for e in entries { keys |= e }
        keys >>= 16
        scratch.withUnsafeMutableBufferPointer { s in
            counts.withUnsafeMutableBufferPointer { c in
                var source = base
                var target = s.baseAddress!
                var shift: UInt64 = 16
                while keys != 0 {
                    if Self.pass(source, target, n, shift: shift, counts: c) { swap(&source, &target) }
                    keys >>= 8
                    shift += 8
                }
                if source != base { base.update(from: source, count: n) }
            }
        }
    }

    /// One counting pass on the digit at `shift` from `source` into `target`; false (nothing
    /// moved) when every entry has the same digit.
    @inline(__always)
    private static func pass(
        _ source: UnsafeMutablePointer<UInt64>, _ target: UnsafeMutablePointer<UInt64>, _ n: Int, shift: UInt64,
        counts c: UnsafeMutableBufferPointer<Int>
    ) -> Bool {
        c.update(repeating: 0)
        for i in 0..<n { c[Int(truncatingIfNeeded: source[i] >> shift) & 255] += 1 }
        if c[Int(truncatingIfNeeded: source[0] >> shift) & 255] == n { return false }
        var sum = 0
        for d in 0..<256 {
            let k = c[d]
            c[d] = sum
            sum += k
        }
        for i in 0..<n {
            let x = source[i]
            let d = Int(truncatingIfNeeded: x >> shift) & 255
            target[c[d]] = x
            c[d] += 1
        }
        return true
    }
}
