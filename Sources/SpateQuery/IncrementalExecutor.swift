public import Foundation
import SpateElastic
public import SpateModel
import SpateJSON
import SpateSchema
public import SpateIngest
public import Synchronization
import SpateWire

/// Answers plans from cached closed slots plus one store search for what can still change
/// (docs/DESIGN.md, "Live dashboards"): per partition, the slots before its boundary
/// (`ClosedHorizons`) are read from the store once — when they close — and kept; every refresh
/// asks the store only for each partition's range after its cached slots, and for partitions
/// without a checkpoint the whole range. The store's work per refresh is therefore that of
/// the last minutes, whatever the dashboard's range.
///
/// A shape it cannot cache exactly — more than `maxKeysPerSlot` values of the grouped dimension
/// in one slot, or a cache above an eighth of the budget — is answered by the plain
/// `QueryExecutor` (the whole range from the store), and not tried again for `refusalMs`.
public final class IncrementalExecutor: Sendable {
    public let plain: QueryExecutor
    public let horizons: ClosedHorizons
    /// The live tier: asks the owners of the partitions for their buckets held in memory
    /// (nil: every open bucket from the store).
    public let live: (@Sendable (OpenBucketRequest) async -> LiveAnswer)?
    /// Estimated bytes all cached slots may hold.
    public let maxBytes: Int
    /// Values of a grouped dimension (top, split series) one slot may have and still be cached.
    public let maxKeysPerSlot: Int
    /// How long a shape that could not be cached is answered by the plain executor.
    public let refusalMs: UInt64
    /// Shortest time between two fills of one shape once it has slots cached.
    public let fillIntervalMs: UInt64
    private let clock: @Sendable () -> UInt64
    private let state = Mutex(State())
    /// Store searches for slots that closed (fills) and for the open part; plans answered plainly.
    public let fillSearches = Atomic<UInt64>(0)
    public let openSearches = Atomic<UInt64>(0)
    public let plainAnswers = Atomic<UInt64>(0)

    /// With the live tier, what the store answered for the ranges before each owner's memory
    /// (`StorePartCache`).
    private let storeParts = Mutex(StorePartCache())

    private struct State {
        var entries: [QueryShape: (slots: ClosedSlots, usedMs: UInt64)] = [:]
        var refused: [QueryShape: UInt64] = [:]
        var lastFill: [QueryShape: UInt64] = [:]
        /// Shapes whose fill runs in the background now.
        var filling: Set<QueryShape> = []
        /// The entries' slots and keys (`keyBytes`), estimated.
        var bytes = 0

        /// Shapes held at most, cached or refused: each costs a scan when one is evicted.
        static let maxShapes = 4096

        /// What an entry costs beyond its slots: its key (up to 1,024 filter values) and the
        /// maps' share. Every shape a client asks for is an entry, cached slots or not, so the
        /// budget counts them all.
        static func keyBytes(_ shape: QueryShape) -> Int {
            256 + shape.view.utf8.count + QueryEngine.estimatedBytes(shape.filters)
        }

        mutating func remove(_ shape: QueryShape) {
            if let e = entries.removeValue(forKey: shape) { bytes -= e.slots.bytes + Self.keyBytes(shape) }
            lastFill[shape] = nil
        }

        /// Drops the least recently used entries (never `keep`) while over `maxBytes` or
        /// `maxShapes`.
        mutating func evict(maxBytes: Int, keep: QueryShape?) {
            while bytes > maxBytes || entries.count > Self.maxShapes,
                let victim = entries.lazy.filter({ $0.key != keep }).min(by: { $0.value.usedMs < $1.value.usedMs })
            {
                remove(victim.key)
            }
        }

        /// Answers `shape` plainly until `untilMs`; refusals past their time go first when more
        /// than `maxShapes` are held, then the ones ending soonest.
        mutating func refuse(_ shape: QueryShape, untilMs: UInt64, nowMs: UInt64) {
            remove(shape)
            refused[shape] = untilMs
            guard refused.count > Self.maxShapes else { return }
            refused = refused.filter { $0.value > nowMs }
            while refused.count > Self.maxShapes, let first = refused.min(by: { $0.value < $1.value }) { refused[first.key] = nil }
        }
    }

