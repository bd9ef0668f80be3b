import SpateModel
import SpateTestSupport
import Testing

@Suite("Sketches")
struct SketchTests {
    @Test("HyperLogLog stays within 3 standard errors across cardinalities and survives serialization", arguments: [10, 1000, 5000, 40_000, 300_000])
    func hllAccuracy(n: Int) throws {
        for p in [12, 14, 16] {
            var h = HyperLogLog(precision: p)
            for i in 0..<n { h.add(hash: StableHash.hash("subscriber-\(i)")) }
            let error = abs(h.estimate - Double(n)) / Double(n)
            let standard = 1.04 / Double(1 << p).squareRoot()
            #expect(error < max(3 * standard, 0.002), "p=\(p) n=\(n) estimate \(h.estimate)")
            let copy = try #require(HyperLogLog(serialized: h.serialized()))
            #expect(copy.estimate == h.estimate)
        }
    }

    @Test("merging HyperLogLogs equals the sketch of the union, sparse or dense")
    func hllMerge() {
        var a = HyperLogLog(precision: 14)
        var b = HyperLogLog(precision: 14)
        var all = HyperLogLog(precision: 14)
        for i in 0..<30_000 {
            let h = StableHash.hash("x\(i)")
            if i % 3 == 0 { a.add(hash: h) } else { b.add(hash: h) }
            if i < 20_000 { a.add(hash: h) }
            all.add(hash: h)
        }
        var merged = a
        merged.merge(b)
        #expect(merged.estimate == all.estimate)
        var small = HyperLogLog(precision: 14)
        small.add(hash: 42)
        var big = all
        big.merge(small)
        all.add(hash: 42)
        #expect(big.estimate == all.estimate)
    }

    /// The sparse entries as one-by-one adds would hold them: one word per index' with the
    /// largest rho, in the bytes `serialized()` writes for a sparse sketch.
    static func sparseBytes(precision: Int, hashes: [UInt64]) -> (bytes: [UInt8], distinct: Int) {
        var rho: [UInt32: UInt32] = [:]
        for h in hashes {
            let index = UInt32(truncatingIfNeeded: h >> 39)
            rho[index] = max(rho[index] ?? 0, UInt32(min((h << 25).leadingZeroBitCount + 1, 40)))
        }
        var out: [UInt8] = [1, UInt8(precision)]
        Varint.append(UInt64(rho.count), to: &out)
        var previous: UInt32 = 0
        for (index, r) in rho.sorted(by: { $0.key < $1.key }) {
            Varint.append(UInt64((index << 6 | r) - previous), to: &out)
            previous = index << 6 | r
        }
        return (out, rho.count)
    }

