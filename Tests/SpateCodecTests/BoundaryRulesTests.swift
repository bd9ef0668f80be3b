import SpateCodec
import SpateModel
import SpateTestSupport
import Testing

/// The ingest boundary: every value from Kafka is checked before it reaches arithmetic.
@Suite("Record boundary rules")
struct BoundaryRulesTests {
    static let now: UInt64 = 1_795_000_000_000  // 2026-11-18

    static func record(end: UInt64 = now, application: String = "zoom") -> FlowRecord {
        var r = SampleRecords.make(count: 2)[1]
        r.startTimeMs = min(r.startTimeMs, end)
        r.endTimeMs = end
        r.application = application
        return r
    }

    static func decode(_ records: [FlowRecord], timestamp: Int64 = Int64(now), limits: RecordLimits = .default) throws -> Int {
        let bytes = RecordBatchEncoder().encode(RecordBatch(probeID: 1, sequence: 1, createdMs: 5, records: records))
        return try bytes.withUnsafeBytes { raw in
            try RecordBatchDecoder().withBatch(raw, limits: limits, messageTimestampMs: timestamp) { $0.count }
        }
    }

    @Test(
        "event times outside the window around the message timestamp are refused",
        arguments: [
            UInt64.max - 5, UInt64(1) << 63, (UInt64(1) << 63) - 1, 4_102_444_800_000 /* 2100-01-01 */, now + 3_600_001,
            now - 90 * 86_400_000 - 1, 946_684_799_999 /* 1999 */, 1,
        ])
    func eventTimeWindow(end: UInt64) throws {
        var r = Self.record()
        r.startTimeMs = 1
        r.endTimeMs = end
        let error = try #require(throws: RecordDecodingError.self) { _ = try Self.decode([Self.record(), r]) }
        #expect(error.code == .eventTimeOutOfRange)
        #expect(error.message.hasPrefix("record 1: end_time_ms \(end) is outside"))
    }

    @Test("the window's edges are inclusive, and it follows the configured age and lead")
    func windowEdges() throws {
        #expect(try Self.decode([Self.record(end: Self.now + 3_600_000)]) == 1)
        #expect(try Self.decode([Self.record(end: Self.now - 90 * 86_400_000)]) == 1)
        let tight = RecordLimits(maxEventAgeMs: 60_000, maxEventLeadMs: 1000)
        #expect(try Self.decode([Self.record(end: Self.now - 60_000)], limits: tight) == 1)
        #expect(throws: RecordDecodingError.self) { _ = try Self.decode([Self.record(end: Self.now - 60_001)], limits: tight) }
        #expect(throws: RecordDecodingError.self) { _ = try Self.decode([Self.record(end: Self.now + 1001)], limits: tight) }
        // Without a message timestamp only the absolute range applies.
        #expect(try Self.decode([Self.record(end: 4_102_444_799_999)], timestamp: -1) == 1)
        #expect(throws: RecordDecodingError.self) { _ = try Self.decode([Self.record(end: 4_102_444_800_000)], timestamp: -1) }
    }

    @Test("counters above the per-record ceilings are refused, the ceilings themselves accepted")
    func counterCeilings() throws {
        var ok = Self.record()
        ok.bytesUp = RecordLimits.maxBytes
        ok.bytesDown = RecordLimits.maxBytes
        ok.packetsUp = RecordLimits.maxPackets
        ok.packetsDown = RecordLimits.maxPackets
        ok.flows = UInt32(RecordLimits.maxFlows)
        #expect(try Self.decode([ok]) == 1)
        let cases: [(String, (inout FlowRecord) -> Void)] = [
            ("bytes_up", { $0.bytesUp = RecordLimits.maxBytes + 1 }), ("bytes_down", { $0.bytesDown = UInt64.max }),
            ("packets_up", { $0.packetsUp = 1 << 62 }), ("packets_down", { $0.packetsDown = RecordLimits.maxPackets + 1 }),
            ("flows", { $0.flows = .max }),
        ]
        for (field, change) in cases {
            var r = Self.record()
            change(&r)
            let error = try #require(throws: RecordDecodingError.self) { _ = try Self.decode([r]) }
            #expect(error.code == .counterOutOfRange)
            #expect(error.message.hasPrefix("record 0: \(field) "), "\(error)")
        }
    }

