import SpateElastic
import SpateIngest
import SpateSchema
import SpateModel
import SpateQuery
import SpateWire
import Testing

/// Sums leave the store as doubles; the split parts make them exact, and nothing the store
/// answers can trap the node.
@Suite("Exact sums")
struct ExactSumsTests {
    /// What a store answers for `aggregations(fields)` over documents holding `values`.
    static func answer(_ values: [String: [UInt64]]) -> [String: Aggregation] {
        var out: [String: Aggregation] = [:]
        for (field, docs) in values {
            if DocumentFields.split.contains(field) {
                out[DocumentFields.hi(field)] = .value(docs.map { Double(DocumentFields.parts($0).hi) }.reduce(0, +))
                out[DocumentFields.lo(field)] = .value(docs.map { Double(DocumentFields.parts($0).lo) }.reduce(0, +))
            } else {
                out[field] = .value(docs.map(Double.init).reduce(0, +))
            }
            if DocumentFields.saturable.contains(field) { out[field + "_max"] = .value(docs.map(Double.init).max()) }
        }
        return out
    }

    @Test("sums past 2^53 come back exact; the plain double sum would not")
    func past2to53() throws {
        let docs: [UInt64] = [6_358_695_815_168_705, 6_358_695_815_168_706]  // sum 12,717,391,630,337,411
        let aggs = Self.answer(["bytes_down": docs])
        #expect(try ExactSums.value("bytes_down", in: aggs) == 12_717_391_630_337_411)
        #expect(UInt64(docs.map(Double.init).reduce(0, +)) != 12_717_391_630_337_411)
    }

    @Test("sums up to 2^64 - 1 are exact; beyond, a clear INVALID_ARGUMENT")
    func past2to64() throws {
        let near: [UInt64] = Array(repeating: UInt64(Int64.max) / 2, count: 4) + [1, 2]
        let exact = near.reduce(UInt128(0)) { $0 + UInt128($1) }
        #expect(exact <= UInt128(UInt64.max))
        #expect(try ExactSums.value("bytes_up", in: Self.answer(["bytes_up": near])) == UInt64(exact))
        let over = Array(repeating: UInt64(1) << 62, count: 5)
        let error = try #require(throws: RPCError.self) { _ = try ExactSums.value("bytes_up", in: Self.answer(["bytes_up": over])) }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("exceeds 2^64 - 1"))
    }

    @Test("bytes = up + down, checked; a saturated cell is refused, not summed")
    func metricsAndSaturation() throws {
        let aggs = Self.answer(["bytes_up": [1 << 60, 5], "bytes_down": [1 << 60, 7]])
        #expect(try ExactSums.metric(.bytes, in: aggs) == (1 << 61) + 12)
        let saturated = Self.answer(["bytes_up": [UInt64(Int64.max), 3]])
        let error = try #require(throws: RPCError.self) { _ = try ExactSums.value("bytes_up", in: saturated) }
        #expect(error.code == .invalidArgument && error.message.contains("saturated"))
    }

    @Test("what a store may answer — NaN, negatives, fractions, 1e300 — is an error, never a trap", arguments: [Double.nan, -1, 0.5, 1e300, .infinity])
    func nonsense(value: Double) {
        #expect(throws: RPCError.self) { _ = try ExactSums.value("records", in: ["records": .value(value)]) }
        #expect(throws: RPCError.self) { _ = try ExactSums.value("bytes_up", in: ["bytes_up_hi": .value(value), "bytes_up_lo": .value(1)]) }
    }

    @Test("a plain sum at 2^53 is refused rather than rounded")
    func plainLimit() throws {
        #expect(try ExactSums.value("records", in: ["records": .value(9_007_199_254_740_991)]) == 9_007_199_254_740_991)
        #expect(throws: RPCError.self) { _ = try ExactSums.value("records", in: ["records": .value(9_007_199_254_740_992)]) }
    }
}
