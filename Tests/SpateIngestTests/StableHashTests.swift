import SpateModel
import Testing

/// StableHash has a fixed definition: document ids and every stored HyperLogLog depend on it,
/// so a faster implementation must give the same value for every input.
@Suite("Stable hash: one definition")
struct StableHashTests {
    /// The definition, byte by byte.
    static func reference(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        func fmix(_ k: UInt64) -> UInt64 {
            var k = k
            k ^= k >> 33
            k &*= 0xFF51_AFD7_ED55_8CCD
            k ^= k >> 33
            k &*= 0xC4CE_B9FE_1A85_EC53
            k ^= k >> 33
            return k
        }
        var h = seed ^ 0x9E37_79B9_7F4A_7C15 &* UInt64(bytes.count &+ 1)
        var word: UInt64 = 0
        for (k, b) in bytes.enumerated() {
            word |= UInt64(b) << UInt64(8 * (k % 8))
            if k % 8 == 7 || k == bytes.count - 1 {
                h = (h ^ fmix(word &* 0x87C3_7B91_1142_53D5)) &* 0x4CF5_AD43_2745_937F
                if k % 8 == 7 { h = h << 31 | h >> 33 }
                word = 0
            }
        }
        return fmix(h)
    }

    @Test("every length from 0 to 40, at every alignment: the value of the definition")
    func matchesDefinition() {
        var rng = SystemRandomNumberGenerator()
        for length in 0...40 {
            for shift in 0..<8 {
                let padded = (0..<(length + shift)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let bytes = Array(padded[shift...])
                let seed = UInt64.random(in: 0...UInt64.max, using: &rng)
                let got = padded.withUnsafeBytes { StableHash.hash(UnsafeRawBufferPointer(rebasing: $0[shift...]), seed: seed) }
                #expect(got == Self.reference(bytes, seed: seed), "length \(length), offset \(shift)")
            }
        }
    }

    @Test("pinned values: what stored documents already hold")
    func pinned() {
        #expect(StableHash.hash("") == Self.reference([]))
        #expect(StableHash.hash("sub-0000123") == 0x60D5_0E4C_67DB_879D)
        #expect(StableHash.hash("YouTube") == 0x35DD_660C_6656_A5B4)
    }
}
