public import SpateModel
import SpateWire

/// Why the planner refused a query. The server maps it to a status at its boundary
/// (`QueryEngine`): `invalidQuery` is INVALID_ARGUMENT, `unknownView` NOT_FOUND.
public struct QueryPlanError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of refusal.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Value: Sendable, Hashable { case invalidQuery, unknownView }
        private let value: Value
        /// The query cannot be answered as asked (range, step, dimensions, cost).
        public static let invalidQuery = Code(value: .invalidQuery)
        /// The query names a view that does not exist.
        public static let unknownView = Code(value: .unknownView)
        /// "invalid query" or "unknown view".
        public var description: String { value == .invalidQuery ? "invalid query" : "unknown view" }
    }

    /// The kind of refusal.
    public var code: Code
    /// What to change, for the person who asked.
    public var message: String

    /// A refusal.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The code and the message.
    public var description: String { "\(code): \(message)" }
}

/// How a query will be answered: which view, which exact (bucket-aligned) range and step.
public struct QueryPlan: Sendable, Hashable {
    public var view: ViewDefinition
    public var startMs: UInt64
    public var endMs: UInt64
    /// Series step; the view's bucket for other kinds.
    public var stepMs: UInt64
    public var filters: [QueryFilter]
    public var kind: QueryKind

    /// A plan as the planner makes it (tests build their own).
    public init(view: ViewDefinition, startMs: UInt64, endMs: UInt64, stepMs: UInt64, filters: [QueryFilter], kind: QueryKind) {
        self.view = view
        self.startMs = startMs
        self.endMs = endMs
        self.stepMs = stepMs
        self.filters = filters
        self.kind = kind
    }
}

/// A view the planner may use, with how long its data is kept.
public struct PlannableView: Sendable, Hashable {
    public var definition: ViewDefinition
    public var retentionDays: UInt32

    public init(definition: ViewDefinition, retentionDays: UInt32) {
        self.definition = definition
        self.retentionDays = retentionDays
    }
}

/// Chooses the coarsest view that can answer a query exactly enough (Akvorado's rule) and
/// rounds the range outward to its buckets.
public struct QueryPlanner: Sendable {
    public let views: [PlannableView]
    /// The share of the requested range that rounding to a coarser view may add.
    public let roundingTolerance: Double
    /// Filters a query may carry, and values over all its filters: each becomes a clause of
    /// the store request.
    public static let maxFilters = 32
    /// See `maxFilters`.
    public static let maxFilterValues = 1024
    /// Quantiles one query may ask for: each is a number in the answer.
    public static let maxQuantiles = 100
    /// Buckets one store request may create: Elasticsearch's and OpenSearch's default
    /// `search.max_buckets` (65,535). A split series asks for points × split terms per shard.
    public static let maxStoreBuckets: UInt64 = 65_535

    /// Terms a split series asks of each shard; QueryExecutor's `shard_size` for the split.
    static func splitShardTerms(_ splitLimit: Int) -> UInt64 { UInt64(max(splitLimit * 5, 200)) }

    /// Series steps the planner picks from when none is given (≈ 60 points).
    static let niceSteps: [UInt64] = [
        60_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
    ]

    public init(views: [PlannableView], roundingTolerance: Double = 0.1) {
        self.views = views
        self.roundingTolerance = roundingTolerance
    }

