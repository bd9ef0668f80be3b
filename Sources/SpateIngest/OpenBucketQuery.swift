public import SpateModel

/// A question about the buckets a partition's owner holds in memory (the live tier,
/// docs/DESIGN.md "Live dashboards"): one view, a bucket-aligned range and step, filters, the
/// dimension to group by (top, split series) and the sketch wanted, if any.
public struct OpenBucketRequest: Sendable, Hashable {
    public var view: String
    public var startMs: UInt64
    public var endMs: UInt64
    /// Slot width: the series step, or the view's bucket.
    public var stepMs: UInt64
    public var filters: [QueryFilter]
    public var grouped: Dimension?
    public var sketch: SketchKind?
    /// Per partition, answer only buckets starting at or after this (the asker holds the
    /// slots before it); absent: from `startMs`.
    public var fromMs: [Int32: UInt64]

    public init(
        view: String, startMs: UInt64, endMs: UInt64, stepMs: UInt64, filters: [QueryFilter], grouped: Dimension?, sketch: SketchKind?,
        fromMs: [Int32: UInt64]
    ) {
        self.view = view
        self.startMs = startMs
        self.endMs = endMs
        self.stepMs = stepMs
        self.filters = filters
        self.grouped = grouped
        self.sketch = sketch
        self.fromMs = fromMs
    }
}

/// One slot of an `OpenBucketPart`: sums per value of the grouped dimension ("" when not
/// grouped), and the merged sketch asked for.
public struct OpenBucketSlot: Sendable, Hashable {
    public var groups: [String: MetricTotals] = [:]
    public var subscribers: HyperLogLog?
    public var rtt: QuantileSketch?

    public init(groups: [String: MetricTotals] = [:], subscribers: HyperLogLog? = nil, rtt: QuantileSketch? = nil) {
        self.groups = groups
        self.subscribers = subscribers
        self.rtt = rtt
    }
}

/// What a partition's owner answers from memory: every bucket of the view it holds (open or
/// closing) from `heldFromMs` on, per slot. The asker takes the buckets before `heldFromMs`
/// from the store, so each bucket of the partition is counted once.
public struct OpenBucketPart: Sendable, Hashable {
    public var partition: Int32
    /// Every bucket of the view starting at or after this is held in memory (or does not
    /// exist yet): the oldest bucket held, or the bucket of the watermark if that is older.
    public var heldFromMs: UInt64
    /// Slot start → sums.
    public var slots: [UInt64: OpenBucketSlot]
    /// Cells read (the cost of the answer).
    public var cells: Int

    public init(partition: Int32, heldFromMs: UInt64, slots: [UInt64: OpenBucketSlot], cells: Int) {
        self.partition = partition
        self.heldFromMs = heldFromMs
        self.slots = slots
        self.cells = cells
    }
}

/// Why an owner declined to answer for a partition from memory.
public enum OpenBucketRefusal: Error, Sendable, Hashable {
    /// No such view here.
    case unknownView
    /// Still replaying below its checkpoint's horizon: memory holds less than the store.
    case replaying
    /// More cells or groups than `OpenBucketLimits` allow: the store answers instead.
    case tooLarge
    /// A saturated cell or a sum past 2^64: the store answers (and refuses the sum).
    case notExact
}

/// Bounds of one answer from memory, so that a question costs the ingest thread little.
public struct OpenBucketLimits: Sendable, Hashable {
    /// Cells one partition's answer may read.
    public var maxCells: Int
    /// Distinct values of the grouped dimension one partition's answer may hold.
    public var maxGroups: Int

    public init(maxCells: Int = 200_000, maxGroups: Int = 20_000) {
        self.maxCells = maxCells
        self.maxGroups = maxGroups
    }
}

