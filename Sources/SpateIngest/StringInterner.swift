import SpateModel

/// Maps dimension strings seen in records to small integer ids, so rollup keys are integers
/// and a record costs one hash probe per string instead of a String allocation.
///
/// Strings live in one growing byte buffer; each keeps its stable 64-bit hash (the
/// HyperLogLog input for subscribers). Bytes are validated as UTF-8 once, when first seen.
/// Id 0 is the empty string. Not thread-safe: one interner per ingest worker.
public final class StringInterner {
    /// Where a string lives in `storage`, and its hash. One array of these rather than three
    /// parallel ones: a lookup of a string that is not in cache misses one line here, not three.
    private struct Entry {
        var hash: UInt64
        var offset: Int
        var length: Int
    }

    private var storage: [UInt8] = []
    private var entries: [Entry] = [Entry(hash: StableHash.hash(UnsafeRawBufferPointer(start: nil, count: 0)), offset: 0, length: 0)]
    private var slots: [Int32]
    private var mask: Int

    public init(capacity: Int = 1 << 12) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
    }

    /// Number of strings held (including the empty string).
    public var count: Int { entries.count }
    /// Bytes of string data held.
    public var storageBytes: Int { storage.count }

    /// Approximate bytes held: string data, per-string entries (hash, offset, length), the table.
    public var memoryBytes: Int { storage.capacity + entries.count * MemoryLayout<Entry>.stride + slots.count * 4 }

    /// The id of `bytes`, adding it when new; nil when the bytes are not valid UTF-8.
    @inline(__always)
    public func intern(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32? { intern(bytes, hash: Self.hash(bytes)) }

    /// The hash `intern` looks `bytes` up by (their stable hash).
    @inline(__always)
    public static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 { StableHash.hash(UnsafeRawBufferPointer(bytes)) }

    /// Reads the table slot a lookup of `hash` probes first and returns it (meaningless to the
    /// caller): a read-ahead pass over a message's strings lets the processor overlap these
    /// cache misses instead of taking them one after another in `intern`.
    @inline(__always)
    public func readAhead(hash: UInt64) -> Int { Int(slots[Int(truncatingIfNeeded: hash) & mask]) }

    /// Once the slot is in cache: reads the string it points to, if any (see `readAhead(hash:)`).
    @inline(__always)
    public func readAheadString(hash: UInt64) -> Int {
        let id = Int(slots[Int(truncatingIfNeeded: hash) & mask])
        guard id > 0 else { return 0 }
        let e = entries[id]
        guard e.length > 0 else { return 0 }
        return Int(truncatingIfNeeded: e.hash) &+ Int(storage[e.offset])
    }

    /// `intern(bytes)` with `hash` = `StringInterner.hash(bytes)` computed by the caller.
    @inline(__always)
    public func intern(_ bytes: UnsafeBufferPointer<UInt8>, hash h: UInt64) -> UInt32? {
        if bytes.isEmpty { return 0 }
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let id = Int(slots[slot])
            if id < 0 { break }
            let e = entries[id]
            if e.hash == h && e.length == bytes.count && equal(e.offset, bytes) { return UInt32(id) }
            slot = (slot + 1) & mask
        }
        guard String(validating: bytes, as: UTF8.self) != nil else { return nil }
        let id = entries.count
        entries.append(Entry(hash: h, offset: storage.count, length: bytes.count))
        storage.append(contentsOf: bytes)
        slots[slot] = Int32(id)
        if entries.count * 2 > slots.count { grow() }
        return UInt32(id)
    }

    /// Interns a Swift string (always valid UTF-8).
    public func intern(_ s: String) -> UInt32 {
        var s = s
        return s.withUTF8 { intern($0)! }
    }

    /// Whether the string at `offset` (of `bytes.count` bytes, inside `storage`) is `bytes`.
    /// Strings of 8 to 16 bytes (subscriber ids, most names) compare as two overlapping words
    /// instead of a call to memcmp, made six times per record.
    @inline(__always)
    private func equal(_ offset: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        storage.withUnsafeBufferPointer { s in
            let a = UnsafeRawPointer(s.baseAddress! + offset)
            let b = UnsafeRawPointer(bytes.baseAddress!)
            let n = bytes.count
            if n >= 8 && n <= 16 {
                return a.loadUnaligned(as: UInt64.self) == b.loadUnaligned(as: UInt64.self)
                    && a.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) == b.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
            }
            return memcmp(a, b, n) == 0
        }
    }

    private func grow() {
        let size = slots.count * 2
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        for id in 1..<entries.count {
            var slot = Int(truncatingIfNeeded: entries[id].hash) & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(id)
        }
    }

    /// The stable hash of string `id`.
    @inline(__always)
    public func hash(_ id: UInt32) -> UInt64 { entries[Int(id)].hash }

    /// Calls `body` with string `id`'s UTF-8 bytes.
    public func withUTF8<R>(_ id: UInt32, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        let e = entries[Int(id)]
        return try storage.withUnsafeBufferPointer { s in
            try body(UnsafeBufferPointer(rebasing: s[e.offset..<e.offset + e.length]))
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
