import SpateCodec
import SpateModel
import SpateTestSupport
import Testing

@Suite("RecordBatch codec (protobuf-c)")
struct RecordCodecTests {
    @Test("encode then decode gives back every field")
    func roundTrip() throws {
        let records = SampleRecords.make(count: 500)
        let batch = RecordBatch(probeID: 7, sequence: 42, createdMs: 1_700_000_000_123, records: records)
        let bytes = RecordBatchEncoder().encode(batch)
        let decoded = try RecordBatchDecoder().decode(bytes)
        #expect(decoded == batch)
        #expect(decoded.records.contains { $0.clientIP.isV6 })
        #expect(decoded.records.contains { $0.bytesUp == RecordLimits.maxBytes && UInt64($0.flows) == RecordLimits.maxFlows })
        #expect(decoded.records.contains { $0.host.isEmpty && $0.country.isEmpty })
    }

    @Test("the in-place view reads the same values as the Swift decode")
    func inPlaceView() throws {
        let batch = RecordBatch(probeID: 3, sequence: 1, createdMs: 99, records: SampleRecords.make(count: 20, probeID: 3))
        let bytes = RecordBatchEncoder().encode(batch)
        let decoder = RecordBatchDecoder()
        try bytes.withUnsafeBytes { raw in
            try decoder.withBatch(raw) { view in
                #expect(view.count == 20)
                #expect(view.probeID == 3)
                for i in 0..<view.count {
                    let r = view[i]
                    #expect(r.bytesDown == batch.records[i].bytesDown)
                    #expect(r.application.validatedString == batch.records[i].application)
                    #expect(Array(r.serverIP) == batch.records[i].serverIP.bytes)
                }
            }
        }
    }

    @Test("every strict truncation of a valid batch is a typed error", arguments: [1, 3, 40])
    func truncations(records: Int) throws {
        let batch = RecordBatch(probeID: 9, sequence: 5, createdMs: 1_700_000_000_000, records: SampleRecords.make(count: records))
        let bytes = RecordBatchEncoder().encode(batch)
        let decoder = RecordBatchDecoder()
        for length in 0..<bytes.count {
            #expect(throws: RecordDecodingError.self, "truncated to \(length) of \(bytes.count)") {
                _ = try decoder.decode(Array(bytes[..<length]))
            }
        }
        #expect(try decoder.decode(bytes) == batch)
    }

    @Test("random bytes are a typed error, never a crash")
    func randomBytes() throws {
        var rng = SplitMix64(seed: 2024)
        let decoder = RecordBatchDecoder()
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 600)
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            #expect(throws: RecordDecodingError.self) { _ = try decoder.decode(bytes) }
        }
    }

    @Test("a valid message of another type is rejected")
    func otherMessageType() throws {
        let bytes = ProbeStatusEncoder.encode(probeID: 4, uptimeSeconds: 3600, recordsSent: 1_000_000, softwareVersion: "2.8.1")
        let error = try #require(throws: RecordDecodingError.self) { _ = try RecordBatchDecoder().decode(bytes) }
        #expect(error.code == .malformedProtobuf || error.code == .emptyBatch || error.code == .invalidBatch)
    }

    @Test("field rules name the record and the field")
    func fieldRules() throws {
        var r = SampleRecords.make(count: 3)
        r[2].startTimeMs = r[2].endTimeMs + 1
        let bytes = RecordBatchEncoder().encode(RecordBatch(probeID: 1, sequence: 1, createdMs: 5, records: r))
        let error = try #require(throws: RecordDecodingError.self) { _ = try RecordBatchDecoder().decode(bytes) }
        #expect(error.code == .invalidRecord)
        #expect(error.message.hasPrefix("record 2: start_time_ms"))

        let empty = RecordBatchEncoder().encode(RecordBatch(probeID: 1, sequence: 1, createdMs: 5, records: []))
        #expect(throws: RecordDecodingError(.emptyBatch, "batch 1 of probe 1 has no records")) {
            _ = try RecordBatchDecoder().decode(empty)
        }
    }

    @Test("invalid UTF-8 in a string field is reported by the Swift decode")
    func invalidUTF8() throws {
        var r = SampleRecords.make(count: 1)
        r[0].application = "ABCD"
        var bytes = RecordBatchEncoder().encode(RecordBatch(probeID: 1, sequence: 1, createdMs: 5, records: r))
        let marker = Array("ABCD".utf8)
        let at = try #require((0...(bytes.count - 4)).first { Array(bytes[$0..<$0 + 4]) == marker })
        bytes[at + 1] = 0xFF
        let error = try #require(throws: RecordDecodingError.self) { _ = try RecordBatchDecoder().decode(bytes) }
        #expect(error.code == .invalidUTF8)
    }
}

@Suite("IP addresses")
struct IPAddressTests {
    @Test("text and bytes round-trip", arguments: ["10.1.2.3", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "::1", "fe80::1:2:3:4", "2001:db8:0:1:1:1:1:1"])
    func roundTrip(text: String) throws {
        let ip = try #require(IPAddress(text))
        #expect(ip.description == text)
        #expect(IPAddress(bytes: ip.bytes) == ip)
    }

    @Test("bad text is nil", arguments: ["1.2.3", "256.1.1.1", "1:2:3", "::1::2", "abc", ""])
    func bad(text: String) {
        #expect(IPAddress(text) == nil)
    }
}

@Suite("RecordBatchBuilder (the probe's fast encoder)")
struct RecordBatchBuilderTests {
    @Test("produces the same bytes as protobuf-c packing the whole batch", arguments: [1, 7, 300])
    func sameBytes(count: Int) throws {
        let records = SampleRecords.make(count: count, seed: UInt64(count))
        let batch = RecordBatch(probeID: 12, sequence: 77, createdMs: 1_700_000_000_999, records: records)
        let builder = RecordBatchBuilder()
        builder.begin(probeID: 12, sequence: 77, createdMs: 1_700_000_000_999, capacity: count)
        for r in records {
            var f = RecordFields(empty: builder.intern(""))
            f.startTimeMs = r.startTimeMs
            f.endTimeMs = r.endTimeMs
            f.probeID = r.probeID
            f.interfaceIndex = r.interfaceIndex
            f.clientIP = r.clientIP
            f.serverIP = r.serverIP
            f.clientPort = r.clientPort
            f.serverPort = r.serverPort
            f.l4Protocol = r.l4Protocol
            f.application = builder.intern(r.application)
            f.applicationCategory = builder.intern(r.applicationCategory)
            f.host = builder.intern(r.host)
            f.subscriberID = builder.intern(r.subscriberID)
            f.deviceType = builder.intern(r.deviceType)
            f.country = builder.intern(r.country)
            f.bytesUp = r.bytesUp
            f.bytesDown = r.bytesDown
            f.packetsUp = r.packetsUp
            f.packetsDown = r.packetsDown
            f.flows = r.flows
            f.rttMicros = r.rttMicros
            f.retransmissions = r.retransmissions
            builder.append(f)
        }
        var out: [UInt8] = [1, 2, 3]
        builder.finish(into: &out)
        #expect(out == RecordBatchEncoder().encode(batch))
        #expect(try RecordBatchDecoder().decode(out) == batch)
    }
}
