public import SpateModel

/// What a query asks the store for once its closed slots are known: per partition, the range
/// still to be read (I/O-free; `IncrementalExecutor` runs it).
public struct StoreRanges: Sendable, Hashable {
    /// Partitions, and the part [fromMs, toMs) the store answers for them.
    public var open: [(partitions: [Int32], fromMs: UInt64, toMs: UInt64)]
    /// Partitions whose closed slots are (or are being) cached; every other partition is
    /// answered by the store over the whole range.
    public var known: [Int32]

    public static func == (a: StoreRanges, b: StoreRanges) -> Bool {
        a.known == b.known && a.open.map(\.partitions) == b.open.map(\.partitions) && a.open.map(\.fromMs) == b.open.map(\.fromMs)
            && a.open.map(\.toMs) == b.open.map(\.toMs)
    }
    public func hash(into h: inout Hasher) {
        h.combine(known)
        for o in open {
            h.combine(o.partitions)
            h.combine(o.fromMs)
            h.combine(o.toMs)
        }
    }
}

/// The cached closed part of one query shape (view, filters, kind, step and range length):
/// slots — a series step, or the view's bucket for other kinds — each holding the sum over
/// the partitions that were final for it when it was filled. For partition p the cached buckets
/// are exactly [`base`, `covered[p]`): each bucket is filled for p once, when p's boundary passes
/// its end, and never again (a slot of several buckets is filled in parts), so every
/// (partition, bucket) is in the cache or asked elsewhere, never both (docs/DESIGN.md, "Live
/// dashboards").
public struct ClosedSlots: Sendable {
    /// First slot kept (the plan's start; a relative range moves it forward).
    public private(set) var base: UInt64
    public let stepMs: UInt64
    /// Per partition, the end of what is cached for it (the start of a bucket of the view, ≥
    /// `base`; a slot may hold it partly: the slot's buckets before this point).
    public private(set) var covered: [Int32: UInt64] = [:]
    /// Slot start → the sum over the partitions cached for it.
    public private(set) var slots: [UInt64: PartialAnswer] = [:]
    /// Changes on every commit and reset (not when the range slides forward): a fill computed
    /// against an older state is not committed.
    public private(set) var generation: UInt64 = 0
    /// Estimated bytes held.
    public private(set) var bytes = 0

    /// An empty cache for a plan starting at `base` with slots of `stepMs`.
    public init(base: UInt64, stepMs: UInt64) {
        self.base = base
        self.stepMs = stepMs
    }

    /// A fill: per partition, the slots [from, to) that became final and are not cached yet.
    public struct Fill: Sendable, Hashable {
        public var partition: Int32
        public var fromMs: UInt64
        public var toMs: UInt64

        public init(partition: Int32, fromMs: UInt64, toMs: UInt64) {
            self.partition = partition
            self.fromMs = fromMs
            self.toMs = toMs
        }
    }

    /// Moves the cache to `plan`'s range — dropping slots before its start, or everything if
    /// it starts before `base` or its step differs — and returns the fills that `boundaries`
    /// (ClosedHorizons) make possible up to the plan's end.
    public mutating func prepare(_ plan: QueryPlan, boundaries: [Int32: UInt64]) -> [Fill] {
        if plan.startMs < base || plan.stepMs != stepMs || plan.startMs % stepMs != 0 {
            let g = generation
            self = ClosedSlots(base: plan.startMs, stepMs: plan.stepMs)
            generation = g &+ 1
        } else if plan.startMs > base {
            for (s, part) in slots where s < plan.startMs {
                slots[s] = nil
                bytes -= part.estimatedBytes
            }
            base = plan.startMs
            // A fill read before this slide still commits: its slots before the new base are
            // dropped, the rest are exactly what the partition lacks (covered only moved up to
            // the base, and nothing else was committed).
            for (p, c) in covered { covered[p] = max(c, base) }
        }
        var fills: [Fill] = []
        // Filled up to the last final bucket, not the last final slot: a series slot of many
        // buckets is cached in parts as its buckets close (the parts add up), so what is left
        // for the owners' memory and the store is the last minutes, not the rest of the slot.
        let bucket = max(plan.view.bucketMs, 1)
        for (p, boundary) in boundaries.sorted(by: { $0.key < $1.key }) {
            let target = min(boundary / bucket * bucket, plan.endMs)
            let from = covered[p] ?? base
            if target > from { fills.append(Fill(partition: p, fromMs: from, toMs: target)) }
        }
        return fills
    }

    /// Per partition, the end of its cached slots once `fills` are committed (only
    /// partitions with something cached).
    public func covered(after fills: [Fill]) -> [Int32: UInt64] {
        var from = covered.filter { $0.value > base }
        for f in fills { from[f.partition] = max(from[f.partition] ?? base, f.toMs) }
        return from
    }

    /// What the store answers after `fills`, up to `endMs`: per partition from the end of its
    /// cached (and filled) slots to the oldest bucket its owner holds in memory (`heldFrom`,
    /// the live tier) or the end; partitions with nothing cached and no owner's answer are left
    /// to the whole-range part.
    public func storeRanges(after fills: [Fill], heldFrom: [Int32: UInt64] = [:], endMs: UInt64) -> StoreRanges {
        let from = covered(after: fills)
        var groups: [[UInt64]: [Int32]] = [:]
        var known: [Int32] = []
        for p in Set(from.keys).union(heldFrom.keys) {
            let f = from[p] ?? base
            let to = min(heldFrom[p] ?? endMs, endMs)
            known.append(p)
            if to > f { groups[[f, to], default: []].append(p) }
        }
        let open = groups.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { (partitions: $0.value.sorted(), fromMs: $0.key[0], toMs: $0.key[1]) }
        return StoreRanges(open: open, known: known.sorted())
    }

    /// Adds the parts `fills` read (slot start → part) if the cache is still in the state
    /// `generation` names; returns whether it was committed.
    @discardableResult
    public mutating func commit(_ fills: [Fill], parts: [UInt64: PartialAnswer], generation expected: UInt64) throws -> Bool {
        guard expected == generation else { return false }
        for (s, part) in parts where s >= base {
            if var have = slots[s] {
                bytes -= have.estimatedBytes
                try have.add(part)
                slots[s] = have
                bytes += have.estimatedBytes
            } else {
                slots[s] = part
                bytes += part.estimatedBytes
            }
        }
        for f in fills { covered[f.partition] = max(covered[f.partition] ?? base, f.toMs) }
        generation &+= 1
        return true
    }

    /// The cached slots within [startMs, endMs), in order.
    public func slots(from startMs: UInt64, to endMs: UInt64) -> [(start: UInt64, part: PartialAnswer)] {
        slots.filter { $0.key >= startMs && $0.key < endMs }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

/// The key of a `ClosedSlots`: a plan without its position in time.
public struct QueryShape: Sendable, Hashable {
    public var view: String
    public var stepMs: UInt64
    public var lengthMs: UInt64
    public var filters: [QueryFilter]
    public var kind: QueryKind

    public init(_ plan: QueryPlan) {
        view = plan.view.name
        stepMs = plan.stepMs
        lengthMs = plan.endMs - plan.startMs
        filters = plan.filters
        kind = plan.kind
    }
}
