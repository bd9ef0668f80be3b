import SpateModel

/// The hash of the in-memory tables whose keys come from records (cell keys, interned
/// strings): keyed by a secret drawn from the system's random source when the process starts.
///
/// Record fields are chosen by whoever writes records. With a hash anyone can compute, a broken
/// or hostile probe could send keys that collide in full and fill one probe chain, making each
/// lookup walk every key before it: `StableHash` is invertible word by word, so two 16-byte
/// subscriber ids with the same stable hash take a few thousand tries to find. Keyed, the
/// position of a key is unknown outside the process. Per word: the full 128-bit product of the
/// state (with the word and one secret folded in) by the other secret, high half xor low half.
/// It lives only in this process's memory: nothing stored or sent depends on it.
enum KeyedHash {
    /// The secret: random per process (the second word odd).
    static let secret: (UInt64, UInt64) = {
        var random = SystemRandomNumberGenerator()
        return (random.next(), random.next() | 1)
    }()

    /// One step: `state` with `word` folded in.
    @inline(__always)
    static func mix(_ state: UInt64, _ word: UInt64, _ secret: (UInt64, UInt64) = secret) -> UInt64 {
        let p = (state ^ word ^ secret.0).multipliedFullWidth(by: secret.1)
        return p.high ^ p.low
    }

    /// A string's hash: its length, then its bytes as little-endian words of 8 (the last one
    /// zero-padded).
    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let raw = UnsafeRawBufferPointer(bytes)
        let n = bytes.count
        var h = mix(0, UInt64(n))
        var i = 0
        while i + 8 <= n {
            h = mix(h, UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            i += 8
        }
        if i < n { h = mix(h, StableHash.littleEndianWord(raw, from: i, count: n - i)) }
        return h
    }
}
