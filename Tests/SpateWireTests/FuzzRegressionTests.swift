import SpateModel
import SpateWire
import Testing

/// Inputs found by the libFuzzer targets (Tests/Fuzz, `cluster/fuzz`), kept so they stay fixed.
@Suite("Query protocol: fuzzing regressions")
struct FuzzRegressionTests {
    /// fuzz-request found the first query: a range ending at UInt64.max. The node accepted it
    /// and QueryPlanner's bucket rounding (`end + step - 1`) overflowed: a trap that killed the
    /// whole node, from a single Query or Watch request. A series step near UInt64.max (the
    /// second) did the same. Such values are now refused when the request is decoded.
    static let crashes: [(String, String, String)] = [
        // range { start_ms = 3393639303585267711, end_ms = 2^64-1 } view "subscriber_5m" totals {}
        ("range",
         "0a 15 08 ff ff 83 90 f6 9e a8 8c 2f 10 ff ff ff ff ff ff ff ff ff 01 1a 0d 73 75 62 73 63 72 69 62 65 72 5f 35 6d 62 00",
         "range: start_ms 3393639303585267711 is out of range (at most 253402300799999, 9999-12-31T23:59:59.999Z)"),
        // range { last_ms = 900000 } series { metric "bytes" step_ms = 18446744073709500000 }
        ("step_ms",
         "0a 04 18 a0 f7 36 5a 12 0a 05 62 79 74 65 73 10 e0 ec fc ff ff ff ff ff ff 01",
         "series: step_ms 18446744073709500000 is too large (at most 253402300799999)"),
    ]

    @Test("times and steps beyond year 9999 are INVALID_ARGUMENT when decoded", arguments: 0..<2)
    func hugeTimes(index: Int) throws {
        let (name, input, message) = Self.crashes[index]
        let query = #expect(throws: RPCError.self, "\(name)") { _ = try WireMessages.decodeQuery(bytes(input)) }
        #expect(query?.code == .invalidArgument)
        #expect(query?.message == message)
        // The same query in a Watch request (field 1 of WatchRequest).
        let watch = #expect(throws: RPCError.self, "\(name)") { _ = try WireMessages.decodeWatch([0x0a, UInt8(bytes(input).count)] + bytes(input)) }
        #expect(watch?.code == .invalidArgument)
        #expect(watch?.message == message)
    }

    @Test("the crashing request is what the encoder makes of that query")
    func crashingBytes() {
        let q = Query(range: .absolute(startMs: 3_393_639_303_585_267_711, endMs: .max), view: "subscriber_5m", kind: .totals)
        #expect(hex(WireMessages.encode(q)) == Self.crashes[0].1)
    }

    @Test("every time up to 9999-12-31T23:59:59.999Z still decodes", arguments: [
        QueryRange.absolute(startMs: WireMessages.maxTimeMs - 1, endMs: WireMessages.maxTimeMs),
        .absolute(startMs: WireMessages.maxTimeMs, endMs: 0),
        .last(ms: WireMessages.maxTimeMs),
    ])
    func limit(range: QueryRange) throws {
        let q = Query(range: range, kind: .series(metric: .bytes, stepMs: WireMessages.maxTimeMs, splitBy: nil, splitLimit: 5))
        #expect(try WireMessages.decodeQuery(WireMessages.encode(q)) == q)
    }

    @Test("one millisecond more is refused, in each range field", arguments: ["start_ms", "end_ms", "last_ms"])
    func overLimit(field: String) {
        let over = WireMessages.maxTimeMs + 1
        let range: QueryRange =
            switch field {
            case "start_ms": .absolute(startMs: over, endMs: 0)
            case "end_ms": .absolute(startMs: 0, endMs: over)
            default: .last(ms: over)
            }
        let e = #expect(throws: RPCError.self) { _ = try WireMessages.decodeQuery(WireMessages.encode(Query(range: range, kind: .totals))) }
        #expect(e?.code == .invalidArgument)
        #expect(e?.message.hasPrefix("range: \(field) \(over) ") == true)
    }
}
