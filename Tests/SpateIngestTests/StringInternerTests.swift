import SpateModel
import SpateTestSupport
import Testing

import SpateIngest

/// The interner keeps strings of up to 16 bytes inside their entry (zero-padded words) and
/// longer ones in its byte buffer: ids must stay one per distinct string across that boundary,
/// whatever the padding could confuse.
@Suite("String interner")
struct StringInternerTests {
    static func intern(_ interner: StringInterner, _ bytes: [UInt8]) -> UInt32? {
        bytes.withUnsafeBufferPointer { interner.intern($0) }
    }

    static func bytes(_ interner: StringInterner, _ id: UInt32) -> [UInt8] {
        interner.withUTF8(id) { Array($0) }
    }

    @Test("every length from 0 to 40: one id per string, the same bytes back, the stable hash kept")
    func roundTrips() throws {
        let interner = StringInterner(capacity: 16)
        var seen: [[UInt8]: UInt32] = [:]
        var rng = SystemRandomNumberGenerator()
        for length in 0...40 {
            for _ in 0..<20 {
                let s = (0..<length).map { _ in UInt8.random(in: 0x20...0x7e, using: &rng) }
                let id = try #require(Self.intern(interner, s))
                if let before = seen[s] { #expect(before == id) }
                seen[s] = id
                #expect(Self.bytes(interner, id) == s)
                #expect(interner.hash(id) == s.withUnsafeBufferPointer { StableHash.hash(UnsafeRawBufferPointer($0)) })
            }
        }
        // Again, after the table grew many times: the same ids.
        for (s, id) in seen { #expect(Self.intern(interner, s) == id) }
        #expect(Set(seen.values).count == seen.count)
        #expect(interner.count == seen.count + (seen[[]] == nil ? 1 : 0))
    }

    @Test("strings that differ only in trailing NUL bytes, or across the 8- and 16-byte words, are different strings")
    func paddingIsNotConfused() throws {
        let interner = StringInterner()
        let cases: [[UInt8]] = [
            [], [0], [0, 0], Array("abc".utf8), Array("abc".utf8) + [0], Array("abcdefg".utf8) + [0],
            Array("abcdefgh".utf8), Array("abcdefgh".utf8) + [0], Array("abcdefghijklmno".utf8) + [0],
            Array("abcdefghijklmnop".utf8), Array("abcdefghijklmnop".utf8) + [0], Array("bbcdefghijklmnop".utf8),
            Array("abcdefghijklmnoq".utf8), Array("sub-0000123".utf8), Array("sub-0000124".utf8),
        ]
        var ids: [UInt32] = []
        for s in cases {
            let id = try #require(Self.intern(interner, s))
            ids.append(id)
            #expect(Self.bytes(interner, id) == s, "\(s)")
        }
        #expect(ids[0] == 0, "the empty string is id 0")
        #expect(Set(ids).count == cases.count, "\(ids)")
        for (s, id) in zip(cases, ids) { #expect(Self.intern(interner, s) == id) }
    }

    @Test("bytes that are not UTF-8 get no id and leave nothing behind")
    func invalidUTF8() {
        let interner = StringInterner()
        let before = interner.count
        #expect(Self.intern(interner, [0x61, 0xff]) == nil)
        #expect(Self.intern(interner, Array(repeating: 0xc3, count: 20)) == nil)
        #expect(interner.count == before)
    }

    @Test("at every length from 1 to 40 and every position: a stray byte ≥ 0x80 is refused, a two-byte character and 0x7F are kept")
    func utf8AtEveryPosition() {
        let interner = StringInterner()
        for n in 1...40 {
            for p in 0..<n {
                var bytes = [UInt8](repeating: 0x61, count: n)
                for stray: UInt8 in [0x80, 0xBF, 0xC3, 0xFF] {
                    bytes[p] = stray
                    let before = interner.count
                    #expect(Self.intern(interner, bytes) == nil, "\(n) bytes, \(stray) at \(p)")
                    #expect(interner.count == before)
                }
                bytes[p] = 0x7F
                #expect(Self.intern(interner, bytes) != nil, "\(n) bytes, 0x7F at \(p)")
                if p + 1 < n {
                    bytes[p] = 0xC3
                    bytes[p + 1] = 0xA9  // é
                    let id = Self.intern(interner, bytes)
                    #expect(id != nil, "\(n) bytes, é at \(p)")
                    if let id { #expect(interner.withUTF8(id) { Array($0) } == bytes) }
                }
            }
        }
    }

    @Test("1,000 subscriber ids with one stable hash: distinct ids, the stable hash kept, and no long probe")
    func stableHashFlood() throws {
        let strings = StableHashCollisions.make(1000)
        let stable = Set(strings.map { s in s.withUnsafeBufferPointer { StableHash.hash(UnsafeRawBufferPointer($0)) } })
        #expect(stable.count == 1, "the strings are not collisions of StableHash")
        #expect(Set(strings).count == strings.count)
        let interner = StringInterner(capacity: 16)
        var ids: [UInt32] = []
        for s in strings { ids.append(try #require(Self.intern(interner, s))) }
        #expect(Set(ids).count == strings.count)
        for (s, id) in zip(strings, ids) {
            #expect(Self.intern(interner, s) == id)
            #expect(Self.bytes(interner, id) == s)
            #expect(interner.hash(id) == stable.first)
        }
        // Placed by their stable hash, the 1,000 would fill one probe sequence of 1,000 slots.
        #expect(interner.longestProbe < 64, "longest probe: \(interner.longestProbe)")
    }
}