    /// An executor caching closed slots in at most `maxBytes` (estimated).
    public init(
        plain: QueryExecutor, horizons: ClosedHorizons, maxBytes: Int, maxKeysPerSlot: Int = 2000, refusalMs: UInt64 = 60_000,
        live: (@Sendable (OpenBucketRequest) async -> LiveAnswer)? = nil, fillIntervalMs: UInt64 = 20_000,
        clock: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }
    ) {
        self.plain = plain
        self.horizons = horizons
        self.live = live
        self.maxBytes = maxBytes
        self.maxKeysPerSlot = maxKeysPerSlot
        self.refusalMs = refusalMs
        self.fillIntervalMs = fillIntervalMs
        self.clock = clock
    }

    /// Closed-slot caches held now and their estimated bytes.
    public var usage: (entries: Int, bytes: Int) { state.withLock { ($0.entries.count, $0.bytes) } }

    /// A part of the answer could not be read completely (too many keys in a slot).
    struct Incomplete: Error {}

    /// Ranges of more slots than this are answered plainly, uncached: filling them would take
    /// thousands of searches (20,000 slots: 13.9 days of minutes, 2.3 years of hours; a view's
    /// retention is shorter).
    public static let maxCachedSlots: UInt64 = 20_000

    /// Answers `plan`; `nowMs` stamps the result.
    public func execute(_ plan: QueryPlan, nowMs: UInt64) async throws -> QueryResult {
        if (plan.endMs - plan.startMs) / max(plan.stepMs, 1) > Self.maxCachedSlots {
            plainAnswers.add(1, ordering: .relaxed)
            return try await plain.execute(plan, nowMs: nowMs)
        }
        let shape = QueryShape(plan)
        let refused = state.withLock { s -> Bool in
            if let until = s.refused[shape], until > nowMs { return true }
            s.refused[shape] = nil
            return false
        }
        if refused {
            plainAnswers.add(1, ordering: .relaxed)
            return try await plain.execute(plan, nowMs: nowMs)
        }
        let boundaries = await horizons.current()
        let (snapshot, prepared, cold) = state.withLock { s -> (ClosedSlots, [ClosedSlots.Fill], Bool) in
            let isNew = s.entries[shape] == nil
            var entry = s.entries[shape]?.slots ?? ClosedSlots(base: plan.startMs, stepMs: plan.stepMs)
            let before = entry.bytes
            var fills = entry.prepare(plan, boundaries: boundaries)
            let cold = entry.covered(after: []).isEmpty
            // Fills are batched: at most one per shape per `fillIntervalMs` once something is
            // cached (partitions close their buckets within seconds of each other; meanwhile
            // the owners' memory and the store part cover what was not filled yet), and one
            // at a time.
            if !fills.isEmpty {
                let last = s.lastFill[shape] ?? 0
                if cold {
                    s.lastFill[shape] = nowMs
                } else if nowMs >= last + fillIntervalMs && !s.filling.contains(shape) {
                    s.lastFill[shape] = nowMs
                    s.filling.insert(shape)
                } else {
                    fills = []
                }
            }
            s.bytes += entry.bytes - before + (isNew ? State.keyBytes(shape) : 0)
            s.entries[shape] = (entry, clock())
            s.evict(maxBytes: maxBytes, keep: shape)
            return (entry, fills, cold)
        }
        // Once something is cached, a fill runs in the background and this refresh does not
        // wait for the store: the slots it would add are still answered by their owners'
        // memory (closed buckets are kept there a while) or by the store part below.
        var fills = prepared
        if !cold && !fills.isEmpty {
            fillInBackground(plan, shape: shape, fills: fills, generation: snapshot.generation)
            fills = []
        }
        do {
            let filled = try await fill(plan, fills)
            // The live tier: owners answer their partitions' buckets held in memory, from the
            // end of what is cached here on; the store answers each such partition only up to
            // the oldest bucket its owner holds.
            var memory: [Int32: OpenBucketPart] = [:]
            var known = Set(boundaries.keys)
            var partitionCount = 0
            if let live {
                let answer = await live(Self.openRequest(plan, from: snapshot.covered(after: fills)))
                memory = answer.parts
                known.formUnion(answer.known)
                partitionCount = answer.partitionCount
            }
            let ranges = snapshot.storeRanges(after: fills, heldFrom: memory.mapValues(\.heldFromMs), endMs: plan.endMs)
            // Every partition of the topic known and nothing left for the store: no search.
            let allKnown = partitionCount > 0 && Set(ranges.known).isSuperset(of: (0..<Int32(partitionCount)))
            var open: [UInt64: PartialAnswer] = [:]
            if !(allKnown && ranges.open.isEmpty) {
                let key = StorePartKey(shape: shape, startMs: plan.startMs, endMs: plan.endMs, ranges: ranges, restNeeded: !allKnown)
                if live != nil, let kept = storeParts.withLock({ $0.value(key, nowMs: nowMs) }) {
                    open = kept
                } else {
                    open = try await read(plan, clause: openClause(plan, ranges, restNeeded: !allKnown), bySlot: Self.seriesKind(plan.kind))
                    openSearches.add(1, ordering: .relaxed)
                    if live != nil { storeParts.withLock { $0.insert(key, open, nowMs: nowMs, keepMs: plan.view.flushIntervalMs) } }
                }
            }
            for part in memory.values {
                for (s, part) in try Self.partials(part, plan) {
                    if var have = open[s] {
                        try have.add(part)
                        open[s] = have
                    } else {
                        open[s] = part
                    }
                }
            }
            try commit(shape, fills: fills, parts: filled, generation: snapshot.generation)
            // The answer: cached slots + what was filled now + the open part, each (partition,
            // slot) exactly once.
            var perSlot: [UInt64: PartialAnswer] = [:]
            for (s, part) in snapshot.slots(from: plan.startMs, to: plan.endMs) { perSlot[s] = part }
            for source in [filled, open] {
                for (s, part) in source {
                    if var have = perSlot[s] {
                        try have.add(part)
                        perSlot[s] = have
                    } else {
                        perSlot[s] = part
                    }
                }
            }
            var whole = PartialAnswer.empty(plan.kind)
            if !Self.seriesKind(plan.kind) { for part in perSlot.values { try whole.add(part) } }
            var result = QueryResult(view: plan.view.name, startMs: plan.startMs, endMs: plan.endMs, stepMs: plan.stepMs, computedAtMs: nowMs)
            let ordered = perSlot.filter { $0.key >= plan.startMs && $0.key < plan.endMs }.sorted { $0.key < $1.key }.map { (start: $0.key, part: $0.value) }
            try PartialAnswer.answer(plan, whole: whole, slots: ordered, into: &result)
            result.livePartitions = UInt32(clamping: memory.count)
            result.storePartitions = UInt32(clamping: known.subtracting(memory.keys).count)
            return result
        } catch is Incomplete {
            refuse(shape, nowMs: nowMs)
            plainAnswers.add(1, ordering: .relaxed)
            return try await plain.execute(plan, nowMs: nowMs)
        }
    }

    /// Drops `shape`'s cache: it has too many keys to cache, and is answered plainly for
    /// `refusalMs`.
    private func refuse(_ shape: QueryShape, nowMs: UInt64) {
        state.withLock { s in s.refuse(shape, untilMs: nowMs + refusalMs, nowMs: nowMs) }
    }

    /// Reads `fills` and commits them, off the refresh's path (one per shape at a time: the
    /// caller marked `shape` as filling when it chose these fills).
    private func fillInBackground(_ plan: QueryPlan, shape: QueryShape, fills: [ClosedSlots.Fill], generation: UInt64) {
        Task {
            defer { state.withLock { _ = $0.filling.remove(shape) } }
            do {
                let parts = try await fill(plan, fills)
                try commit(shape, fills: fills, parts: parts, generation: generation)
            } catch is Incomplete {
                refuse(shape, nowMs: clock())
            } catch {
                // The store failed: the next fill, `fillIntervalMs` later, asks again.
            }
        }
    }

    private func commit(_ shape: QueryShape, fills: [ClosedSlots.Fill], parts: [UInt64: PartialAnswer], generation: UInt64) throws {
        guard !fills.isEmpty else { return }
        try state.withLock { s in
            guard var entry = s.entries[shape]?.slots else { return }
            let before = entry.bytes
            guard try entry.commit(fills, parts: parts, generation: generation) else { return }
            s.bytes += entry.bytes - before
            s.entries[shape] = (entry, clock())
            if entry.bytes > maxBytes / 8 {
                // Too large to be worth keeping: answered plainly for a while.
                let now = clock()
                s.refuse(shape, untilMs: now + refusalMs, nowMs: now)
                return
            }
            // Over budget: the least recently used shapes go.
            s.evict(maxBytes: maxBytes, keep: nil)
        }
    }

    /// Reads the slots `fills` name, per slot, in searches of at most `maxSlotsPerSearch` slots.
    private func fill(_ plan: QueryPlan, _ fills: [ClosedSlots.Fill]) async throws -> [UInt64: PartialAnswer] {
        guard !fills.isEmpty else { return [:] }
        let lo = fills.map(\.fromMs).min()!
        let hi = fills.map(\.toMs).max()!
        let (product, overflow) = UInt64(maxSlotsPerSearch(plan.kind)).multipliedReportingOverflow(by: plan.stepMs)
        let chunk = overflow ? hi - lo : max(product, plan.stepMs)
        var out: [UInt64: PartialAnswer] = [:]
        var at = lo
        while at < hi {
            let end = min(hi, at + chunk)
            var groups: [[UInt64]: [Int32]] = [:]
            for f in fills {
                let a = max(f.fromMs, at)
                let b = min(f.toMs, end)
                if a < b { groups[[a, b], default: []].append(f.partition) }
            }
            if !groups.isEmpty {
                let clauses: [JSONValue] = groups.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { range, partitions in
                    Self.partitionClause(partitions.sorted(), fromMs: range[0], toMs: range[1])
                }
                fillSearches.add(1, ordering: .relaxed)
                for (s, part) in try await read(plan, clause: ["bool": ["should": .array(clauses), "minimum_should_match": 1]], bySlot: true) {
                    out[s] = part
                }
            }
            at = end
        }
        return out
    }

    /// Slots one fill search may cover: the store's bucket limit over the keys a slot may have.
    private func maxSlotsPerSearch(_ kind: QueryKind) -> Int {
        switch kind {
        case .top, .series(_, _, _?, _): return max(1, Int(QueryPlanner.maxStoreBuckets) / maxKeysPerSlot)
        case .totals, .series: return Int(QueryPlanner.maxStoreBuckets)
        case .distinctSubscribers, .rttQuantiles: return Int.max
        }
    }

    /// The open part's clause: each known partition's range after its cached slots (and
    /// before what its owner answered from memory), every other partition over the whole
    /// range unless `restNeeded` is false (the plan's range is applied around it).
    func openClause(_ plan: QueryPlan, _ ranges: StoreRanges, restNeeded: Bool = true) -> JSONValue {
        var should: [JSONValue] = ranges.open.map { Self.partitionClause($0.partitions, fromMs: $0.fromMs, toMs: $0.toMs) }
        if ranges.known.isEmpty {
            return ["match_all": [:]]
        }
        if restNeeded {
            should.append(["bool": ["must_not": [["terms": ["partition": .array(ranges.known.map { .number($0) })]]]]])
        }
        return ["bool": ["should": .array(should), "minimum_should_match": 1]]
    }

    /// The question the owners are asked for `plan`, each partition from `from` (the end of
    /// its cached slots) on.
    static func openRequest(_ plan: QueryPlan, from: [Int32: UInt64]) -> OpenBucketRequest {
        var grouped: SpateModel.Dimension?
        var sketch: SketchKind?
        switch plan.kind {
        case .top(let d, _, _): grouped = d
        case .series(_, _, let split, _): grouped = split
        case .distinctSubscribers: sketch = .subscribers
        case .rttQuantiles: sketch = .rtt
        case .totals: break
        }
        return OpenBucketRequest(
            view: plan.view.name, startMs: plan.startMs, endMs: plan.endMs, stepMs: plan.stepMs, filters: plan.filters, grouped: grouped, sketch: sketch,
            fromMs: from)
    }

    /// An owner's answer as parts per slot of `plan` (slots outside the plan are dropped).
    static func partials(_ part: OpenBucketPart, _ plan: QueryPlan) throws -> [UInt64: PartialAnswer] {
        var out: [UInt64: PartialAnswer] = [:]
        for (start, slot) in part.slots where start >= plan.startMs && start < plan.endMs {
            let cells = UInt64(slot.groups.count)
            let value: PartialAnswer
            switch plan.kind {
            case .totals:
                var t = PartialAnswer.totals(MetricTotals())
                for g in slot.groups.values { try t.add(.totals(g)) }
                value = t
            case .series(let metric, _, nil, _):
                var v = PartialAnswer.value(0)
                for g in slot.groups.values { try v.add(.value(g.value(metric))) }
                value = v
            case .series(let metric, _, _?, _): value = .split(slot.groups.mapValues { $0.value(metric) })
            case .top: value = .keyed(slot.groups)
            case .distinctSubscribers: value = .subscribers(slot.subscribers, documents: slot.subscribers == nil ? 0 : cells)
            case .rttQuantiles: value = .rtt(slot.rtt, documents: slot.rtt == nil ? 0 : cells)
            }
            out[start] = value
        }
        return out
    }

    static func partitionClause(_ partitions: [Int32], fromMs: UInt64, toMs: UInt64) -> JSONValue {
        [
            "bool": [
                "filter": [
                    ["terms": ["partition": .array(partitions.map { .number($0) })]],
                    ["range": ["ts": ["gte": .number(fromMs), "lt": .number(toMs), "format": "epoch_millis"]]],
                ]
            ]
        ]
    }

    static func seriesKind(_ kind: QueryKind) -> Bool {
        if case .series = kind { return true }
        return false
    }

    /// One search over the plan's range and filters narrowed by `clause`: per slot when
    /// `bySlot` (the key is the slot's start), else one part under the key `plan.startMs`.
    /// - Throws: `Incomplete` when a keyed aggregation may have left keys out.
    func read(_ plan: QueryPlan, clause: JSONValue, bySlot: Bool) async throws -> [UInt64: PartialAnswer] {
        let grouped: SpateModel.Dimension?
        switch plan.kind {
        case .top(let d, _, _): grouped = d
        case .series(_, _, let split, _): grouped = split
        default: grouped = nil
        }
        let query: JSONValue = ["bool": ["filter": [plan.executorFilter(plain, excludeOtherOf: grouped), clause]]]
        switch plan.kind {
        case .distinctSubscribers, .rttQuantiles:
            return try await scan(plan, query: query, bySlot: bySlot)
        default: break
        }
        let leaf: JSONObject
        switch plan.kind {
        case .totals, .top: leaf = ExactSums.aggregations(QueryExecutor.totalFields)
        case .series(let metric, _, _, _): leaf = ExactSums.aggregations(metric.fields)
        default: leaf = JSONObject()
        }
        var aggs = JSONObject()
        if let grouped {
            aggs["k"] = ["terms": ["field": .string(grouped.rawValue), "size": .number(maxKeysPerSlot)], "aggs": .object(leaf)]
        } else {
            aggs = leaf
        }
        var body = JSONObject()
        body["size"] = 0
        body["query"] = query
        if bySlot {
            body["aggs"] = [
                "h": ["date_histogram": ["field": "ts", "fixed_interval": .string("\(plan.stepMs)ms"), "min_doc_count": 1], "aggs": .object(aggs)]
            ]
        } else {
            body["aggs"] = .object(aggs)
        }
        let r = try await plain.search(plain.indices(plan), .object(body))
        func part(_ a: [String: Aggregation]) throws -> PartialAnswer {
            switch plan.kind {
            case .totals: return .totals(try ExactSums.totals(from: a))
            case .series(let metric, _, nil, _): return .value(try ExactSums.metric(metric, in: a))
            case .series(let metric, _, _?, _):
                let buckets = try keyed(a["k"])
                var m: [String: UInt64] = [:]
                for b in buckets { m[Self.key(b)] = try ExactSums.metric(metric, in: b.aggregations) }
                return .split(m)
            case .top:
                var m: [String: MetricTotals] = [:]
                for b in try keyed(a["k"]) { m[Self.key(b)] = try ExactSums.totals(from: b.aggregations) }
                return .keyed(m)
            default: throw RPCError(.internal, "no aggregation for this kind")
            }
        }
        func keyed(_ agg: Aggregation?) throws -> [Aggregation.Bucket] {
            let buckets = agg?.buckets ?? []
            if buckets.count >= maxKeysPerSlot { throw Incomplete() }
            return buckets
        }
        if !bySlot { return [plan.startMs: try part(r.aggregations)] }
        var out: [UInt64: PartialAnswer] = [:]
        for b in r.aggregations["h"]?.buckets ?? [] {
            guard let ts = b.key.int64Value, ts >= 0, UInt64(ts) >= plan.startMs, UInt64(ts) < plan.endMs else { continue }
            out[UInt64(ts) / plan.stepMs * plan.stepMs] = try part(b.aggregations)
        }
        return out
    }

    private static func key(_ b: Aggregation.Bucket) -> String { b.key.stringValue ?? b.key.int64Value.map(String.init) ?? "" }

    /// Merges the sketch of every matching document, per slot when `bySlot`, in time slices of
    /// at most one page (10,000 hits) each, like `QueryExecutor`'s scan.
    private func scan(_ plan: QueryPlan, query: JSONValue, bySlot: Bool) async throws -> [UInt64: PartialAnswer] {
        let field = plan.kind == .distinctSubscribers ? "subscribers_hll" : "rtt_sketch"
        var out: [UInt64: PartialAnswer] = [:]
        let sliced: (UInt64, UInt64) -> JSONValue = { s, e in
            ["bool": ["filter": [query, ["range": ["ts": ["gte": .number(s), "lt": .number(e), "format": "epoch_millis"]]]]]]
        }
        try await plain.scanSources(plan, fields: [field, "ts"], query: sliced) { source in
            guard let text = source[field]?.stringValue, let bytes = Base64.decode(text),
                let ts = source["ts"]?.int64Value, ts >= 0, UInt64(ts) >= plan.startMs, UInt64(ts) < plan.endMs
            else { return }
            let slot = bySlot ? UInt64(ts) / plan.stepMs * plan.stepMs : plan.startMs
            let part: PartialAnswer
            if field == "subscribers_hll" {
                guard let h = HyperLogLog(serialized: bytes) else { return }
                part = .subscribers(h, documents: 1)
            } else {
                guard let q = QuantileSketch(rttSerialized: bytes) else { return }
                part = .rtt(q, documents: 1)
            }
            if var have = out[slot] {
                try have.add(part)
                out[slot] = have
            } else {
                out[slot] = part
            }
        }
        return out
    }

}

