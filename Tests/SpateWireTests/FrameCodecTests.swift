import NIOCore
import SpateModel
import SpateTestSupport
import SpateWire
import Testing

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined(separator: " ") }
func bytes(_ hex: String) -> [UInt8] { hex.split(separator: " ").map { UInt8($0, radix: 16)! } }

@Suite("Query protocol: frames")
struct FrameCodecTests {
    /// The golden vectors of docs/PROTOCOL.md.
    static let golden: [(String, Frame, String)] = [
        ("HEADERS", Frame(type: .headers, streamID: 1, payload: WireMessages.encode(CallHeaders(method: "Query", timeoutMs: 5000, metadata: ["authorization": "Bearer s3cret"]))),
         "01 01 00 00 00 00 00 01 00 00 00 2a 0a 05 51 75 65 72 79 10 88 27 1a 1e 0a 0d 61 75 74 68 6f 72 69 7a 61 74 69 6f 6e 12 0d 42 65 61 72 65 72 20 73 33 63 72 65 74"),
        ("DATA", Frame(type: .data, flags: .endStream, streamID: 1, payload: WireMessages.encode(Query(range: .last(ms: 900_000), kind: .totals))),
         "01 02 01 00 00 00 00 01 00 00 00 08 0a 04 18 a0 f7 36 62 00"),
        ("STATUS OK", Frame(type: .status, flags: .endStream, streamID: 1, payload: WireMessages.encodeStatus(.ok, "")),
         "01 03 01 00 00 00 00 01 00 00 00 00"),
        ("STATUS UNAUTHENTICATED", Frame(type: .status, flags: .endStream, streamID: 3, payload: WireMessages.encodeStatus(.unauthenticated, "a token is required")),
         "01 03 01 00 00 00 00 03 00 00 00 17 08 10 12 13 61 20 74 6f 6b 65 6e 20 69 73 20 72 65 71 75 69 72 65 64"),
        ("CANCEL", Frame(type: .cancel, streamID: 5), "01 04 00 00 00 00 00 05 00 00 00 00"),
        ("PING", Frame(type: .ping, streamID: 0, payload: [0, 0, 0, 0, 0, 0, 0, 42]), "01 05 00 00 00 00 00 00 00 00 00 08 00 00 00 00 00 00 00 2a"),
        ("PING ACK", Frame(type: .ping, flags: .ack, streamID: 0, payload: [0, 0, 0, 0, 0, 0, 0, 42]), "01 05 02 00 00 00 00 00 00 00 00 08 00 00 00 00 00 00 00 2a"),
        ("GOAWAY", Frame(type: .goAway, streamID: 0, payload: WireMessages.encodeGoAway(lastStreamID: 3, .resourceExhausted, "frame of 16777216 bytes exceeds the limit of 4194304")),
         "01 06 00 00 00 00 00 00 00 00 00 3a 08 03 10 08 1a 34 66 72 61 6d 65 20 6f 66 20 31 36 37 37 37 32 31 36 20 62 79 74 65 73 20 65 78 63 65 65 64 73 20 74 68 65 20 6c 69 6d 69 74 20 6f 66 20 34 31 39 34 33 30 34"),
    ]

    @Test("every frame type encodes to its golden bytes and decodes back", arguments: 0..<8)
    func golden(index: Int) throws {
        let (name, frame, expected) = Self.golden[index]
        #expect(hex(FrameCodec.encode(frame)) == expected, "\(name)")
        var buffer = ByteBuffer(bytes: bytes(expected))
        #expect(try FrameCodec.decode(&buffer) == frame, "\(name)")
        #expect(buffer.readableBytes == 0)
    }

    @Test("the preface is SPATE/1\\n")
    func preface() {
        #expect(hex(FrameCodec.preface) == "53 50 41 54 45 2f 31 0a")
    }

    /// Decodes a stream fed in the given chunk sizes.
    func decodeAll(_ stream: [UInt8], chunks: [Int]) throws -> [Frame] {
        var buffer = ByteBuffer()
        var out: [Frame] = []
        var i = 0
        var c = 0
        while i < stream.count {
            let n = min(chunks[c % chunks.count], stream.count - i)
            buffer.writeBytes(stream[i..<(i + n)])
            i += n
            c += 1
            while let f = try FrameCodec.decode(&buffer) { out.append(f) }
            buffer.discardReadBytes()
        }
        return out
    }

    @Test("fed byte by byte or in random chunks, the decoder yields the same frames")
    func chunking() throws {
        let frames = Self.golden.map(\.1) + [Frame(type: .data, streamID: 7, payload: (0..<70_000).map { UInt8($0 & 0xff) })]
        var stream: [UInt8] = []
        for f in frames { stream += FrameCodec.encode(f) }
        #expect(try decodeAll(stream, chunks: [stream.count]) == frames)
        #expect(try decodeAll(stream, chunks: [1]) == frames)
        var rng = SplitMix64(seed: 3)
        for _ in 0..<50 {
            let chunks = (0..<20).map { _ in 1 + Int(rng.next() % 300) }
            #expect(try decodeAll(stream, chunks: chunks) == frames)
        }
    }

