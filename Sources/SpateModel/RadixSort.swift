/// A stable least-significant-digit radix sort of unsigned words by their bits from `fromBit`
/// up, 8 bits a pass: for the ingest fold's small batches (a message's cell entries, a sketch's
/// buffered adds), where a comparison sort mispredicts a branch at nearly every compare. Passes
/// above the highest set bit, and passes whose digit is the same in every word, are skipped.
public enum RadixSort {
    /// Sorts `words` by their bits `fromBit...` (equal keys keep their order), using `scratch`
    /// (at least as long) as the other buffer of each pass.
    @inlinable
    public static func sort<W: FixedWidthInteger & UnsignedInteger>(
        _ words: UnsafeMutableBufferPointer<W>, scratch: UnsafeMutableBufferPointer<W>, fromBit: Int = 0
    ) {
        let n = words.count
        guard n > 1, let base = words.baseAddress else { return }
        precondition(scratch.count >= n, "radix sort scratch shorter than the words")
        var keys: W = 0
        for w in words { keys |= w }
        keys >>= fromBit
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 256) { counts in
            var source = base
            var target = scratch.baseAddress!
            var shift = fromBit
            while keys != 0 {
                counts.initialize(repeating: 0)
                for i in 0..<n { counts[Int(truncatingIfNeeded: source[i] >> shift) & 255] += 1 }
                if counts[Int(truncatingIfNeeded: source[0] >> shift) & 255] != n {
                    var sum = 0
                    for d in 0..<256 {
                        let k = counts[d]
                        counts[d] = sum
                        sum += k
                    }
                    for i in 0..<n {
                        let x = source[i]
                        let d = Int(truncatingIfNeeded: x >> shift) & 255
                        target[counts[d]] = x
                        counts[d] += 1
                    }
                    swap(&source, &target)
                }
                keys >>= 8
                shift += 8
            }
            if source != base { base.update(from: source, count: n) }
        }
    }
}
