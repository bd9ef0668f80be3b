/// Strings a hostile probe could send as subscriber ids to flood a table placed by their
/// `StableHash`: the interner's test and `spate-bench intern --collide` use them.
public enum StableHashCollisions {
    /// Strings of 16 printable bytes with one `StableHash`, built by inverting its second word's
    /// step: for any first word, the second word that brings the state to a fixed value (kept
    /// when all of its bytes are printable, about one try in 3,000). What a hostile probe could
    /// send as subscriber ids.
    public static func make(_ count: Int) -> [[UInt8]] {
        let (c1, c2) = (UInt64(0x87C3_7B91_1142_53D5), UInt64(0x4CF5_AD43_2745_937F))
        let (f1, f2) = (UInt64(0xFF51_AFD7_ED55_8CCD), UInt64(0xC4CE_B9FE_1A85_EC53))
        func inverse(_ a: UInt64) -> UInt64 {
            var x = a
            for _ in 0..<5 { x = x &* (2 &- a &* x) }
            return x
        }
        func fmix(_ k: UInt64) -> UInt64 {
            var k = k
            k ^= k >> 33
            k &*= f1
            k ^= k >> 33
            k &*= f2
            return k ^ k >> 33
        }
        func unfmix(_ k: UInt64) -> UInt64 {
            var k = k ^ k >> 33
            k &*= inverse(f2)
            k ^= k >> 33
            k &*= inverse(f1)
            return k ^ k >> 33
        }
        let (c1Inverse, h0) = (inverse(c1), UInt64(0x9E37_79B9_7F4A_7C15) &* 17)
        func afterFirst(_ w0: UInt64) -> UInt64 {
            let h = (h0 ^ fmix(w0 &* c1)) &* c2
            return h << 31 | h >> 33
        }
        func bytes(_ w: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }
        func printableWord(_ n: UInt64) -> UInt64 {
            var (w, rest) = (UInt64(0), n)
            for k in 0..<8 as Range<UInt64> {
                w |= (0x21 + rest % 94) << (8 * k)
                rest /= 94
            }
            return w
        }
        let target = afterFirst(printableWord(0)) ^ fmix(printableWord(1) &* c1)
        var out: [[UInt8]] = []
        var n: UInt64 = 0
        while out.count < count {
            let w0 = printableWord(n)
            n += 1
            let w1 = unfmix(afterFirst(w0) ^ target) &* c1Inverse
            if bytes(w1).allSatisfy({ (0x21...0x7E).contains($0) }) { out.append(bytes(w0) + bytes(w1)) }
        }
        return out
    }
}
