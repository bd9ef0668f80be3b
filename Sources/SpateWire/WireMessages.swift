internal import SpateProtos
public import SpateModel

/// The headers of a call (the HEADERS frame's payload).
public struct CallHeaders: Sendable, Hashable {
    public var method: String
    /// Relative deadline; 0 means none.
    public var timeoutMs: UInt32
    public var metadata: [String: String]

    public init(method: String, timeoutMs: UInt32 = 0, metadata: [String: String] = [:]) {
        self.method = method
        self.timeoutMs = timeoutMs
        self.metadata = metadata
    }
}

/// The method names of the query protocol.
public enum Method: String, Sendable, CaseIterable {
    case status = "Status"
    case listViews = "ListViews"
    case query = "Query"
    case watch = "Watch"
    case storage = "Storage"
    /// Node to node: the open buckets a node holds for the partitions it owns (the live tier).
    case openBuckets = "OpenBuckets"
}

/// Converts the protocol's messages between Swift values and protobuf bytes (protobuf-c).
/// Decoding malformed bytes, unknown dimensions or metrics throws INVALID_ARGUMENT.
public enum WireMessages {
    /// The latest time a request may name, 9999-12-31T23:59:59.999Z in Unix milliseconds; also
    /// the largest series step. Larger values are not dates, and the node's bucket arithmetic
    /// (QueryPlanner rounds `end + step - 1` down to a step) would overflow near UInt64.max —
    /// a trap that took the whole node down (found by Tests/Fuzz, fuzz-request).
    public static let maxTimeMs: UInt64 = 253_402_300_799_999

    // MARK: framing messages

    public static func encode(_ h: CallHeaders) -> [UInt8] {
        let a = ProtoArena()
        let m = a.make(Spate__Query__V1__RequestHeaders.self) { spate__query__v1__request_headers__init($0) }
        m.pointee.method = a.string(h.method)
        m.pointee.timeout_ms = h.timeoutMs
        let md = h.metadata.sorted { $0.key < $1.key }
        (m.pointee.n_metadata, m.pointee.metadata) = a.pointers(md) { kv in
            a.make(Spate__Query__V1__Metadata.self) {
                spate__query__v1__metadata__init($0)
                $0.pointee.key = a.string(kv.key)
                $0.pointee.value = a.string(kv.value)
            }
        }
        return pack(m, { spate__query__v1__request_headers__get_packed_size($0) }, { spate__query__v1__request_headers__pack($0, $1) })
    }

    public static func decodeHeaders(_ bytes: [UInt8]) throws -> CallHeaders {
        let a = ProtoArena()
        return try unpack(bytes, "RequestHeaders", a, { spate__query__v1__request_headers__unpack($0, $1, $2) }) { m in
            var md: [String: String] = [:]
            for e in elements(m.pointee.n_metadata, m.pointee.metadata) { md[text(e.pointee.key)] = text(e.pointee.value) }
            return CallHeaders(method: text(m.pointee.method), timeoutMs: m.pointee.timeout_ms, metadata: md)
        }
    }

    public static func encodeStatus(_ code: StatusCode, _ message: String) -> [UInt8] {
        let a = ProtoArena()
        let m = a.make(Spate__Query__V1__CallStatus.self) { spate__query__v1__call_status__init($0) }
        m.pointee.code = code.rawValue
        m.pointee.message = a.string(message)
        return pack(m, { spate__query__v1__call_status__get_packed_size($0) }, { spate__query__v1__call_status__pack($0, $1) })
    }

    public static func decodeStatus(_ bytes: [UInt8]) throws -> RPCError {
        try unpack(bytes, "CallStatus", ProtoArena(), { spate__query__v1__call_status__unpack($0, $1, $2) }) { m in
            RPCError(StatusCode(rawValue: m.pointee.code), text(m.pointee.message))
        }
    }

