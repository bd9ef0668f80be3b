/// A fast, well-mixed 64-bit hash with a fixed definition: the same bytes give the same hash
/// on every node and every run (document ids and HyperLogLog inputs depend on that).
public enum StableHash {
    @inline(__always)
    static func fmix(_ k: UInt64) -> UInt64 {
        var k = k
        k ^= k >> 33
        k &*= 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k &*= 0xC4CE_B9FE_1A85_EC53
        k ^= k >> 33
        return k
    }

    /// Hash of `bytes` with `seed`.
    @inline(__always)
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var h = seed ^ 0x9E37_79B9_7F4A_7C15 &* UInt64(bytes.count &+ 1)
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            let w = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = (h ^ fmix(w &* 0x87C3_7B91_1142_53D5)) &* 0x4CF5_AD43_2745_937F
            h = h << 31 | h >> 33
            i += 8
        }
        if i < n {
            let w = littleEndianWord(bytes, from: i, count: n - i)
            h = (h ^ fmix(w &* 0x87C3_7B91_1142_53D5)) &* 0x4CF5_AD43_2745_937F
        }
        return fmix(h)
    }

    /// The `count` (0...8) bytes of `bytes` from `from` as one little-endian word, zero-padded
    /// (byte k at bits 8k), without a byte loop and without reading outside `bytes`: when at
    /// least 8 bytes end at the last one, the word ending there shifted down; else up to three
    /// loads of 4, 2 and 1 bytes.
    @inline(__always)
    public static func littleEndianWord(_ bytes: UnsafeRawBufferPointer, from: Int, count: Int) -> UInt64 {
        guard count > 0 else { return 0 }
        let end = from + count
        if end >= 8 {
            return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: end - 8, as: UInt64.self)) >> UInt64(8 * (8 - count))
        }
        var i = from
        var w: UInt64 = 0
        var shift: UInt64 = 0
        if count & 4 != 0 {
            w = UInt64(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self)))
            shift = 32
            i += 4
        }
        if count & 2 != 0 {
            w |= UInt64(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt16.self))) << shift
            shift += 16
            i += 2
        }
        if count & 1 != 0 { w |= UInt64(bytes[i]) << shift }
        return w
    }

    /// Hash of a String's UTF-8.
    public static func hash(_ s: String, seed: UInt64 = 0) -> UInt64 {
        var s = s
        return s.withUTF8 { hash(UnsafeRawBufferPointer($0), seed: seed) }
    }

    /// Folds a 64-bit value into a running hash.
    @inline(__always)
    public static func combine(_ h: UInt64, _ v: UInt64) -> UInt64 {
        fmix(h ^ (v &+ 0x9E37_79B9_7F4A_7C15 &+ (h << 6) &+ (h >> 2)))
    }
}