/// Identifies a store search for the part of a plan that neither the cache nor memory holds.
struct StorePartKey: Hashable, Sendable {
    var shape: QueryShape
    var startMs: UInt64
    var endMs: UInt64
    var ranges: StoreRanges
    var restNeeded: Bool
}

/// With the live tier the store answers only, per partition, the closed buckets between the
/// cached slots and the oldest bucket its owner holds (and partitions without an answering
/// owner). Those change only when a final or periodic flush lands, so an answer is kept for the
/// view's flush interval — except that the first answer for new ranges is read again after 3 s
/// (a bucket just released by its owner may have been on its way to the store).
/// Any change of ranges is a new key. Bounded to `maxEntries`, the oldest going first.
struct StorePartCache: Sendable {
    private var entries: [StorePartKey: (parts: [UInt64: PartialAnswer], firstSeenMs: UInt64, fetchedMs: UInt64, keepMs: UInt64)] = [:]
    static let maxEntries = 1024
    static let settleMs: UInt64 = 3000

    func value(_ key: StorePartKey, nowMs: UInt64) -> [UInt64: PartialAnswer]? {
        guard let e = entries[key] else { return nil }
        // Read once more after the first 3 s (a bucket just released may have been on its
        // way to the store), then kept for the flush interval.
        let keep = e.fetchedMs < e.firstSeenMs + Self.settleMs ? Self.settleMs : max(Self.settleMs, e.keepMs)
        return nowMs < e.fetchedMs + keep ? e.parts : nil
    }

