public import SpateElastic
public import SpateSchema
import SpateJSON
public import SpateModel
import SpateWire

/// Runs plans against Elasticsearch: sums come from aggregations (summing the per-partition
/// documents), sketches are fetched and merged in the node.
public struct QueryExecutor: Sendable {
    public let client: ElasticClient
    public let naming: IndexNaming

    public init(client: ElasticClient, naming: IndexNaming) {
        self.client = client
        self.naming = naming
    }

    /// The daily indices a plan touches, comma-separated (missing ones are ignored).
    func indices(_ plan: QueryPlan) -> String {
        var out: [String] = []
        var day = plan.startMs / 86_400_000
        let last = (plan.endMs - 1) / 86_400_000
        if last - day > 62 { return naming.pattern(view: plan.view.name) }
        while day <= last {
            out.append(naming.dailyIndex(view: plan.view.name, ms: day * 86_400_000))
            day += 1
        }
        return out.joined(separator: ",")
    }

    func filter(_ plan: QueryPlan, startMs: UInt64? = nil, endMs: UInt64? = nil, excludeOtherOf grouped: Dimension? = nil) -> JSONValue {
        var must: [JSONValue] = [["range": ["ts": ["gte": .number(startMs ?? plan.startMs), "lt": .number(endMs ?? plan.endMs), "format": "epoch_millis"]]]]
        var mustNot: [JSONValue] = []
        for f in plan.filters {
            let field = JSONValue.string(f.dimension.rawValue)
            switch f.op {
            case .eq: must.append(["term": .object(JSONObject([(f.dimension.rawValue, .string(f.values[0]))]))])
            case .in: must.append(["terms": .object(JSONObject([(f.dimension.rawValue, .array(f.values.map(JSONValue.string)))]))])
            case .prefix: must.append(["prefix": .object(JSONObject([(f.dimension.rawValue, .string(f.values[0]))]))])
            case .notEq: mustNot.append(["term": .object(JSONObject([(f.dimension.rawValue, .string(f.values[0]))]))])
            }
            _ = field
        }
        // Ranking a top-K view by one of its dimensions: its "(other)" document is not a value.
        if let grouped, plan.view.topK > 0 {
            mustNot.append(["term": .object(JSONObject([(grouped.rawValue, .string(ViewDefinition.otherValue))]))])
        }
        var b = JSONObject()
        b["filter"] = .array(must)
        if !mustNot.isEmpty { b["must_not"] = .array(mustNot) }
        return ["bool": .object(b)]
    }

    static let totalFields = ["records", "flows", "bytes_up", "bytes_down", "packets_up", "packets_down", "rtt_count", "rtt_sum_us"]

    /// Answers `plan`; `nowMs` stamps the result.
    public func execute(_ plan: QueryPlan, nowMs: UInt64) async throws -> QueryResult {
        var result = QueryResult(view: plan.view.name, startMs: plan.startMs, endMs: plan.endMs, stepMs: plan.stepMs, computedAtMs: nowMs)
        let index = indices(plan)
        switch plan.kind {
        case .totals:
            let r = try await search(index, ["size": 0, "query": filter(plan), "aggs": .object(ExactSums.aggregations(Self.totalFields))])
            result.totals = try ExactSums.totals(from: r.aggregations)
        case .top(let d, let metric, let limit):
            // Ranked by the plain sum of the metric's stored field (an order, exact far beyond
            // any tie that matters); every reported number is an exact sum.
            var aggs = ExactSums.aggregations(Self.totalFields)
            aggs["m"] = ["sum": ["field": .string(metric.rawValue)]]
            let body: JSONValue = [
                "size": 0, "query": filter(plan, excludeOtherOf: d),
                "aggs": [
                    "t": [
                        "terms": ["field": .string(d.rawValue), "size": .number(limit), "shard_size": .number(max(limit * 5, 200)), "order": ["m": "desc"]],
                        "aggs": .object(aggs),
                    ]
                ],
            ]
            let r = try await search(index, body)
            result.top = try (r.aggregations["t"]?.buckets ?? []).map { b in
                TopRow(
                    value: b.key.stringValue ?? b.key.int64Value.map(String.init) ?? "",
                    metric: try ExactSums.metric(metric, in: b.aggregations), totals: try ExactSums.totals(from: b.aggregations))
            }
        case .series(let metric, _, let split, let splitLimit):
            let histogram: JSONValue = [
                "date_histogram": [
                    "field": "ts", "fixed_interval": .string("\(plan.stepMs)ms"), "min_doc_count": 0,
                    "extended_bounds": ["min": .number(plan.startMs), "max": .number(plan.endMs - plan.stepMs)],
                ],
                "aggs": .object(ExactSums.aggregations(metric.fields, prefix: "v_")),
            ]
            func points(_ agg: Aggregation?) throws -> [TimeSeries.Point] {
                try (agg?.buckets ?? []).compactMap { b in
                    guard let ts = b.key.int64Value, ts >= 0, UInt64(ts) >= plan.startMs, UInt64(ts) < plan.endMs else { return nil }
                    return TimeSeries.Point(tsMs: UInt64(ts), value: try ExactSums.metric(metric, in: b.aggregations, prefix: "v_"))
                }
            }
            if let split {
                let body: JSONValue = [
                    "size": 0, "query": filter(plan, excludeOtherOf: split),
                    "aggs": [
                        "s": [
                            "terms": ["field": .string(split.rawValue), "size": .number(splitLimit), "shard_size": .number(max(splitLimit * 5, 200)), "order": ["m": "desc"]],
                            "aggs": ["m": ["sum": ["field": .string(metric.rawValue)]], "h": histogram],
                        ]
                    ],
                ]
                let r = try await search(index, body)
                result.series = try (r.aggregations["s"]?.buckets ?? []).map { b in
                    TimeSeries(label: b.key.stringValue ?? "", points: try points(b.aggregations["h"]))
                }
            } else {
                let r = try await search(index, ["size": 0, "query": filter(plan), "aggs": ["h": histogram]])
                result.series = [TimeSeries(label: "", points: try points(r.aggregations["h"]))]
            }
        case .distinctSubscribers:
            var merged: HyperLogLog?
            result.documents = try await scanSketches(plan, field: "subscribers_hll") { bytes in
                guard let h = HyperLogLog(serialized: bytes) else { return }
                if merged == nil {
                    merged = h
                } else if merged?.precision == h.precision {
                    merged?.merge(h)
                }
            }
            result.distinct = merged?.estimate ?? 0
        case .rttQuantiles(let qs):
            var merged: QuantileSketch?
            result.documents = try await scanSketches(plan, field: "rtt_sketch") { bytes in
                guard let s = QuantileSketch(rttSerialized: bytes) else { return }
                if merged == nil {
                    merged = s
                } else if merged?.relativeAccuracy == s.relativeAccuracy {
                    merged?.merge(s)
                }
            }
            result.quantiles = qs.map { ($0, merged?.quantile($0) ?? 0) }
        }
        return result
    }

