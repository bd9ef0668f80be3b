// fuzz-request: every protobuf decoder of SpateWire over the same arbitrary bytes.
//
// The server decodes a HEADERS payload with `decodeHeaders` and a DATA payload with
// `decodeQuery` (Query) or `decodeWatch` (Watch); Status, ListViews and Storage take no
// request. The client decodes STATUS and GOAWAY payloads and the answers of Status,
// ListViews, Query/Watch and Storage; those decoders run too, since a client talks to
// whatever answers on the port. Each decoder may only fail with INVALID_ARGUMENT. Whatever
// decodes must re-encode to bytes that decode again and re-encode to the same bytes (a
// fixed point after one round), so encoder and decoder agree on every value the decoder can
// produce. Every query the server would accept is then planned, as the node does before
// running it (QueryPlanner, over the default views): planning may refuse a query with a
// QueryPlanError (the server's INVALID_ARGUMENT or NOT_FOUND), nothing else. A crash, a
// trap, an ASan report or a broken round trip is a bug. The same bytes are then read a second way, as the fields of a Query
// value (`structured`), which goes through the same encode, decode and plan.
import FuzzSupport
import QueryPlanning
import SpateModel
import SpateWire

/// The node's default views, with the retention the planner tests use.
let planner = QueryPlanner(views: ViewDefinition.defaults.map { PlannableView(definition: $0, retentionDays: $0.bucketMs < 3_600_000 ? 10 : 90) })
/// A fixed "now" (2025-11-24T16:00:00Z), so that a crash reproduces from its input alone.
let nowMs: UInt64 = 1_764_000_000_000

/// Plans `query` as QueryEngine does before answering it.
func plan(_ query: Query, _ what: String) {
    do { _ = try planner.plan(query, nowMs: nowMs) } catch is QueryPlanError {
        return  // invalid query or unknown view: the two refusals the planner has
    } catch {
        fatalError("planning \(what): not a QueryPlanError: \(error)")
    }
}

/// Decodes `bytes` with `decode`; when that succeeds, checks the round trip through `encode`
/// and returns the value.
@discardableResult
func roundTrip<T>(_ name: String, _ bytes: [UInt8], _ decode: ([UInt8]) throws -> T, _ encode: (T) -> [UInt8]) -> T? {
    let value: T
    do { value = try decode(bytes) } catch {
        expectFailure(error, .invalidArgument, name)
        return nil
    }
    let once = encode(value)
    let again: T
    do { again = try decode(once) } catch { fatalError("\(name): \(value) encodes to bytes that do not decode: \(error)") }
    precondition(encode(again) == once, "\(name): \(value) decodes back as \(again)")
    return value
}

func check(_ bytes: [UInt8]) {
    // Server side.
    roundTrip("decodeHeaders", bytes, WireMessages.decodeHeaders, WireMessages.encode)
    if let query = roundTrip("decodeQuery", bytes, WireMessages.decodeQuery, WireMessages.encode) { plan(query, "a Query request") }
    if let watch = roundTrip("decodeWatch", bytes, WireMessages.decodeWatch, { WireMessages.encodeWatch($0.query, refreshMs: $0.refreshMs) }) {
        plan(watch.query, "a Watch request")
    }
    // Client side.
    roundTrip("decodeStatus", bytes, WireMessages.decodeStatus) { WireMessages.encodeStatus($0.code, $0.message) }
    roundTrip("decodeGoAway", bytes, WireMessages.decodeGoAway) { WireMessages.encodeGoAway(lastStreamID: $0.lastStreamID, $0.error.code, $0.error.message) }
    roundTrip("decodeClusterStatus", bytes, WireMessages.decodeClusterStatus, WireMessages.encode)
    roundTrip("decodeViews", bytes, WireMessages.decodeViews, WireMessages.encode)
    roundTrip("decodeQueryResult", bytes, { try WireMessages.decodeQueryResult($0) }, WireMessages.encode)
    roundTrip("decodeQueryResult(distinctExpected:)", bytes, { try WireMessages.decodeQueryResult($0, distinctExpected: true) }, WireMessages.encode)
    roundTrip("decodeStorage", bytes, WireMessages.decodeStorage, WireMessages.encode)
}