    mutating func insert(_ key: StorePartKey, _ parts: [UInt64: PartialAnswer], nowMs: UInt64, keepMs: UInt64) {
        let first = entries[key]?.firstSeenMs ?? nowMs
        if entries.count >= Self.maxEntries, entries[key] == nil, let oldest = entries.min(by: { $0.value.fetchedMs < $1.value.fetchedMs }) {
            entries[oldest.key] = nil
        }
        entries[key] = (parts, first, nowMs, keepMs)
    }
}

/// What the live tier gathered for one question: per partition the owner's answer, the
/// partitions known to exist (membership, this node's own), and the topic's partition count
/// (0: unknown).
public struct LiveAnswer: Sendable {
    public var parts: [Int32: OpenBucketPart]
    public var known: Set<Int32>
    public var partitionCount: Int

    public init(parts: [Int32: OpenBucketPart], known: Set<Int32>, partitionCount: Int) {
        self.parts = parts
        self.known = known
        self.partitionCount = partitionCount
    }
}

extension QueryPlan {
    /// The plain executor's filter for this plan (range, filters, "(other)" exclusion).
    func executorFilter(_ executor: QueryExecutor, excludeOtherOf grouped: SpateModel.Dimension?) -> JSONValue {
        executor.filter(self, excludeOtherOf: grouped)
    }
}
