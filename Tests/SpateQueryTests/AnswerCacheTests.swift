import SpateModel
import SpateQuery
import Testing

@Suite("Answer cache: bounded in bytes")
struct AnswerCacheTests {
    @Test("expired entries are swept and the budget is never exceeded")
    func bounded() {
        var c = AnswerCache<Int, [UInt8]>(maxBytes: 8000)
        for i in 0..<10_000 {
            c.insert(i, [], size: 500, expiresMs: UInt64(i) + 100, nowMs: UInt64(i))
            #expect(c.bytes <= 8000)
        }
        #expect(c.count <= 16)
        #expect(c.value(9999, nowMs: 9999) != nil)
        #expect(c.value(9999, nowMs: 10_099) == nil, "expired")
        // Time passes: the next insert sweeps everything expired.
        c.insert(-1, [], size: 10, expiresMs: 30_000, nowMs: 20_000)
        #expect(c.count == 1 && c.bytes == 10)
    }

    @Test("an answer above an eighth of the budget is not cached; replacing a key does not double count")
    func large() {
        var c = AnswerCache<String, Int>(maxBytes: 8000)
        c.insert("big", 1, size: 1001, expiresMs: 10, nowMs: 0)
        #expect(c.count == 0 && c.bytes == 0)
        c.insert("a", 1, size: 1000, expiresMs: 10, nowMs: 0)
        c.insert("a", 2, size: 900, expiresMs: 10, nowMs: 0)
        #expect(c.bytes == 900 && c.value("a", nowMs: 1) == 2)
    }

    @Test("an answer's estimate grows with its rows and points")
    func estimate() {
        let small = QueryResult(view: "v", startMs: 0, endMs: 1, computedAtMs: 0)
        var large = small
        large.series = [TimeSeries(label: "x", points: Array(repeating: .init(tsMs: 0, value: 0), count: 10_000))]
        #expect(QueryEngine.estimatedBytes(large) > QueryEngine.estimatedBytes(small) + 150_000)
    }
}
