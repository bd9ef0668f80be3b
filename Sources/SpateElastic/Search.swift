public import SpateJSON

/// A search answer with its aggregations decoded into a tree.
public struct SearchResponse: Sendable {
    /// `hits.total.value` (exact when track_total_hits allows).
    public var totalHits: Int64
    public var hits: [JSONValue]
    public var aggregations: [String: Aggregation]
    public var raw: JSONValue

    public init(_ raw: JSONValue) throws {
        self.raw = raw
        let total = raw["hits"]?["total"]
        totalHits = total?["value"]?.int64Value ?? total?.int64Value ?? 0
        hits = raw["hits"]?["hits"]?.arrayValue ?? []
        aggregations = try Aggregation.decodeAll(raw["aggregations"])
    }
}

/// One aggregation result: a single metric value, per-percent values, or buckets with their
/// own sub-aggregations.
public enum Aggregation: Sendable, Hashable {
    /// `sum`, `min`, `max`, `avg`, `cardinality`, `value_count`: nil when no document matched.
    case value(Double?)
    /// `percentiles`: percent (e.g. "99.0") to value.
    case percentiles([String: Double])
    /// `terms`, `date_histogram`, `histogram`, `filters`…
    case buckets([Bucket])
    /// Anything else, kept as JSON (e.g. `top_hits`).
    case other(JSONValue)

    public struct Bucket: Sendable, Hashable {
        /// The bucket key (a term string or number, or a date in epoch ms).
        public var key: JSONValue
        public var keyAsString: String?
        public var documentCount: Int64
        public var aggregations: [String: Aggregation]

        /// Sub-aggregation `name`'s single value.
        public func value(_ name: String) -> Double? {
            if case .value(let v)? = aggregations[name] { return v }
            return nil
        }
    }

    public var value: Double? {
        if case .value(let v) = self { return v }
        return nil
    }

    public var buckets: [Bucket] {
        if case .buckets(let b) = self { return b }
        return []
    }

    static func decodeAll(_ json: JSONValue?) throws -> [String: Aggregation] {
        guard let o = json?.objectValue else { return [:] }
        var out: [String: Aggregation] = [:]
        for (name, v) in o { out[name] = try decode(v) }
        return out
    }

    static func decode(_ v: JSONValue) throws -> Aggregation {
        if let buckets = v["buckets"] {
            let list: [(String?, JSONValue)]
            if let a = buckets.arrayValue {
                list = a.map { (nil, $0) }
            } else if let o = buckets.objectValue {
                list = o.map { ($0.key, $0.value) }
            } else {
                throw ElasticError(.decoding, "buckets is neither array nor object")
            }
            return .buckets(try list.map { keyed, b in
                var subs: [String: Aggregation] = [:]
                for (k, sub) in b.objectValue ?? JSONObject() where !["key", "key_as_string", "doc_count"].contains(k) {
                    if sub.objectValue != nil { subs[k] = try decode(sub) }
                }
                return Bucket(
                    key: b["key"] ?? keyed.map(JSONValue.string) ?? .null, keyAsString: b["key_as_string"]?.stringValue,
                    documentCount: b["doc_count"]?.int64Value ?? 0, aggregations: subs)
            })
        }
        if let values = v["values"]?.objectValue {
            var out: [String: Double] = [:]
            for (k, x) in values { if let d = x.doubleValue { out[k] = d } }
            return .percentiles(out)
        }
        if let value = v["value"] {
            return .value(value.doubleValue)
        }
        return .other(v)
    }
}
