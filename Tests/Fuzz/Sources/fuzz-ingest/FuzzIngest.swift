// fuzz-ingest: a Kafka message value through everything ingest does with it.
//
// The input is [8 bytes: the message timestamp, big-endian Int64][the message value]. It is
// decoded and validated as the node does (RecordBatchDecoder with the default RecordLimits),
// folded into the node's default views of one long-lived partition (so buckets open, close,
// saturate and the interner compacts across inputs), late records are re-encoded for the
// dead-letter topic, and every few inputs the partition flushes into bulk documents. A
// RecordDecodingError is an expected outcome; a trap, an ASan report or a re-encoded late
// batch that does not decode is a bug.
import FuzzSupport
import SpateCodec
import SpateIngest
import SpateSchema
import SpateModel

/// libFuzzer calls from one thread: the state lives across inputs like a worker's.
nonisolated(unsafe) let decoder = RecordBatchDecoder(initialArenaBytes: 1 << 16, retainedArenaBytes: 1 << 20)
nonisolated(unsafe) var rollup = PartitionRollup(partition: 0, views: ViewDefinition.defaults, latenessMs: 120_000, resume: .beginning())
nonisolated(unsafe) var offset: Int64 = 0

struct CountingSink: RollupDocumentSink {
    var documents = 0
    var bytes = 0
    mutating func add(_ d: RollupDocument) {
        var out: [UInt8] = []
        BulkDocumentSink.encodeSource(d, into: &out)
        documents += 1
        bytes += out.count
        _ = BulkDocumentSink.documentID(d, topic: "fuzz")
    }
}

func check(_ data: UnsafeBufferPointer<UInt8>) {
    guard data.count >= 8 else { return }
    var ts: Int64 = 0
    for b in data[0..<8] { ts = ts << 8 | Int64(b) }
    let value = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(data)[8...])
    do {
        try decoder.withBatch(value, limits: .default, messageTimestampMs: ts) { batch in
            let outcome = try rollup.fold(offset: offset, batch: batch)
            if !outcome.late.isEmpty {
                let letter = batch.encodeSubset(outcome.late)
                let again = RecordBatchDecoder()
                let n = letter.withUnsafeBytes { raw in (try? again.withBatch(raw, limits: .default, messageTimestampMs: ts) { $0.count }) ?? -1 }
                precondition(n == outcome.late.count, "a late dead letter of \(outcome.late.count) records decodes as \(n)")
            }
        }
    } catch is RecordDecodingError {
        rollup.skipMessage(offset: offset)
    } catch {
        fatalError("ingest threw \(type(of: error)): \(error)")
    }
    offset += 1
    if offset % 16 == 0 {
        var sink = CountingSink()
        _ = rollup.flush(due: { _ in true }, into: &sink)
    }
    // Bound the fuzzer's memory: a new partition now and then, as after a rebalance.
    if rollup.openCells > 200_000 || offset % 100_000 == 0 {
        rollup = PartitionRollup(partition: 0, views: ViewDefinition.defaults, latenessMs: 120_000, resume: .beginning())
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    check(UnsafeBufferPointer(start: data, count: size))
    return 0
}

/// The executable's entry point (see `runLibFuzzer`).
@_cdecl("fuzz_ingest_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runLibFuzzer(argc, argv) { data, size in
        guard let data else { return fuzz(UnsafePointer(bitPattern: 1)!, 0) }
        return fuzz(data, size)
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    exportIfAsked(seeds: seeds(), dictionary: [])
    return 0
}

/// Valid batches (the probe's encoder) at a fixed message time, and the poison values the
/// boundary refuses.
func seeds() -> [(String, [UInt8])] {
    let ts: Int64 = 1_795_000_000_000
    func message(_ records: [FlowRecord]) -> [UInt8] {
        var out: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: ts >> (56 - 8 * $0)) }
        out += RecordBatchEncoder().encode(RecordBatch(probeID: 3, sequence: 1, createdMs: UInt64(ts), records: records))
        return out
    }
    func record(_ end: UInt64, _ app: String, sub: String = "s1", bytes: UInt64 = 1500) -> FlowRecord {
        FlowRecord(
            startTimeMs: end - 10, endTimeMs: end, probeID: 3, interfaceIndex: 1, clientIP: .v4(0x0a00_0001), serverIP: .v6(0x2001_0db8, 7),
            clientPort: 51000, serverPort: 443, l4Protocol: 6, application: app, applicationCategory: "video", host: "h.example",
            subscriberID: sub, deviceType: "android", country: "FR", bytesUp: bytes, bytesDown: bytes * 10, packetsUp: 3, packetsDown: 9,
            flows: 1, rttMicros: 20_000, retransmissions: 0)
    }
    let t = UInt64(ts)
    return [
        ("one", message([record(t, "zoom")])),
        ("many", message((0..<30).map { record(t - UInt64($0) * 7000, ["a", "b", "c"][$0 % 3], sub: "s\($0)") })),
        ("late", message([record(t, "zoom"), record(t - 600_000, "dns")])),
        ("max-counters", message([record(t, "big", bytes: RecordLimits.maxBytes / 10)])),
        ("poison-time", message([record(UInt64.max - 5, "x")])),
        ("nul", message([record(t, "Zoom\0Evil")])),
    ]
}
