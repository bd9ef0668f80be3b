import CPrefetch
import SpateModel

/// Maps dimension strings seen in records to small integer ids, so rollup keys are integers
/// and a record costs one hash probe per string instead of a String allocation.
///
/// Strings of up to 16 bytes live in their entry, longer ones in one growing byte buffer; each
/// keeps its stable 64-bit hash (`StableHash`: the HyperLogLog input for subscribers), computed
/// once, when the string is first seen. The table is placed by a keyed hash (`KeyedHash`), not
/// the stable one: subscriber ids come from records, and ids with equal stable hashes are easy
/// to make, which would chain every one of them in one probe sequence. Bytes are validated as
/// UTF-8 once, when first seen.
/// Id 0 is the empty string. Not thread-safe: one interner per ingest worker.
public final class StringInterner {
    /// One string: its stable hash, its length, and its bytes — inline, zero-padded, when it has at
    /// most 16 (subscriber ids, most names), else `word0` is its offset in `storage`. 32 bytes,
    /// two to a cache line: a lookup of a short string that is not in cache misses its table
    /// slot and this entry, not also a third line in `storage`.
    private struct Entry {
        var hash: UInt64
        var length: Int
        var word0: UInt64
        var word1: UInt64
    }

    /// Bytes of the strings longer than `inlineBytes`.
    private var storage: [UInt8] = []
    private var entries: [Entry] = [Entry(hash: StableHash.hash(UnsafeRawBufferPointer(start: nil, count: 0)), length: 0, word0: 0, word1: 0)]
    /// Open addressing by `slotHash`: each slot holds `slotHash >> 32 << 32 | id`, 0 when empty
    /// (id 0, the empty string, is never in the table), so a probe past another string's slot
    /// compares 32 hash bits without reading that string's entry.
    private var slots: [UInt64]
    private var mask: Int

    /// Strings up to this many bytes are held in their entry.
    static let inlineBytes = 16

    public init(capacity: Int = 1 << 12) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    /// Number of strings held (including the empty string).
    public var count: Int { entries.count }

    /// Approximate bytes held: the long strings' bytes, the entries, the table.
    public var memoryBytes: Int { storage.capacity + entries.count * MemoryLayout<Entry>.stride + slots.count * 8 }