    @Test("an oversized length is refused from the 12 header bytes alone")
    func oversized() {
        var buffer = ByteBuffer(bytes: bytes("01 02 00 00 00 00 00 01 01 00 00 00"))  // 16 MiB announced, no payload
        let error = #expect(throws: RPCError.self) { _ = try FrameCodec.decode(&buffer) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message == "frame of 16777216 bytes exceeds the limit of 4194304")
    }

    @Test("protocol violations are typed errors", arguments: [
        ("02 02 00 00 00 00 00 01 00 00 00 00", StatusCode.unimplemented),  // version 2
        ("01 05 00 00 00 00 00 00 00 00 00 01 00", StatusCode.invalidArgument),  // PING of 1 byte
        ("01 05 00 00 00 00 00 03 00 00 00 08 00 00 00 00 00 00 00 00", StatusCode.invalidArgument),  // PING on a stream
        ("01 01 00 00 00 00 00 00 00 00 00 00", StatusCode.invalidArgument),  // HEADERS on stream 0
    ])
    func violations(input: String, code: StatusCode) {
        var buffer = ByteBuffer(bytes: bytes(input))
        let error = #expect(throws: RPCError.self) { _ = try FrameCodec.decode(&buffer) }
        #expect(error?.code == code)
    }

    @Test("a frame of unknown type is skipped")
    func unknownType() throws {
        var buffer = ByteBuffer(bytes: bytes("01 63 00 00 00 00 00 01 00 00 00 02 aa bb") + FrameCodec.encode(Frame(type: .cancel, streamID: 1)))
        #expect(try FrameCodec.decode(&buffer) == Frame(type: .cancel, streamID: 1))
    }
}

@Suite("Query protocol: messages")
struct WireMessageTests {
    @Test("queries of every kind round-trip", arguments: [
        QueryKind.top(dimension: .application, metric: .bytes, limit: 10),
        .series(metric: .records, stepMs: 60_000, splitBy: .country, splitLimit: 4),
        .series(metric: .packetsUp, stepMs: 0, splitBy: nil, splitLimit: 5),
        .totals, .distinctSubscribers, .rttQuantiles([0.5, 0.99]),
    ])
    func queries(kind: QueryKind) throws {
        let q = Query(
            range: .absolute(startMs: 1_700_000_000_000, endMs: 1_700_000_600_000),
            filters: [QueryFilter(dimension: .country, op: .in, values: ["FR", "DE"]), QueryFilter(dimension: .host, op: .prefix, values: ["edge"])],
            view: "app_1m", kind: kind)
        #expect(try WireMessages.decodeQuery(WireMessages.encode(q)) == q)
    }

    @Test("answers, status and storage round-trip")
    func answers() throws {
        var t = MetricTotals()
        t.records = 5
        t.bytesDown = .max
        let r = QueryResult(
            view: "app_1h", startMs: 1, endMs: 2, stepMs: 60_000, computedAtMs: 3, cached: true,
            top: [TopRow(value: "youtube", metric: 9, totals: t)], series: [TimeSeries(label: "x", points: [.init(tsMs: 1, value: 2)])],
            totals: t, distinct: 12.5, quantiles: [(0.5, 100), (0.99, 900)], documents: 7)
        #expect(try WireMessages.decodeQueryResult(WireMessages.encode(r)) == r)
        let node = NodeStatus(nodeID: "a", queryAddress: "127.0.0.1:7400", partitions: [PartitionStatus(partition: 3, nextOffset: 10, committedOffset: 8, lag: 2)], recordsTotal: 99)
        let s = ClusterStatus(nodeID: "a", version: "1", node: node, cluster: [node], storeHealth: "green", topic: "t", group: "g", warnings: ["w"])
        #expect(try WireMessages.decodeClusterStatus(WireMessages.encode(s)) == s)
        let st = StorageReport(
            views: [ViewStorage(view: "app_1m", indices: 3, documents: 10, bytes: 1000, bytesPerRecord: 0.5, oldestDay: "2026.11.20", newestDay: "2026.11.22", retentionDays: 10)],
            totalBytes: 1000, maxTotalBytes: 5000, projectedDays: 12, bytesPerDay: 400, warnings: [], retentionOwner: "a", lastRetentionMs: 5)
        #expect(try WireMessages.decodeStorage(WireMessages.encode(st)) == st)
    }

    @Test("malformed or invalid requests are INVALID_ARGUMENT")
    func invalid() throws {
        var rng = SplitMix64(seed: 8)
        for _ in 0..<2000 {
            let junk = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            do { _ = try WireMessages.decodeQuery(junk) } catch let e as RPCError { #expect(e.code == .invalidArgument) }
            do { _ = try WireMessages.decodeHeaders(junk) } catch let e as RPCError { #expect(e.code == .invalidArgument) }
        }
        let noKind = WireMessages.encode(Query(range: .last(ms: 1000), kind: .totals)).prefix(6)
        let e = #expect(throws: RPCError.self) { _ = try WireMessages.decodeQuery(Array(noKind)) }
        #expect(e?.code == .invalidArgument)
    }
}