    public static func encodeGoAway(lastStreamID: UInt32, _ code: StatusCode, _ message: String) -> [UInt8] {
        let a = ProtoArena()
        let m = a.make(Spate__Query__V1__GoAway.self) { spate__query__v1__go_away__init($0) }
        m.pointee.last_stream_id = lastStreamID
        m.pointee.code = code.rawValue
        m.pointee.message = a.string(message)
        return pack(m, { spate__query__v1__go_away__get_packed_size($0) }, { spate__query__v1__go_away__pack($0, $1) })
    }

    public static func decodeGoAway(_ bytes: [UInt8]) throws -> (lastStreamID: UInt32, error: RPCError) {
        try unpack(bytes, "GoAway", ProtoArena(), { spate__query__v1__go_away__unpack($0, $1, $2) }) { m in
            (m.pointee.last_stream_id, RPCError(StatusCode(rawValue: m.pointee.code), text(m.pointee.message)))
        }
    }

    // MARK: Status

    public static func encode(_ s: ClusterStatus) -> [UInt8] {
        let a = ProtoArena()
        func node(_ n: NodeStatus) -> UnsafeMutablePointer<Spate__Query__V1__NodeState> {
            a.make(Spate__Query__V1__NodeState.self) { p in
                spate__query__v1__node_state__init(p)
                p.pointee.node_id = a.string(n.nodeID)
                p.pointee.query_address = a.string(n.queryAddress)
                (p.pointee.n_partitions, p.pointee.partitions) = a.pointers(n.partitions) { ps in
                    a.make(Spate__Query__V1__PartitionState.self) {
                        spate__query__v1__partition_state__init($0)
                        $0.pointee.partition = ps.partition
                        $0.pointee.next_offset = ps.nextOffset
                        $0.pointee.committed_offset = ps.committedOffset
                        $0.pointee.lag = ps.lag
                    }
                }
                p.pointee.records_per_second = n.recordsPerSecond
                p.pointee.documents_per_second = n.documentsPerSecond
                p.pointee.records_total = n.recordsTotal
                p.pointee.late_total = n.lateTotal
                p.pointee.malformed_total = n.malformedTotal
                p.pointee.documents_total = n.documentsTotal
                p.pointee.resident_bytes = n.residentBytes
                p.pointee.reachable = n.reachable ? 1 : 0
            }
        }
        let m = a.make(Spate__Query__V1__StatusResponse.self) { spate__query__v1__status_response__init($0) }
        m.pointee.node_id = a.string(s.nodeID)
        m.pointee.version = a.string(s.version)
        m.pointee.`self` = node(s.node)
        (m.pointee.n_cluster, m.pointee.cluster) = a.pointers(s.cluster, node)
        m.pointee.store_health = a.string(s.storeHealth)
        m.pointee.topic = a.string(s.topic)
        m.pointee.group = a.string(s.group)
        (m.pointee.n_warnings, m.pointee.warnings) = a.strings(s.warnings)
        return pack(m, { spate__query__v1__status_response__get_packed_size($0) }, { spate__query__v1__status_response__pack($0, $1) })
    }

    public static func decodeClusterStatus(_ bytes: [UInt8]) throws -> ClusterStatus {
        try unpack(bytes, "StatusResponse", ProtoArena(), { spate__query__v1__status_response__unpack($0, $1, $2) }) { m in
            func node(_ p: UnsafeMutablePointer<Spate__Query__V1__NodeState>?) -> NodeStatus {
                guard let p else { return NodeStatus(nodeID: "", queryAddress: "", partitions: []) }
                return NodeStatus(
                    nodeID: text(p.pointee.node_id), queryAddress: text(p.pointee.query_address),
                    partitions: elements(p.pointee.n_partitions, p.pointee.partitions).map {
                        PartitionStatus(
                            partition: $0.pointee.partition, nextOffset: $0.pointee.next_offset,
                            committedOffset: $0.pointee.committed_offset, lag: $0.pointee.lag)
                    },
                    recordsPerSecond: p.pointee.records_per_second, documentsPerSecond: p.pointee.documents_per_second,
                    recordsTotal: p.pointee.records_total, lateTotal: p.pointee.late_total, malformedTotal: p.pointee.malformed_total,
                    documentsTotal: p.pointee.documents_total, residentBytes: p.pointee.resident_bytes, reachable: p.pointee.reachable != 0)
            }
            return ClusterStatus(
                nodeID: text(m.pointee.node_id), version: text(m.pointee.version), node: node(m.pointee.`self`),
                cluster: elements(m.pointee.n_cluster, m.pointee.cluster).map { node($0) }, storeHealth: text(m.pointee.store_health),
                topic: text(m.pointee.topic), group: text(m.pointee.group), warnings: stringElements(m.pointee.n_warnings, m.pointee.warnings))
        }
    }