extension PartitionRollup {
    /// Answers `request` from the buckets this partition holds (read-only; call on the owning
    /// worker's thread, between messages).
    /// - Throws: `OpenBucketRefusal`.
    public func answerOpen(_ request: OpenBucketRequest, limits: OpenBucketLimits) throws -> OpenBucketPart {
        guard let view = rollups.first(where: { $0.definition.name == request.view }) else { throw OpenBucketRefusal.unknownView }
        // Replaying below the horizon, memory holds a prefix of what the store already has.
        guard nextOffset >= horizon.horizonOffset else { throw OpenBucketRefusal.replaying }
        let held = view.held
        // Memory answers every bucket from the oldest held one (released, closing or open), or else from the bucket
        // holding the watermark: a later record is either late (in no view) or lands in a
        // bucket starting there or after, which is then held here. A partition that never
        // saw an event (watermark 0) thus answers everything: nothing of it is in the store.
        let w = watermark
        let heldFrom = min(held.map(\.start).min() ?? UInt64.max, w / view.bucketMs * view.bucketMs)
        let from = max(request.fromMs[partition] ?? request.startMs, request.startMs)
        let chosen = held.filter { $0.start >= from && $0.start < request.endMs }
        let cells = chosen.reduce(0) { $0 + $1.count }
        guard cells <= limits.maxCells else { throw OpenBucketRefusal.tooLarge }
        let dims = view.definition.dimensions
        let filterPositions = request.filters.map { f in (f, dims.firstIndex(of: f.dimension)) }
        // An `in` filter may list 1,024 values and a bucket hold 200,000 distinct ones: looked up
        // in a set, not compared one by one (this runs on the ingest thread).
        let valueSets = request.filters.map { Set($0.values) }
        // A filter or grouping on a dimension the view does not have cannot be answered here.
        guard filterPositions.allSatisfy({ $0.1 != nil }) else { throw OpenBucketRefusal.unknownView }
        let groupPosition = request.grouped.flatMap { dims.firstIndex(of: $0) }
        if request.grouped != nil && groupPosition == nil { throw OpenBucketRefusal.unknownView }
        let step = max(request.stepMs, 1)
        // Cells are grouped and filtered by their raw key words; a word is rendered (and a
        // filter decided) once per distinct value, not once per cell.
        var rendered: [Int: [UInt64: String]] = [:]
        func text(_ k: Int, _ v: UInt64) -> String {
            if let t = rendered[k]?[v] { return t }
            let t = ViewRollup.text(of: v, dims[k], interner)
            rendered[k, default: [:]][v] = t
            return t
        }
        var decided: [Int: [UInt64: Bool]] = [:]
        var slots: [UInt64: OpenBucketSlot] = [:]
        var groupWords = Set<UInt64>()
        for b in chosen {
            let slotStart = b.start / step * step
            var sums: [UInt64: MetricTotals] = [:]
            var slot = slots[slotStart] ?? OpenBucketSlot()
            for i in 0..<b.count {
                let key = b.key(i)
                var keep = true
                for (n, (f, k)) in filterPositions.enumerated() {
                    let v = key[key.startIndex + k!]
                    if let d = decided[n]?[v] {
                        keep = d
                    } else {
                        keep = Self.matches(f, text(k!, v), valueSet: valueSets[n])
                        decided[n, default: [:]][v] = keep
                    }
                    if !keep { break }
                }
                guard keep else { continue }
                let word = groupPosition.map { key[key.startIndex + $0] } ?? 0
                // A saturated cell, or sums past 2^64, are the store's to refuse (it says
                // which field and why); memory never answers a number that is not exact.
                let cell = MetricTotals(cell: b.cells[i])
                guard !cell.isSaturatedCell, !sums[word, default: MetricTotals()].addReportingOverflow(cell) else { throw OpenBucketRefusal.notExact }
                if groupWords.insert(word).inserted, groupWords.count > limits.maxGroups { throw OpenBucketRefusal.tooLarge }
                switch request.sketch {
                case .subscribers? where b.trackSubscribers:
                    if slot.subscribers == nil { slot.subscribers = HyperLogLog(precision: b.hllPrecision) }
                    slot.subscribers?.merge(b.subscriberSketch(i))
                case .rtt? where b.trackRTT:
                    if slot.rtt == nil { slot.rtt = QuantileSketch.emptyRTT }
                    slot.rtt?.merge(b.rttSketches[i])
                default: break
                }
            }
            for (word, t) in sums {
                let group = groupPosition.map { text($0, word) } ?? ""
                guard !slot.groups[group, default: MetricTotals()].addReportingOverflow(t) else { throw OpenBucketRefusal.notExact }
            }
            slots[slotStart] = slot
        }
        return OpenBucketPart(partition: partition, heldFromMs: heldFrom, slots: slots, cells: cells)
    }

    /// Whether `value` passes `f`; `valueSet` is `f.values` as a set (what `in` looks up).
    static func matches(_ f: QueryFilter, _ value: String, valueSet: Set<String>) -> Bool {
        switch f.op {
        case .eq: return f.values.first == value
        case .notEq: return f.values.first != value
        case .in: return valueSet.contains(value)
        case .prefix: return f.values.first.map { value.hasPrefix($0) } ?? false
        }
    }
}

extension ViewRollup {
    /// The text of one key word of dimension `d`: a prefix ("203.0.113.0/24"), a number, or an
    /// interned string.
    static func text(of v: UInt64, _ d: Dimension, _ interner: StringInterner) -> String {
        switch d {
        case .serverPrefix, .clientPrefix: return prefixText(v)
        case .probe, .interface, .l4Protocol, .serverPort: return String(v)
        default: return interner.string(UInt32(truncatingIfNeeded: v))
        }
    }
}

extension MetricTotals {
    /// A cell's sums.
    init(cell c: RollupCell) {
        self.init()
        records = c.records
        flows = c.flows
        bytesUp = c.bytesUp
        bytesDown = c.bytesDown
        packetsUp = c.packetsUp
        packetsDown = c.packetsDown
        rttCount = c.rttCount
        rttSumMicros = c.rttSum
    }

    /// Whether a cell's sum stopped at Int64.max (saturated: no longer exact).
    var isSaturatedCell: Bool {
        let m = CellSum.max
        return records == m || flows == m || bytesUp == m || bytesDown == m || packetsUp == m || packetsDown == m || rttCount == m
            || rttSumMicros == m
    }

    /// Adds `o` field by field; true when a sum passed UInt64.max (the fields are then not exact).
    mutating func addReportingOverflow(_ o: MetricTotals) -> Bool {
        var overflow = false
        func add(_ a: inout UInt64, _ b: UInt64) {
            let (s, o) = a.addingReportingOverflow(b)
            a = s
            overflow = overflow || o
        }
        add(&records, o.records)
        add(&flows, o.flows)
        add(&bytesUp, o.bytesUp)
        add(&bytesDown, o.bytesDown)
        add(&packetsUp, o.packetsUp)
        add(&packetsDown, o.packetsDown)
        add(&rttCount, o.rttCount)
        add(&rttSumMicros, o.rttSumMicros)
        return overflow
    }
}
