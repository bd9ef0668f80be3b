// fuzz-store: every decoder of what the store returns.
//
// The first input byte picks the decoder, the rest is its input:
//   0  HyperLogLog(serialized:), then merge into a sketch of each precision and estimate;
//   1  QuantileSketch(serialized:), then merge with itself and read quantiles;
//   2  a JSON document as a checkpoint `_source` (CheckpointDocument.resume);
//   3  a JSON search answer: aggregations decoded, every total recombined exactly (ExactSums);
//   4  an open-bucket snapshot (PartitionRollup.restoring, default views), its reference
//      forged to match (the hash check passes), then saved and restored again.
// Returning nil or throwing the decoder's own error is expected; a trap, an ASan report or a
// decoded value that breaks its invariants is a bug.
import FuzzSupport
import SpateCodec
import SpateElastic
import SpateIngest
import SpateSchema
import SpateJSON
import SpateModel
import SpateQuery
import SpateWire

func check(_ data: UnsafeBufferPointer<UInt8>) {
    guard let selector = data.first else { return }
    let body = Array(data.dropFirst())
    switch selector % 5 {
    case 0:
        guard let h = HyperLogLog(serialized: body) else { return }
        var merged = HyperLogLog(precision: h.precision)
        merged.merge(h)
        merged.merge(h)
        precondition(!merged.estimate.isNaN && merged.estimate >= 0, "estimate \(merged.estimate)")
        precondition(HyperLogLog(serialized: h.serialized()) != nil, "a decoded sketch does not re-decode")
    case 1:
        guard let s = QuantileSketch(serialized: body) else { return }
        var merged = s
        merged.merge(s)
        for q in [0, 0.5, 0.99, 1] { _ = merged.quantile(q) }
        precondition(QuantileSketch(serialized: s.serialized()) != nil, "a decoded sketch does not re-decode")
    case 2:
        guard let json = try? JSONParser.parse(body) else { return }
        if let r = try? CheckpointDocument.resume(from: json) {
            precondition(r.offset >= 0 && r.offset <= r.horizonOffset && r.maxEventTs <= r.horizonMaxEventTs)
        }
    case 4:
        // The header's partition, offset and max event time, read as the decoder will, so the
        // fuzzer gets past the position check into the buckets.
        var r = Varint.Reader(bytes: body, position: 4)
        guard let p = r.next(), let offset = r.next(), let ts = r.next(), offset <= UInt64(Int64.max) else { return }
        let partition = Int32(truncatingIfNeeded: p)
        let ref = SnapshotReference(
            offset: Int64(offset), maxEventTs: ts, slot: 0, chunks: 1, bytes: body.count, hash: SnapshotReference.hash(of: body))
        let resume = ResumeState(offset: 0, maxEventTs: 0, horizonOffset: Int64(offset), horizonMaxEventTs: ts, snapshot: ref)
        guard let rollup = try? PartitionRollup.restoring(
            partition: partition, views: ViewDefinition.defaults, latenessMs: 120_000, snapshot: body, resume: resume)
        else { return }
        let again = rollup.snapshot()
        var second = resume
        second.snapshot?.bytes = again.count
        second.snapshot?.hash = SnapshotReference.hash(of: again)
        let restored = try? PartitionRollup.restoring(
            partition: partition, views: ViewDefinition.defaults, latenessMs: 120_000, snapshot: again, resume: second)
        precondition(restored?.openCells == rollup.openCells, "a restored snapshot does not restore again")
    default:
        guard let json = try? JSONParser.parse(body), let response = try? SearchResponse(json) else { return }
        for metric in Metric.allCases { _ = try? ExactSums.metric(metric, in: response.aggregations) }
        _ = try? ExactSums.totals(from: response.aggregations)
        for b in response.aggregations.values.flatMap(\.buckets) { _ = try? ExactSums.totals(from: b.aggregations) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    check(UnsafeBufferPointer(start: data, count: size))
    return 0
}

/// The executable's entry point (see `runLibFuzzer`).
@_cdecl("fuzz_store_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runLibFuzzer(argc, argv) { data, size in
        guard let data else { return fuzz(UnsafePointer(bitPattern: 1)!, 0) }
        return fuzz(data, size)
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    exportIfAsked(seeds: seeds(), dictionary: [Array("\"value\":".utf8), Array("\"buckets\":".utf8), Array("_hi".utf8), Array("_lo".utf8)])
    return 0
}

/// Real serialized sketches, a real checkpoint and a search answer of the shape queries read.
func seeds() -> [(String, [UInt8])] {
    var sparse = HyperLogLog(precision: 14)
    var dense = HyperLogLog(precision: 12)
    for i in 0..<40 { sparse.add(hash: StableHash.hash("s\(i)")) }
    for i in 0..<5000 { dense.add(hash: StableHash.hash("d\(i)")) }
    var q = QuantileSketch()
    for v in [0.0, 1, 5, 300, 20_000, 1e9] { q.add(v, times: 3) }
    let checkpoint = CheckpointDocument.source(
        group: "g", topic: "t", partition: 1,
        resume: ResumeState(offset: 5, maxEventTs: 1_795_000_000_000, horizonOffset: 9, horizonMaxEventTs: 1_795_000_060_000),
        node: "n", writtenAtMs: 1)
    let search = """
        {"hits":{"total":{"value":3}},"aggregations":{"records":{"value":12},"bytes_up_hi":{"value":3},"bytes_up_lo":{"value":16777215},\
        "bytes_up_max":{"value":5.0e7},"t":{"buckets":[{"key":"zoom","doc_count":2,"records":{"value":2.0},"bytes_down_hi":{"value":1e15}}]}}}
        """
    // A small open state: four records in the default views.
    var records: [FlowRecord] = []
    for i in 0..<4 {
        let n = UInt32(i)
        let end: UInt64 = 1_795_000_000_000 + UInt64(n) * 1000
        let app = i % 2 == 0 ? "zoom" : "dns"
        let server = IPAddress.v4(0xC633_6400 + n)
        records.append(
            FlowRecord(
                startTimeMs: end - 10, endTimeMs: end, probeID: 3, clientIP: .v4(0x0A00_0001), serverIP: server, clientPort: 5000,
                serverPort: 443, application: app, applicationCategory: "voip", subscriberID: "s\(i)", bytesUp: 100, bytesDown: 2000,
                packetsUp: 2, packetsDown: 3, rttMicros: 1000 * (n + 1)))
    }
    let rollup = PartitionRollup(partition: 1, views: ViewDefinition.defaults, latenessMs: 120_000, resume: .beginning())
    let message = RecordBatchEncoder().encode(RecordBatch(probeID: 3, sequence: 0, createdMs: 1_795_000_000_000, records: records))
    try? message.withUnsafeBytes { raw in try RecordBatchDecoder().withBatch(raw) { _ = try rollup.fold(offset: 0, batch: $0) } }
    var sink = NoDocuments()
    _ = rollup.flush(due: { _ in true }, into: &sink)
    return [
        ("snapshot", [4] + rollup.snapshot()),
        ("hll-sparse", [0] + sparse.serialized()), ("hll-dense", [0] + dense.serialized()), ("quantiles", [1] + q.serialized()),
        ("checkpoint", [2] + Array(JSONWriter.string(checkpoint).utf8)), ("search", [3] + Array(search.utf8)),
    ]
}

struct NoDocuments: RollupDocumentSink {
    mutating func add(_ document: RollupDocument) {}
}
