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

    @Test("base64 round-trips")
    func base64() {
        for n in 0..<20 {
            let bytes = (0..<n).map { UInt8($0 * 37 & 0xff) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.encode(Array("Man".utf8)) == "TWFu")
    }
}