    // MARK: ListViews

    public static func encode(_ views: [ViewSummary]) -> [UInt8] {
        let a = ProtoArena()
        let m = a.make(Spate__Query__V1__ListViewsResponse.self) { spate__query__v1__list_views_response__init($0) }
        (m.pointee.n_views, m.pointee.views) = a.pointers(views) { v in
            a.make(Spate__Query__V1__ViewInfo.self) { p in
                spate__query__v1__view_info__init(p)
                p.pointee.name = a.string(v.name)
                p.pointee.bucket_ms = v.bucketMs
                (p.pointee.n_dimensions, p.pointee.dimensions) = a.strings(v.dimensions)
                (p.pointee.n_metrics, p.pointee.metrics) = a.strings(v.metrics)
                (p.pointee.n_sketches, p.pointee.sketches) = a.strings(v.sketches)
                p.pointee.retention_days = v.retentionDays
            }
        }
        return pack(m, { spate__query__v1__list_views_response__get_packed_size($0) }, { spate__query__v1__list_views_response__pack($0, $1) })
    }

    public static func decodeViews(_ bytes: [UInt8]) throws -> [ViewSummary] {
        try unpack(bytes, "ListViewsResponse", ProtoArena(), { spate__query__v1__list_views_response__unpack($0, $1, $2) }) { m in
            elements(m.pointee.n_views, m.pointee.views).map { p in
                ViewSummary(
                    name: text(p.pointee.name), bucketMs: p.pointee.bucket_ms,
                    dimensions: stringElements(p.pointee.n_dimensions, p.pointee.dimensions),
                    metrics: stringElements(p.pointee.n_metrics, p.pointee.metrics),
                    sketches: stringElements(p.pointee.n_sketches, p.pointee.sketches), retentionDays: p.pointee.retention_days)
            }
        }
    }

    // MARK: Query