    @Test("buffered sparse adds: every read sees one-by-one adds; dense exactly past a quarter of the registers", arguments: [12, 14])
    func hllBufferedAdds(precision p: Int) throws {
        var rng = SplitMix64(seed: UInt64(p))
        let limit = (1 << p) / 4
        // Repeats among the items, as heavy subscribers give.
        let items = (0..<3 * limit).map { _ in rng.next() }
        let hashes = (0..<6 * limit).map { i in i % 3 == 0 ? items[Int(rng.next() % UInt64(items.count))] : items[i / 2] }
        var reading = HyperLogLog(precision: p)
        var quiet = HyperLogLog(precision: p)
        var added: [UInt64] = []
        for (i, h) in hashes.enumerated() {
            reading.add(hash: h)
            quiet.add(hash: h)
            added.append(h)
            if i % 97 == 0 || i > 6 * limit - 5 {
                let expected = Self.sparseBytes(precision: p, hashes: added)
                #expect(reading.isSparse == (expected.distinct <= limit), "after \(i + 1) adds")
                if expected.distinct <= limit { #expect(reading.serialized() == expected.bytes, "after \(i + 1) adds") }
            }
        }
        #expect(!quiet.isSparse)
        #expect(quiet.serialized() == reading.serialized())
        #expect(quiet == reading)
        // Merging halves gives the same sketch, whatever the order.
        var a = HyperLogLog(precision: p)
        var b = HyperLogLog(precision: p)
        for (i, h) in hashes.reversed().enumerated() { if i % 2 == 0 { a.add(hash: h) } else { b.add(hash: h) } }
        a.merge(b)
        #expect(a.serialized() == quiet.serialized())
        // A sparse sketch read from bytes past the limit stays sparse until a new index comes.
        let stored = Self.sparseBytes(precision: p, hashes: Array(items.prefix(2 * limit)))
        #expect(stored.distinct > limit)
        var restored = try #require(HyperLogLog(serialized: stored.bytes))
        for h in items.prefix(limit) { restored.add(hash: h) }
        #expect(restored.isSparse && restored.serialized() == stored.bytes)
        let storedIndices = Set(items.prefix(2 * limit).map { $0 >> 39 })
        let new = try #require(items.dropFirst(2 * limit).first { !storedIndices.contains($0 >> 39) })
        restored.add(hash: new)
        #expect(!restored.isSparse)
    }

    @Test("adds as sparse words in runs of any length equal adds one by one, through the turn to dense", arguments: [4, 12, 14])
    func hllSparseWordRuns(precision p: Int) {
        var rng = SplitMix64(seed: 77 + UInt64(p))
        let limit = (1 << p) / 4
        let hashes = (0..<5 * limit + 100).map { i in i % 4 == 0 ? UInt64(i / 4) &* 0x9E37_79B9_7F4A_7C15 : rng.next() }
        var byHash = HyperLogLog(precision: p)
        var byRuns = HyperLogLog(precision: p)
        var next = 0
        while next < hashes.count {
            let run = Array(hashes[next..<min(hashes.count, next + 1 + Int(rng.next() % 300))])
            for h in run { byHash.add(hash: h) }
            let words = run.map { HyperLogLog.sparseWord(hash: $0) }
            words.withUnsafeBufferPointer { byRuns.add(sparseWords: $0) }
            next += run.count
            #expect(byRuns.isSparse == byHash.isSparse, "after \(next) adds")
            #expect(byRuns.serialized() == byHash.serialized(), "after \(next) adds")
        }
        #expect(!byRuns.isSparse)
        #expect(byRuns == byHash)
    }

    @Test("quantile sketch answers within its relative accuracy; merge is exact")
    func quantiles() throws {
        var rng = SplitMix64(seed: 9)
        var values: [Double] = []
        var a = QuantileSketch()
        var b = QuantileSketch()
        for i in 0..<50_000 {
            let v = Double(1 + rng.next() % 300_000) * (i % 10 == 0 ? 10 : 1)
            values.append(v)
            if i % 2 == 0 { a.add(v) } else { b.add(v) }
        }
        a.merge(b)
        values.sort()
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            let exact = values[Int((q * Double(values.count - 1)).rounded(.down))]
            let got = try #require(a.quantile(q))
            #expect(abs(got - exact) <= 0.01 * exact + 1e-9, "q=\(q): \(got) vs \(exact)")
        }
        let copy = try #require(QuantileSketch(serialized: a.serialized()))
        #expect(copy.quantile(0.99) == a.quantile(0.99))
        #expect(copy.count == 50_000)
    }

    @Test("quantile sketch: adds in runs equal adds one by one, growing below and above, nil skipped")
    func quantileRuns() throws {
        var rng = SplitMix64(seed: 21)
        var one = QuantileSketch()
        var runs = QuantileSketch()
        // Runs move their range up, then down past the first, then span both: every way the
        // counts grow. About a third of the entries are nil (a record without an RTT).
        for (center, spread) in [(5_000.0, 50.0), (300_000.0, 10_000.0), (2.0, 1.0), (40.0, 1_000_000.0), (1_000.0, 0.0)] {
            let run: [Int?] = (0..<(1 + Int(rng.next() % 400))).map { _ in
                rng.next() % 3 == 0 ? nil : one.bucket(of: max(1, center + Double(rng.next() % 1_000) / 1_000 * spread))
            }
            for b in run where b != nil { one.add(bucket: b) }
            runs.add(run.count) { run[$0] }
            #expect(runs == one)
        }
        runs.add(0) { _ in 1 }
        runs.add(3) { _ in nil }
        #expect(runs == one)
        #expect(runs.serialized() == one.serialized())
        #expect(runs.zeroCount == 0 && runs.count == one.count && one.count > 0)
    }

    @Test("base64 round-trips")
    func base64() {
        for n in 0..<20 {
            let bytes = (0..<n).map { UInt8($0 * 37 & 0xff) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.encode(Array("Man".utf8)) == "TWFu")
    }
}