    public func plan(_ query: Query, nowMs: UInt64) throws -> QueryPlan {
        let (rawStart, rawEnd) = query.range.resolved(nowMs: nowMs)
        let end = rawEnd == 0 ? nowMs : rawEnd
        guard end > rawStart else { throw QueryPlanError(.invalidQuery, "range: start must be before end") }
        // Bounded here too (the wire decoder checks the same), so no rounding below can overflow.
        guard end <= WireMessages.maxTimeMs else { throw QueryPlanError(.invalidQuery, "range: the end is after 9999-12-31") }
        if case .series(_, let step, _, _) = query.kind, step > WireMessages.maxTimeMs {
            throw QueryPlanError(.invalidQuery, "step: \(step) ms is out of range")
        }
        guard query.filters.count <= Self.maxFilters else {
            throw QueryPlanError(.invalidQuery, "\(query.filters.count) filters; at most \(Self.maxFilters)")
        }
        let values = query.filters.reduce(0) { $0 + $1.values.count }
        guard values <= Self.maxFilterValues else {
            throw QueryPlanError(.invalidQuery, "\(values) filter values; at most \(Self.maxFilterValues) over all filters")
        }
        if case .rttQuantiles(let qs) = query.kind, qs.count > Self.maxQuantiles {
            throw QueryPlanError(.invalidQuery, "\(qs.count) quantiles; at most \(Self.maxQuantiles)")
        }
        var needed = Set(query.filters.map(\.dimension))
        var sketch: SketchKind?
        var seriesStep: UInt64?
        switch query.kind {
        case .top(let d, _, _): needed.insert(d)
        case .series(_, let step, let split, _):
            if let split { needed.insert(split) }
            seriesStep = step
        case .totals: break
        case .distinctSubscribers: sketch = .subscribers
        case .rttQuantiles: sketch = .rtt
        }
        func fits(_ v: PlannableView) -> Bool {
            needed.isSubset(of: Set(v.definition.dimensions)) && (sketch.map { v.definition.sketches.contains($0) } ?? true)
        }
        // Top-K views (written when a bucket closes, cells beyond K folded into "(other)") are
        // used only for the dimensions that need them; every other question goes to complete,
        // continuously updated views.
        let needsTopK = views.filter { $0.definition.topK > 0 }.contains { v in
            !needed.isEmpty && needed.isSubset(of: Set(v.definition.dimensions))
                && !views.contains { $0.definition.topK == 0 && needed.isSubset(of: Set($0.definition.dimensions)) }
        }
        var candidates = views.filter { fits($0) && ($0.definition.topK == 0 || needsTopK) }
        if let name = query.view {
            guard let v = views.first(where: { $0.definition.name == name }) else {
                throw QueryPlanError(.unknownView, "unknown view '\(name)' (views: \(views.map(\.definition.name).joined(separator: ", ")))")
            }
            guard fits(v) else {
                throw QueryPlanError(
                    .invalidQuery,
                    "view '\(name)' cannot answer this query: it has dimensions \(v.definition.dimensions.map(\.rawValue)) and sketches \(v.definition.sketches.map(\.rawValue).sorted())")
            }
            candidates = [v]
        }
        guard !candidates.isEmpty else {
            let what = needed.map(\.rawValue).sorted().joined(separator: ", ")
            throw QueryPlanError(
                .invalidQuery,
                "no view can answer: needs dimensions [\(what)]\(sketch.map { " and the \($0.rawValue) sketch" } ?? ""); views: "
                    + views.map { "\($0.definition.name) \($0.definition.dimensions.map(\.rawValue))" }.joined(separator: "; "))
        }
        let duration = end - rawStart
        // Views still holding the start of the range; if none does, the one keeping most.
        let covering = candidates.filter { $0.retentionDays == 0 || rawStart + UInt64($0.retentionDays) * 86_400_000 >= nowMs }
        var pool = covering.isEmpty ? [candidates.max { $0.retentionDays < $1.retentionDays }!] : covering
        // Coarsest first; equal resolutions in configuration order.
        let order = Dictionary(uniqueKeysWithValues: views.enumerated().map { ($1.definition.name, $0) })
        pool.sort { a, b in
            a.definition.bucketMs != b.definition.bucketMs ? a.definition.bucketMs > b.definition.bucketMs : order[a.definition.name]! < order[b.definition.name]!
        }
        // A series step: the one asked for, or about 60 points at the finest usable resolution.
        let autoStep = Self.autoStep(duration: duration, bucket: pool.last!.definition.bucketMs)
        var chosen: PlannableView?
        var step: UInt64 = 0
        for v in pool {
            let b = v.definition.bucketMs
            let unit: UInt64
            if let requested = seriesStep {
                unit = requested > 0 ? requested : autoStep
                guard unit % b == 0 else { continue }
            } else {
                unit = b
            }
            let added = Self.roundedLength(rawStart, end, unit) - duration
            let isFinest = v == pool.last!
            if query.view == nil && !isFinest && Double(added) > roundingTolerance * Double(duration) { continue }
            chosen = v
            step = unit
            break
        }
        guard let chosen else {
            throw QueryPlanError(.invalidQuery, "step \(seriesStep ?? 0) ms is not a multiple of any usable view's bucket")
        }
        let start = rawStart / step * step
        let roundedEnd = (end + step - 1) / step * step
        if seriesStep != nil, (roundedEnd - start) / step > 10_000 {
            throw QueryPlanError(.invalidQuery, "the series would have \((roundedEnd - start) / step) points; choose a larger step")
        }
        if case .series(_, _, let split?, let splitLimit) = query.kind {
            let points = (roundedEnd - start) / step
            let terms = Self.splitShardTerms(splitLimit)
            guard points * terms <= Self.maxStoreBuckets else {
                throw QueryPlanError(
                    .invalidQuery,
                    "a series split by \(split.rawValue) would have \(points) points × up to \(terms) terms, more than the store's \(Self.maxStoreBuckets) buckets; choose a step of at least \((roundedEnd - start) / (Self.maxStoreBuckets / terms) / 1000 + 1) s or a shorter range")
            }
        }
        return QueryPlan(view: chosen.definition, startMs: start, endMs: roundedEnd, stepMs: step, filters: query.filters, kind: query.kind)
    }

    static func roundedLength(_ start: UInt64, _ end: UInt64, _ unit: UInt64) -> UInt64 {
        (end + unit - 1) / unit * unit - start / unit * unit
    }

    /// A step giving about 60 points, a nice multiple of the bucket.
    static func autoStep(duration: UInt64, bucket: UInt64) -> UInt64 {
        let raw = max(bucket, duration / 60)
        for s in niceSteps where s >= raw && s % bucket == 0 { return s }
        return (raw + bucket - 1) / bucket * bucket
    }
}
