public import SpateModel
import SpateWire

/// One part of an answer — a slot (a series step, or the view's bucket for other kinds) over
/// some partitions, or the part the store answers now — in a form that adds exactly: sums
/// as integers, keyed sums complete (every key, not a top list), sketches unmerged. Two parts
/// over disjoint (partition, bucket) sets add to the part over their union, which is what
/// lets closed buckets be cached and added to what is still changing (docs/DESIGN.md, "Live
/// dashboards").
public enum PartialAnswer: Sendable, Hashable {
    /// `totals`.
    case totals(MetricTotals)
    /// One point of an unsplit series: the metric's sum.
    case value(UInt64)
    /// A series split by a dimension: the metric's sum per value of the dimension.
    case split([String: UInt64])
    /// `top`: every value of the ranked dimension with its sums.
    case keyed([String: MetricTotals])
    /// `distinct`: the merged subscriber sketch (nil: no document), and documents merged.
    case subscribers(HyperLogLog?, documents: UInt64)
    /// `quantiles`: the merged RTT sketch (nil: no document), and documents merged.
    case rtt(QuantileSketch?, documents: UInt64)

    /// The empty part of `kind`.
    public static func empty(_ kind: QueryKind) -> PartialAnswer {
        switch kind {
        case .totals: return .totals(MetricTotals())
        case .series(_, _, let split, _): return split == nil ? .value(0) : .split([:])
        case .top: return .keyed([:])
        case .distinctSubscribers: return .subscribers(nil, documents: 0)
        case .rttQuantiles: return .rtt(nil, documents: 0)
        }
    }

    /// Memory this part holds, estimated (the closed-bucket cache's budget).
    public var estimatedBytes: Int {
        switch self {
        case .totals, .value: return 80
        case .split(let m): return 48 + m.reduce(0) { $0 + 40 + $1.key.utf8.count }
        case .keyed(let m): return 48 + m.reduce(0) { $0 + 96 + $1.key.utf8.count }
        case .subscribers(let h, _): return 48 + (h?.memoryBytes ?? 0)
        case .rtt(let s, _): return 48 + (s?.memoryBytes ?? 0)
        }
    }

    /// Adds `other` (a part over other partitions or buckets of the same query).
    /// - Throws: `RPCError(.invalidArgument)` when a sum passes 2^64 − 1; `RPCError(.internal)`
    ///   when the parts are of different kinds (a bug, never a trap).
    public mutating func add(_ other: PartialAnswer) throws {
        switch (self, other) {
        case (.totals(var a), .totals(let b)):
            try a.add(b)
            self = .totals(a)
        case (.value(let a), .value(let b)):
            self = .value(try Self.sum(a, b, "the metric"))
        case (.split(var a), .split(let b)):
            for (k, v) in b { a[k] = try Self.sum(a[k] ?? 0, v, "the metric") }
            self = .split(a)
        case (.keyed(var a), .keyed(let b)):
            for (k, v) in b {
                var t = a[k] ?? MetricTotals()
                try t.add(v)
                a[k] = t
            }
            self = .keyed(a)
        case (.subscribers(let a, let da), .subscribers(let b, let db)):
            self = .subscribers(Self.merge(a, b), documents: da &+ db)
        case (.rtt(let a, let da), .rtt(let b, let db)):
            self = .rtt(Self.merge(a, b), documents: da &+ db)
        default:
            throw RPCError(.internal, "partial answers of different kinds cannot be added")
        }
    }