    private static func buildQuery(_ q: Query, _ a: ProtoArena) -> UnsafeMutablePointer<Spate__Query__V1__QueryRequest> {
        let m = a.make(Spate__Query__V1__QueryRequest.self) { spate__query__v1__query_request__init($0) }
        m.pointee.range = a.make(Spate__Query__V1__TimeRange.self) { r in
            spate__query__v1__time_range__init(r)
            switch q.range {
            case .absolute(let s, let e):
                r.pointee.start_ms = s
                r.pointee.end_ms = e
            case .last(let ms): r.pointee.last_ms = ms
            }
        }
        (m.pointee.n_filters, m.pointee.filters) = a.pointers(q.filters) { f in
            a.make(Spate__Query__V1__Filter.self) { p in
                spate__query__v1__filter__init(p)
                p.pointee.dimension = a.string(f.dimension.rawValue)
                switch f.op {
                case .eq: p.pointee.op = SPATE__QUERY__V1__FILTER__OP__EQ
                case .notEq: p.pointee.op = SPATE__QUERY__V1__FILTER__OP__NOT_EQ
                case .in: p.pointee.op = SPATE__QUERY__V1__FILTER__OP__IN
                case .prefix: p.pointee.op = SPATE__QUERY__V1__FILTER__OP__PREFIX
                }
                (p.pointee.n_values, p.pointee.values) = a.strings(f.values)
            }
        }
        if let v = q.view { m.pointee.view = a.string(v) }
        switch q.kind {
        case .top(let d, let metric, let limit):
            m.pointee.kind_case = SPATE__QUERY__V1__QUERY_REQUEST__KIND_TOP
            m.pointee.top = a.make(Spate__Query__V1__TopNQuery.self) {
                spate__query__v1__top_nquery__init($0)
                $0.pointee.dimension = a.string(d.rawValue)
                $0.pointee.metric = a.string(metric.rawValue)
                $0.pointee.limit = UInt32(clamping: limit)
            }
        case .series(let metric, let step, let split, let splitLimit):
            m.pointee.kind_case = SPATE__QUERY__V1__QUERY_REQUEST__KIND_SERIES
            m.pointee.series = a.make(Spate__Query__V1__TimeSeriesQuery.self) {
                spate__query__v1__time_series_query__init($0)
                $0.pointee.metric = a.string(metric.rawValue)
                $0.pointee.step_ms = step
                if let split { $0.pointee.split_by = a.string(split.rawValue) }
                $0.pointee.split_limit = UInt32(clamping: splitLimit)
            }
        case .totals:
            m.pointee.kind_case = SPATE__QUERY__V1__QUERY_REQUEST__KIND_TOTALS
            m.pointee.totals = a.make(Spate__Query__V1__TotalsQuery.self) { spate__query__v1__totals_query__init($0) }
        case .distinctSubscribers:
            m.pointee.kind_case = SPATE__QUERY__V1__QUERY_REQUEST__KIND_DISTINCT
            m.pointee.distinct = a.make(Spate__Query__V1__DistinctQuery.self) {
                spate__query__v1__distinct_query__init($0)
                $0.pointee.what = a.string("subscribers")
            }
        case .rttQuantiles(let qs):
            m.pointee.kind_case = SPATE__QUERY__V1__QUERY_REQUEST__KIND_QUANTILES
            m.pointee.quantiles = a.make(Spate__Query__V1__QuantilesQuery.self) { p in
                spate__query__v1__quantiles_query__init(p)
                p.pointee.what = a.string("rtt")
                p.pointee.n_quantiles = qs.count
                let arr = a.array(Double.self, count: qs.count)
                for (i, v) in qs.enumerated() { arr[i] = v }
                p.pointee.quantiles = arr
            }
        }
        return m
    }

    public static func encode(_ q: Query) -> [UInt8] {
        let a = ProtoArena()
        let m = buildQuery(q, a)
        return pack(m, { spate__query__v1__query_request__get_packed_size($0) }, { spate__query__v1__query_request__pack($0, $1) })
    }