    @Test("a NUL inside a string is refused, not cut", arguments: ["Zoom\0Evil", "\0", "zoom\0"])
    func nulInStrings(application: String) throws {
        let error = try #require(throws: RecordDecodingError.self) { _ = try Self.decode([Self.record(application: application)]) }
        #expect(error.code == .invalidString)
        #expect(error.message == "record 0: application contains a NUL byte")
        var r = Self.record()
        r.subscriberID = "s2\0x"
        let e2 = try #require(throws: RecordDecodingError.self) { _ = try Self.decode([r]) }
        #expect(e2.message == "record 0: subscriber_id contains a NUL byte")
    }

    @Test("a subset re-encodes the received records byte for byte, invalid UTF-8 included")
    func subsetKeepsRawBytes() throws {
        var records = [Self.record(), Self.record(), Self.record()]
        records[1].host = "HOSTX"
        var bytes = RecordBatchEncoder().encode(RecordBatch(probeID: 4, sequence: 9, createdMs: 77, records: records))
        let marker = Array("HOSTX".utf8)
        let at = try #require((0...(bytes.count - 5)).first { Array(bytes[$0..<$0 + 5]) == marker })
        bytes[at + 2] = 0xFF  // host is not a view dimension: the message stays valid
        let subset = try bytes.withUnsafeBytes { raw in
            try RecordBatchDecoder().withBatch(raw, messageTimestampMs: Int64(Self.now)) { $0.encodeSubset([0, 1]) }
        }
        #expect(subset.count > 0)
        try subset.withUnsafeBytes { raw in
            try RecordBatchDecoder().withBatch(raw, messageTimestampMs: Int64(Self.now)) { batch in
                #expect(batch.count == 2)
                #expect(batch.probeID == 4 && batch.sequence == 9 && batch.createdMs == 77)
                #expect(Array(batch[1].host.utf8) == [0x48, 0x4F, 0xFF, 0x54, 0x58])
                #expect(batch[1].host.validatedString == nil)
                #expect(batch[0].bytesUp == records[0].bytesUp)
            }
        }
    }

    @Test("the arena gives a huge batch's memory back")
    func arenaTrim() throws {
        let decoder = RecordBatchDecoder(initialArenaBytes: 1 << 16, retainedArenaBytes: 1 << 20)
        let big = (0..<20_000).map { _ in Self.record() }
        let bytes = RecordBatchEncoder().encode(RecordBatch(probeID: 1, sequence: 1, createdMs: 5, records: big))
        let count = try bytes.withUnsafeBytes { raw in
            try decoder.withBatch(raw, messageTimestampMs: Int64(Self.now)) { batch in
                #expect(decoder.arenaCapacity > 1 << 20)
                return batch.count
            }
        }
        #expect(count == 20_000)
        #expect(decoder.arenaCapacity <= 1 << 20)
    }

    @Test("a subset of records carrying unknown fields (field 0) still re-decodes: found by cluster/fuzz ingest")
    func subsetDropsUnknownFields() throws {
        let input = try #require(Base64.decode(
            "AAABoe5WXgAIAxABGnII9rvZ8p40EIC82fKeNBgDIAEqBAoAAAEyEAAAAAAgAQ24AAAAAAAAAAc4uI4DQLsDSAZSBHpvb21aBXZpZGVvYgloLmV4YW1wbGVqAjFzcgdhbmRyb2lkegJGUoAA3AuIAZh1kAEDmAEJoAEBqAGgnAEacQi27LTynjQQwOy08p40GAMgASoECgAAATIQAAAAACABDbgAAAAAAAAABzi4jgNAuwNIBlIDZG5zWgV2aWRlb2IJaC5leGFlcGxlagJxMXIHYW5kcm9pZHoCRlKAAdwLiAGYdZABA5gBCaABAagBoJwBIIC82fKeNA=="))
        var ts: Int64 = 0
        for b in input[0..<8] { ts = ts << 8 | Int64(b) }
        let value = Array(input[8...])
        let subset = try value.withUnsafeBytes { raw in
            try RecordBatchDecoder().withBatch(raw, messageTimestampMs: ts) { batch in
                #expect(batch.count == 2)
                return batch.encodeSubset([0, 1])
            }
        }
        let again = try subset.withUnsafeBytes { raw in try RecordBatchDecoder().withBatch(raw, messageTimestampMs: ts) { $0.count } }
        #expect(again == 2)
    }
}