    /// One search; store errors become UNAVAILABLE (retriable) or INTERNAL.
    func search(_ index: String, _ body: JSONValue) async throws -> SearchResponse {
        do { return try await client.search(index: index, body: body) } catch let e as ElasticError {
            throw RPCError(e.isRetriable ? .unavailable : .internal, "store: \(e.message)")
        }
    }

    /// Reads the sketch field of every matching document.
    private func scanSketches(_ plan: QueryPlan, field: String, _ body: ([UInt8]) -> Void) async throws -> UInt64 {
        var documents: UInt64 = 0
        try await scanSources(plan, fields: [field], query: { filter(plan, startMs: $0, endMs: $1) }) { source in
            guard let text = source[field]?.stringValue, let bytes = Base64.decode(text) else { return }
            body(bytes)
            documents += 1
        }
        return documents
    }

    /// Passes the `_source` (`fields` only) of every document matching `query(start, end)` over
    /// the plan's range to `body`, in time slices small enough for one page each (≤ 10,000
    /// hits), without relying on a sort over `_id`.
    func scanSources(_ plan: QueryPlan, fields: [String], query: (UInt64, UInt64) -> JSONValue, _ body: (JSONValue) throws -> Void) async throws {
        let page = 10_000
        var pending: [(UInt64, UInt64)] = [(plan.startMs, plan.endMs)]
        let index = indices(plan)
        while let (s, e) = pending.popLast() {
            let r: JSONValue
            do {
                r = try await client.searchRaw(
                    index: index,
                    body: ["size": .number(page), "track_total_hits": true, "_source": .array(fields.map(JSONValue.string)), "query": query(s, e)])
            } catch let e as ElasticError {
                throw RPCError(e.isRetriable ? .unavailable : .internal, "store: \(e.message)")
            }
            let total = r["hits"]?["total"]?["value"]?.int64Value ?? 0
            let hits = r["hits"]?["hits"]?.arrayValue ?? []
            if total > Int64(hits.count) {
                // A store returns min(total, size) hits. One that claims more while returning
                // less was split toward single buckets: RESOURCE_EXHAUSTED ("narrow the
                // filters") after a search per halving, or, lying only about slices wider than a
                // bucket, two searches per bucket of the range (millions for a long one).
                guard hits.count >= page else {
                    throw RPCError(.internal, "store: \(hits.count) hits for a total of \(total) in a page of \(page)")
                }
                let bucket = plan.view.bucketMs
                guard e - s > bucket else {
                    throw RPCError(.resourceExhausted, "more than \(page) documents in one \(bucket / 1000) s bucket; narrow the filters")
                }
                let mid = (s + (e - s) / 2) / bucket * bucket
                let cut = mid > s ? mid : s + bucket
                pending.append((s, cut))
                pending.append((cut, e))
                continue
            }
            for h in hits { if let source = h["_source"] { try body(source) } }
        }
    }
}