    private static func convertQuery(_ m: UnsafeMutablePointer<Spate__Query__V1__QueryRequest>) throws -> Query {
        func dimension(_ s: String, _ field: String) throws -> Dimension {
            guard let d = Dimension(rawValue: s) else {
                throw RPCError(.invalidArgument, "\(field): unknown dimension '\(s)' (known: \(Dimension.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return d
        }
        func metric(_ s: String) throws -> Metric {
            guard let v = Metric(rawValue: s) else {
                throw RPCError(.invalidArgument, "unknown metric '\(s)' (known: \(Metric.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return v
        }
        let range: QueryRange
        if let r = m.pointee.range {
            for (name, v) in [("start_ms", r.pointee.start_ms), ("end_ms", r.pointee.end_ms), ("last_ms", r.pointee.last_ms)] where v > maxTimeMs {
                throw RPCError(.invalidArgument, "range: \(name) \(v) is out of range (at most \(maxTimeMs), 9999-12-31T23:59:59.999Z)")
            }
            if r.pointee.last_ms > 0 {
                range = .last(ms: r.pointee.last_ms)
            } else {
                guard r.pointee.end_ms == 0 || r.pointee.start_ms < r.pointee.end_ms else {
                    throw RPCError(.invalidArgument, "range: start \(r.pointee.start_ms) is not before end \(r.pointee.end_ms)")
                }
                range = .absolute(startMs: r.pointee.start_ms, endMs: r.pointee.end_ms)
            }
        } else {
            throw RPCError(.invalidArgument, "range is missing")
        }
        let filters = try elements(m.pointee.n_filters, m.pointee.filters).map { f -> QueryFilter in
            let d = try dimension(text(f.pointee.dimension), "filter")
            let values = stringElements(f.pointee.n_values, f.pointee.values)
            let op: QueryFilter.Op
            switch f.pointee.op {
            case SPATE__QUERY__V1__FILTER__OP__EQ: op = .eq
            case SPATE__QUERY__V1__FILTER__OP__NOT_EQ: op = .notEq
            case SPATE__QUERY__V1__FILTER__OP__IN: op = .in
            case SPATE__QUERY__V1__FILTER__OP__PREFIX: op = .prefix
            default: throw RPCError(.invalidArgument, "filter on \(d.rawValue): no operator")
            }
            guard !values.isEmpty, op == .in || values.count == 1 else {
                throw RPCError(.invalidArgument, "filter on \(d.rawValue): \(op.rawValue) takes \(op == .in ? "one or more values" : "one value")")
            }
            return QueryFilter(dimension: d, op: op, values: values)
        }
        let view = text(m.pointee.view)
        let kind: QueryKind
        switch m.pointee.kind_case {
        case SPATE__QUERY__V1__QUERY_REQUEST__KIND_TOP:
            let t = m.pointee.top!.pointee
            guard t.limit > 0, t.limit <= 10_000 else { throw RPCError(.invalidArgument, "top: limit must be 1...10000, got \(t.limit)") }
            kind = .top(dimension: try dimension(text(t.dimension), "top"), metric: try metric(text(t.metric)), limit: Int(t.limit))
        case SPATE__QUERY__V1__QUERY_REQUEST__KIND_SERIES:
            let s = m.pointee.series!.pointee
            guard s.step_ms <= maxTimeMs else { throw RPCError(.invalidArgument, "series: step_ms \(s.step_ms) is too large (at most \(maxTimeMs))") }
            let split = text(s.split_by)
            kind = .series(
                metric: try metric(text(s.metric)), stepMs: s.step_ms, splitBy: split.isEmpty ? nil : try dimension(split, "split_by"),
                splitLimit: Int(min(s.split_limit == 0 ? 5 : s.split_limit, 50)))
        case SPATE__QUERY__V1__QUERY_REQUEST__KIND_TOTALS:
            kind = .totals
        case SPATE__QUERY__V1__QUERY_REQUEST__KIND_DISTINCT:
            let what = text(m.pointee.distinct!.pointee.what)
            guard what.isEmpty || what == "subscribers" else { throw RPCError(.invalidArgument, "distinct: only 'subscribers' is supported, not '\(what)'") }
            kind = .distinctSubscribers
        case SPATE__QUERY__V1__QUERY_REQUEST__KIND_QUANTILES:
            let q = m.pointee.quantiles!.pointee
            let what = text(q.what)
            guard what.isEmpty || what == "rtt" else { throw RPCError(.invalidArgument, "quantiles: only 'rtt' is supported, not '\(what)'") }
            let qs = (0..<q.n_quantiles).map { q.quantiles[$0] }
            guard !qs.isEmpty, qs.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {
                throw RPCError(.invalidArgument, "quantiles: give one or more values in [0, 1]")
            }
            kind = .rttQuantiles(qs)
        default:
            throw RPCError(.invalidArgument, "query kind is missing (top, series, totals, distinct or quantiles)")
        }
        return Query(range: range, filters: filters, view: view.isEmpty ? nil : view, kind: kind)
    }

    public static func decodeQuery(_ bytes: [UInt8]) throws -> Query {
        try unpack(bytes, "QueryRequest", ProtoArena(), { spate__query__v1__query_request__unpack($0, $1, $2) }, convertQuery)
    }

    public static func encodeWatch(_ q: Query, refreshMs: UInt32) -> [UInt8] {
        let a = ProtoArena()
        let m = a.make(Spate__Query__V1__WatchRequest.self) { spate__query__v1__watch_request__init($0) }
        m.pointee.query = buildQuery(q, a)
        m.pointee.refresh_ms = refreshMs
        return pack(m, { spate__query__v1__watch_request__get_packed_size($0) }, { spate__query__v1__watch_request__pack($0, $1) })
    }

    public static func decodeWatch(_ bytes: [UInt8]) throws -> (query: Query, refreshMs: UInt32) {
        try unpack(bytes, "WatchRequest", ProtoArena(), { spate__query__v1__watch_request__unpack($0, $1, $2) }) { m in
            guard let q = m.pointee.query else { throw RPCError(.invalidArgument, "watch: query is missing") }
            return (try convertQuery(q), m.pointee.refresh_ms)
        }
    }

    // MARK: QueryResponse

    public static func encode(_ r: QueryResult) -> [UInt8] {
        let a = ProtoArena()
        func totals(_ t: MetricTotals) -> UnsafeMutablePointer<Spate__Query__V1__Totals> {
            a.make(Spate__Query__V1__Totals.self) { p in
                spate__query__v1__totals__init(p)
                p.pointee.records = t.records
                p.pointee.flows = t.flows
                p.pointee.bytes_up = t.bytesUp
                p.pointee.bytes_down = t.bytesDown
                p.pointee.packets_up = t.packetsUp
                p.pointee.packets_down = t.packetsDown
                p.pointee.rtt_count = t.rttCount
                p.pointee.rtt_sum_us = t.rttSumMicros
            }
        }
        let m = a.make(Spate__Query__V1__QueryResponse.self) { spate__query__v1__query_response__init($0) }
        m.pointee.view = a.string(r.view)
        m.pointee.start_ms = r.startMs
        m.pointee.end_ms = r.endMs
        m.pointee.step_ms = r.stepMs
        m.pointee.computed_at_ms = r.computedAtMs
        m.pointee.cached = r.cached ? 1 : 0
        (m.pointee.n_top, m.pointee.top) = a.pointers(r.top) { row in
            a.make(Spate__Query__V1__TopNRow.self) {
                spate__query__v1__top_nrow__init($0)
                $0.pointee.value = a.string(row.value)
                $0.pointee.metric = row.metric
                $0.pointee.totals = totals(row.totals)
            }
        }
        (m.pointee.n_series, m.pointee.series) = a.pointers(r.series) { s in
            a.make(Spate__Query__V1__Series.self) { p in
                spate__query__v1__series__init(p)
                p.pointee.label = a.string(s.label)
                (p.pointee.n_points, p.pointee.points) = a.pointers(s.points) { pt in
                    a.make(Spate__Query__V1__SeriesPoint.self) {
                        spate__query__v1__series_point__init($0)
                        $0.pointee.ts_ms = pt.tsMs
                        $0.pointee.value = pt.value
                    }
                }
            }
        }
        if let t = r.totals { m.pointee.totals = totals(t) }
        if let d = r.distinct { m.pointee.distinct = d }
        (m.pointee.n_quantiles, m.pointee.quantiles) = a.pointers(r.quantiles) { q in
            a.make(Spate__Query__V1__QuantileValue.self) {
                spate__query__v1__quantile_value__init($0)
                $0.pointee.quantile = q.0
                $0.pointee.value = q.1
            }
        }
        m.pointee.documents = r.documents
        m.pointee.live_partitions = r.livePartitions
        m.pointee.store_partitions = r.storePartitions
        return pack(m, { spate__query__v1__query_response__get_packed_size($0) }, { spate__query__v1__query_response__pack($0, $1) })
    }

    public static func decodeQueryResult(_ bytes: [UInt8], distinctExpected: Bool = false) throws -> QueryResult {
        try unpack(bytes, "QueryResponse", ProtoArena(), { spate__query__v1__query_response__unpack($0, $1, $2) }) { m in
            func totals(_ p: UnsafeMutablePointer<Spate__Query__V1__Totals>?) -> MetricTotals? {
                guard let p else { return nil }
                var t = MetricTotals()
                t.records = p.pointee.records
                t.flows = p.pointee.flows
                t.bytesUp = p.pointee.bytes_up
                t.bytesDown = p.pointee.bytes_down
                t.packetsUp = p.pointee.packets_up
                t.packetsDown = p.pointee.packets_down
                t.rttCount = p.pointee.rtt_count
                t.rttSumMicros = p.pointee.rtt_sum_us
                return t
            }
            var r = QueryResult(
                view: text(m.pointee.view), startMs: m.pointee.start_ms, endMs: m.pointee.end_ms, stepMs: m.pointee.step_ms,
                computedAtMs: m.pointee.computed_at_ms, cached: m.pointee.cached != 0,
                top: elements(m.pointee.n_top, m.pointee.top).map {
                    TopRow(value: text($0.pointee.value), metric: $0.pointee.metric, totals: totals($0.pointee.totals) ?? MetricTotals())
                },
                series: elements(m.pointee.n_series, m.pointee.series).map { s in
                    TimeSeries(
                        label: text(s.pointee.label),
                        points: elements(s.pointee.n_points, s.pointee.points).map { .init(tsMs: $0.pointee.ts_ms, value: $0.pointee.value) })
                },
                totals: totals(m.pointee.totals),
                distinct: m.pointee.distinct != 0 || distinctExpected ? m.pointee.distinct : nil,
                quantiles: elements(m.pointee.n_quantiles, m.pointee.quantiles).map { ($0.pointee.quantile, $0.pointee.value) },
                documents: m.pointee.documents)
            r.livePartitions = m.pointee.live_partitions
            r.storePartitions = m.pointee.store_partitions
            return r
        }
    }

    // MARK: Storage

    public static func encode(_ s: StorageReport) -> [UInt8] {
        let a = ProtoArena()
        let m = a.make(Spate__Query__V1__StorageResponse.self) { spate__query__v1__storage_response__init($0) }
        (m.pointee.n_views, m.pointee.views) = a.pointers(s.views) { v in
            a.make(Spate__Query__V1__ViewStorage.self) { p in
                spate__query__v1__view_storage__init(p)
                p.pointee.view = a.string(v.view)
                p.pointee.indices = UInt32(clamping: v.indices)
                p.pointee.documents = v.documents
                p.pointee.bytes = v.bytes
                p.pointee.bytes_per_record = v.bytesPerRecord
                p.pointee.oldest_day = a.string(v.oldestDay)
                p.pointee.newest_day = a.string(v.newestDay)
                p.pointee.retention_days = v.retentionDays
            }
        }
        m.pointee.total_bytes = s.totalBytes
        m.pointee.max_total_bytes = s.maxTotalBytes
        m.pointee.projected_days = s.projectedDays
        m.pointee.bytes_per_day = s.bytesPerDay
        (m.pointee.n_warnings, m.pointee.warnings) = a.strings(s.warnings)
        m.pointee.retention_owner = a.string(s.retentionOwner)
        m.pointee.last_retention_ms = s.lastRetentionMs
        return pack(m, { spate__query__v1__storage_response__get_packed_size($0) }, { spate__query__v1__storage_response__pack($0, $1) })
    }

    public static func decodeStorage(_ bytes: [UInt8]) throws -> StorageReport {
        try unpack(bytes, "StorageResponse", ProtoArena(), { spate__query__v1__storage_response__unpack($0, $1, $2) }) { m in
            StorageReport(
                views: elements(m.pointee.n_views, m.pointee.views).map { p in
                    ViewStorage(
                        view: text(p.pointee.view), indices: Int(p.pointee.indices), documents: p.pointee.documents, bytes: p.pointee.bytes,
                        bytesPerRecord: p.pointee.bytes_per_record, oldestDay: text(p.pointee.oldest_day), newestDay: text(p.pointee.newest_day),
                        retentionDays: p.pointee.retention_days)
                },
                totalBytes: m.pointee.total_bytes, maxTotalBytes: m.pointee.max_total_bytes, projectedDays: m.pointee.projected_days,
                bytesPerDay: m.pointee.bytes_per_day, warnings: stringElements(m.pointee.n_warnings, m.pointee.warnings),
                retentionOwner: text(m.pointee.retention_owner), lastRetentionMs: m.pointee.last_retention_ms)
        }
    }
}