/// Reads fuzzer bytes as fields (zeros once they run out).
struct Reader {
    var bytes: ArraySlice<UInt8>
    mutating func byte() -> UInt8 { bytes.popFirst() ?? 0 }
    mutating func u64() -> UInt64 { (0..<8).reduce(0) { v, _ in v << 8 | UInt64(byte()) } }
    mutating func u32() -> UInt32 { (0..<4).reduce(0) { v, _ in v << 8 | UInt32(byte()) } }
    mutating func pick<T>(_ all: [T]) -> T { all[Int(byte()) % all.count] }
}

/// The second reading of the input: a Query value built field by field from the bytes, sent
/// through the wire (encode, then the server's decoder) and planned. Protobuf varints make
/// extreme integers hard to reach by mutating encoded requests; here an integer is 8 plain bytes.
func structured(_ bytes: [UInt8]) {
    var r = Reader(bytes: bytes[...])
    let range: QueryRange = r.byte() & 1 == 0 ? .absolute(startMs: r.u64(), endMs: r.u64()) : .last(ms: r.u64())
    let kind: QueryKind
    switch r.byte() % 5 {
    case 0: kind = .top(dimension: r.pick(Dimension.allCases), metric: r.pick(Metric.allCases), limit: Int(r.u32()))
    case 1:
        kind = .series(metric: r.pick(Metric.allCases), stepMs: r.u64(), splitBy: r.pick([nil] + Dimension.allCases), splitLimit: Int(r.byte()))
    case 2: kind = .totals
    case 3: kind = .distinctSubscribers
    default: kind = .rttQuantiles((0..<Int(r.byte() % 4)).map { _ in Double(bitPattern: r.u64()) })
    }
    let view = r.pick([nil] + ViewDefinition.defaults.map(\.name) + ["nope"])
    let filters = (0..<Int(r.byte() % 3)).map { _ in
        QueryFilter(dimension: r.pick(Dimension.allCases), op: r.pick([.eq, .notEq, .in, .prefix]), values: Array(["a", "b", "c"].prefix(Int(r.byte() % 4))))
    }
    let query = Query(range: range, filters: filters, view: view, kind: kind)
    let refreshMs = r.u32()
    if let q = roundTrip("decodeQuery (structured)", WireMessages.encode(query), WireMessages.decodeQuery, WireMessages.encode) {
        plan(q, "a structured Query request")
    }
    let watch = WireMessages.encodeWatch(query, refreshMs: refreshMs)
    if let w = roundTrip("decodeWatch (structured)", watch, WireMessages.decodeWatch, { WireMessages.encodeWatch($0.query, refreshMs: $0.refreshMs) }) {
        plan(w.query, "a structured Watch request")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    check(bytes)
    structured(bytes)
    return 0
}

/// The executable's entry point (see `runLibFuzzer`).
@_cdecl("fuzz_request_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runLibFuzzer(argc, argv) { data, size in
        guard let data else { return fuzz(UnsafePointer(bitPattern: 1)!, 0) }
        return fuzz(data, size)
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    exportIfAsked(seeds: seeds(), dictionary: dictionary())
    return 0
}

/// Valid encodings of every message the decoders read (the round-trip cases of
/// Tests/SpateWireTests), so the fuzzer starts from inputs that get past protobuf-c.
func seeds() -> [(String, [UInt8])] {
    var out: [(String, [UInt8])] = []
    out.append(("headers", WireMessages.encode(CallHeaders(method: "Query", timeoutMs: 5000, metadata: ["authorization": "Bearer s3cret"]))))
    out.append(("headers-watch", WireMessages.encode(CallHeaders(method: "Watch", metadata: ["a": "1", "b": "2"]))))
    let filters = [QueryFilter(dimension: .country, op: .in, values: ["FR", "DE"]), QueryFilter(dimension: .host, op: .prefix, values: ["edge"])]
    let kinds: [(String, QueryKind)] = [
        ("top", .top(dimension: .application, metric: .bytes, limit: 10)),
        ("series-split", .series(metric: .records, stepMs: 60_000, splitBy: .country, splitLimit: 4)),
        ("series", .series(metric: .packetsUp, stepMs: 0, splitBy: nil, splitLimit: 5)),
        ("totals", .totals), ("distinct", .distinctSubscribers), ("quantiles", .rttQuantiles([0.5, 0.99])),
    ]
    for (name, kind) in kinds {
        let q = Query(range: .absolute(startMs: 1_700_000_000_000, endMs: 1_700_000_600_000), filters: filters, view: "app_1m", kind: kind)
        out.append(("query-" + name, WireMessages.encode(q)))
        out.append(("watch-" + name, WireMessages.encodeWatch(Query(range: .last(ms: 900_000), kind: kind), refreshMs: 5000)))
    }
    out.append(("query-golden", WireMessages.encode(Query(range: .last(ms: 900_000), kind: .totals))))
    // Queries the default views can answer, so planning gets past "no view can answer".
    let appFilter = [QueryFilter(dimension: .application, op: .eq, values: ["youtube"])]
    for (name, kind) in kinds where name != "series-split" {
        let q = Query(range: .absolute(startMs: nowMs - 3_600_000, endMs: nowMs), filters: appFilter, kind: kind)
        out.append(("plannable-" + name, WireMessages.encode(q)))
    }
    out.append((
        "plannable-series-split",
        WireMessages.encodeWatch(
            Query(range: .last(ms: 86_400_000), view: "server_1m", kind: .series(metric: .bytes, stepMs: 300_000, splitBy: .serverPort, splitLimit: 10)),
            refreshMs: 10_000)
    ))
    out.append(("status", WireMessages.encodeStatus(.unauthenticated, "a token is required")))
    out.append(("goaway", WireMessages.encodeGoAway(lastStreamID: 3, .resourceExhausted, "frame of 16777216 bytes exceeds the limit of 4194304")))
    var t = MetricTotals()
    t.records = 5
    t.bytesDown = .max
    out.append((
        "query-result",
        WireMessages.encode(
            QueryResult(
                view: "app_1h", startMs: 1, endMs: 2, stepMs: 60_000, computedAtMs: 3, cached: true,
                top: [TopRow(value: "youtube", metric: 9, totals: t)], series: [TimeSeries(label: "x", points: [.init(tsMs: 1, value: 2)])],
                totals: t, distinct: 12.5, quantiles: [(0.5, 100), (0.99, 900)], documents: 7))
    ))
    let node = NodeStatus(nodeID: "a", queryAddress: "127.0.0.1:7400", partitions: [PartitionStatus(partition: 3, nextOffset: 10, committedOffset: 8, lag: 2)], recordsTotal: 99)
    out.append(("cluster-status", WireMessages.encode(ClusterStatus(nodeID: "a", version: "1", node: node, cluster: [node], storeHealth: "green", topic: "t", group: "g", warnings: ["w"]))))
    out.append(("views", WireMessages.encode([ViewSummary(name: "app_1m", bucketMs: 60_000, dimensions: ["application"], metrics: ["bytes"], sketches: ["rtt"], retentionDays: 7)])))
    out.append((
        "storage",
        WireMessages.encode(
            StorageReport(
                views: [ViewStorage(view: "app_1m", indices: 3, documents: 10, bytes: 1000, bytesPerRecord: 0.5, oldestDay: "2026.11.20", newestDay: "2026.11.22", retentionDays: 10)],
                totalBytes: 1000, maxTotalBytes: 5000, projectedDays: 12, bytesPerDay: 400, warnings: ["w"], retentionOwner: "a", lastRetentionMs: 5))
    ))
    return out
}

/// The strings the query decoder compares against (without them the fuzzer would have to
/// guess dimension and metric names byte by byte), and varints at the edges of the integer
/// types: overflow checks are branches libFuzzer cannot steer towards.
func dictionary() -> [[UInt8]] {
    let words = Dimension.allCases.map(\.rawValue) + Metric.allCases.map(\.rawValue) + Method.allCases.map(\.rawValue)
        + ViewDefinition.defaults.map(\.name) + ["subscribers", "rtt", "authorization", "Bearer "]
    let edges: [UInt64] = [.max, .max - 1, 1 << 63, (1 << 63) - 1, UInt64(UInt32.max), 1 << 32, UInt64(Int64.max) / 1000]
    return words.map { Array($0.utf8) } + edges.map(varint)
}

func varint(_ v: UInt64) -> [UInt8] {
    var v = v
    var out: [UInt8] = []
    while v >= 0x80 {
        out.append(UInt8(v & 0x7f) | 0x80)
        v >>= 7
    }
    return out + [UInt8(v)]
}