    /// The id of `bytes`, adding it when new; nil when the bytes are not valid UTF-8.
    @inline(__always)
    public func intern(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32? { intern(bytes, slotHash: Self.slotHash(bytes)) }

    /// The hash `intern` looks `bytes` up by: keyed, random per process (`KeyedHash`).
    @inline(__always)
    public static func slotHash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 { KeyedHash.hash(bytes) }

    /// Prefetches what looking up each of `hashes` will read: first every first slot, then
    /// (once those have had time to arrive) the entry each points to. Called for a message's
    /// strings before interning them, so that their cache misses (most subscribers miss) overlap
    /// instead of being taken one after another in `intern`.
    public func prefetch(slotHashes hashes: UnsafeBufferPointer<UInt64>) {
        let mask = self.mask
        slots.withUnsafeBufferPointer { slots in
            guard let base = slots.baseAddress else { return }
            for h in hashes { spate_prefetch(base + (Int(truncatingIfNeeded: h) & mask)) }
            entries.withUnsafeBufferPointer { entries in
                guard let entryBase = entries.baseAddress else { return }
                for h in hashes {
                    let e = slots[Int(truncatingIfNeeded: h) & mask]
                    if e != 0 && Int(e & 0xFFFF_FFFF) < entries.count { spate_prefetch(entryBase + Int(e & 0xFFFF_FFFF)) }
                }
            }
        }
    }

    /// `intern(bytes)` with `slotHash` = `StringInterner.slotHash(bytes)` computed by the caller.
    @inline(__always)
    public func intern(_ bytes: UnsafeBufferPointer<UInt8>, slotHash h: UInt64) -> UInt32? {
        if bytes.isEmpty { return 0 }
        let n = bytes.count
        let (w0, w1) = n <= Self.inlineBytes ? Self.words(bytes) : (0, 0)
        var slot = Int(truncatingIfNeeded: h) & mask
        let tag = h & 0xFFFF_FFFF_0000_0000
        while true {
            let s = slots[slot]
            if s == 0 { break }
            if s & 0xFFFF_FFFF_0000_0000 == tag {
                let id = Int(s & 0xFFFF_FFFF)
                let e = entries[id]
                if e.length == n {
                    if n <= Self.inlineBytes {
                        if e.word0 == w0 && e.word1 == w1 { return UInt32(id) }
                    } else if equal(Int(e.word0), bytes) {
                        return UInt32(id)
                    }
                }
            }
            slot = (slot + 1) & mask
        }
        guard String(validating: bytes, as: UTF8.self) != nil else { return nil }
        let id = entries.count
        let stable = StableHash.hash(UnsafeRawBufferPointer(bytes))
        if n <= Self.inlineBytes {
            entries.append(Entry(hash: stable, length: n, word0: w0, word1: w1))
        } else {
            entries.append(Entry(hash: stable, length: n, word0: UInt64(storage.count), word1: 0))
            storage.append(contentsOf: bytes)
        }
        slots[slot] = tag | UInt64(id)
        if entries.count * 2 > slots.count { grow() }
        return UInt32(id)
    }

    /// Up to 16 bytes as two little-endian words, zero-padded.
    @inline(__always)
    private static func words(_ bytes: UnsafeBufferPointer<UInt8>) -> (UInt64, UInt64) {
        let raw = UnsafeRawBufferPointer(bytes)
        let n = bytes.count
        return (StableHash.littleEndianWord(raw, from: 0, count: min(n, 8)), StableHash.littleEndianWord(raw, from: 8, count: max(0, n - 8)))
    }

    /// Interns a Swift string (always valid UTF-8).
    public func intern(_ s: String) -> UInt32 {
        var s = s
        return s.withUTF8 { intern($0)! }
    }

    /// Whether the long string at `offset` (of `bytes.count` bytes, inside `storage`) is `bytes`.
    @inline(__always)
    private func equal(_ offset: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        storage.withUnsafeBufferPointer { s in memcmp(s.baseAddress! + offset, bytes.baseAddress!, bytes.count) == 0 }
    }

    private func grow() {
        let size = slots.count * 2
        slots = [UInt64](repeating: 0, count: size)
        mask = size - 1
        for id in 1..<entries.count {
            let h = slotHash(id)
            var slot = Int(truncatingIfNeeded: h) & mask
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            slots[slot] = h & 0xFFFF_FFFF_0000_0000 | UInt64(id)
        }
    }

    /// The stable hash of string `id` (`StableHash` of its bytes).
    @inline(__always)
    public func hash(_ id: UInt32) -> UInt64 { entries[Int(id)].hash }

    /// The most table slots a lookup of a held string reads: its probe sequence's length. A
    /// diagnostic (it walks the whole table): with slots placed by a keyed hash it stays short
    /// whatever strings arrive.
    public var longestProbe: Int {
        var longest = 0
        for (slot, s) in slots.enumerated() where s != 0 {
            let home = Int(truncatingIfNeeded: slotHash(Int(s & 0xFFFF_FFFF))) & mask
            longest = max(longest, (slot - home) & mask + 1)
        }
        return longest
    }

    /// The slot hash of string `id` (`slotHash` of its bytes), for a table rebuilt from the
    /// entries.
    private func slotHash(_ id: Int) -> UInt64 { withUTF8(UInt32(id)) { Self.slotHash($0) } }

    /// Calls `body` with string `id`'s UTF-8 bytes.
    public func withUTF8<R>(_ id: UInt32, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        let e = entries[Int(id)]
        if e.length <= Self.inlineBytes {
            var words = (e.word0.littleEndian, e.word1.littleEndian)
            return try withUnsafeBytes(of: &words) { raw in
                try body(UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: e.length))
            }
        }
        let offset = Int(e.word0)
        return try storage.withUnsafeBufferPointer { s in
            try body(UnsafeBufferPointer(rebasing: s[offset..<offset + e.length]))
        }
    }

    /// String `id`.
    public func string(_ id: UInt32) -> String {
        withUTF8(id) { String(decoding: $0, as: UTF8.self) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