    /// Fills `result` (range, view and stamp already set) with the answer for `plan`: from
    /// `whole` (the sum of every part) for top, totals and sketches; from `slots`, in slot
    /// order, for series, whose points must each be exact but whose total need not fit.
    public static func answer(
        _ plan: QueryPlan, whole: PartialAnswer, slots: [(start: UInt64, part: PartialAnswer)], into result: inout QueryResult
    ) throws {
        switch (plan.kind, whole) {
        case (.totals, .totals(let t)):
            result.totals = t
        case (.top(_, let metric, let limit), .keyed(let rows)):
            let ranked = rows.map { TopRow(value: $0.key, metric: $0.value.value(metric), totals: $0.value) }
                .sorted { $0.metric != $1.metric ? $0.metric > $1.metric : $0.value < $1.value }
            result.top = Array(ranked.prefix(max(0, limit)))
        case (.series(_, _, nil, _), _):
            var points: [TimeSeries.Point] = []
            var at = plan.startMs
            var index = 0
            while at < plan.endMs {
                while index < slots.count, slots[index].start < at { index += 1 }
                var v: UInt64 = 0
                if index < slots.count, slots[index].start == at, case .value(let x) = slots[index].part { v = x }
                points.append(TimeSeries.Point(tsMs: at, value: v))
                at += plan.stepMs
            }
            result.series = [TimeSeries(label: "", points: points)]
        case (.series(_, _, _?, let splitLimit), _):
            // Labels are ranked by their sum over the range; only each point must be exact (a
            // label's total may pass 2^64 while every point fits), so the ranking saturates.
            var labels: [String: UInt64] = [:]
            for (_, part) in slots {
                if case .split(let m) = part { for (k, v) in m { labels[k] = (labels[k] ?? 0).saturatingAdd(v) } }
            }
            let chosen = labels.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                .prefix(max(0, splitLimit)).map(\.key)
            var bySlot: [UInt64: [String: UInt64]] = [:]
            for (start, part) in slots { if case .split(let m) = part { bySlot[start] = m } }
            result.series = chosen.map { label in
                var points: [TimeSeries.Point] = []
                var at = plan.startMs
                while at < plan.endMs {
                    points.append(TimeSeries.Point(tsMs: at, value: bySlot[at]?[label] ?? 0))
                    at += plan.stepMs
                }
                return TimeSeries(label: label, points: points)
            }
        case (.distinctSubscribers, .subscribers(let h, let documents)):
            result.distinct = h?.estimate ?? 0
            result.documents = documents
        case (.rttQuantiles(let qs), .rtt(let s, let documents)):
            result.quantiles = qs.map { ($0, s?.quantile($0) ?? 0) }
            result.documents = documents
        default:
            throw RPCError(.internal, "a partial answer does not match its query")
        }
    }

    private static func sum(_ a: UInt64, _ b: UInt64, _ what: String) throws -> UInt64 {
        let (s, o) = a.addingReportingOverflow(b)
        guard !o else {
            throw RPCError(.invalidArgument, "the sum of \(what) over this query exceeds 2^64 - 1; narrow the time range or add filters")
        }
        return s
    }

    private static func merge(_ a: HyperLogLog?, _ b: HyperLogLog?) -> HyperLogLog? {
        guard var a else { return b }
        guard let b else { return a }
        // Documents of one view share one precision; another (a changed definition) is skipped,
        // as the store path does.
        if a.precision == b.precision { a.merge(b) }
        return a
    }

    private static func merge(_ a: QuantileSketch?, _ b: QuantileSketch?) -> QuantileSketch? {
        guard var a else { return b }
        guard let b else { return a }
        if a.relativeAccuracy == b.relativeAccuracy { a.merge(b) }
        return a
    }
}

extension MetricTotals {
    /// Adds `other`, field by field.
    /// - Throws: `RPCError(.invalidArgument)` when a sum, or bytes or packets up + down, passes 2^64 − 1.
    mutating func add(_ other: MetricTotals) throws {
        func sum(_ a: UInt64, _ b: UInt64, _ field: String) throws -> UInt64 {
            let (s, o) = a.addingReportingOverflow(b)
            guard !o else {
                throw RPCError(.invalidArgument, "the sum of \(field) over this query exceeds 2^64 - 1; narrow the time range or add filters")
            }
            return s
        }
        records = try sum(records, other.records, "records")
        flows = try sum(flows, other.flows, "flows")
        bytesUp = try sum(bytesUp, other.bytesUp, "bytes_up")
        bytesDown = try sum(bytesDown, other.bytesDown, "bytes_down")
        packetsUp = try sum(packetsUp, other.packetsUp, "packets_up")
        packetsDown = try sum(packetsDown, other.packetsDown, "packets_down")
        rttCount = try sum(rttCount, other.rttCount, "rtt_count")
        rttSumMicros = try sum(rttSumMicros, other.rttSumMicros, "rtt_sum_us")
        _ = try sum(bytesUp, bytesDown, "bytes")
        _ = try sum(packetsUp, packetsDown, "packets")
    }
}
