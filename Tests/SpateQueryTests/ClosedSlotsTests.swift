import SpateModel
import SpateWire
import SpateQuery
import SpateTestSupport
import Testing

/// The closed-slot cache against a model store: random partitions whose boundaries advance
/// at random, a window that moves, and after every refresh the answer (cached slots + fills +
/// the store's open part, as `IncrementalExecutor` adds them) must equal the sum over the
/// whole range. Double counting or a gap at any (partition, slot) shows up as a difference.
@Suite("Closed slots: every (partition, slot) from the cache or the store, exactly once")
struct ClosedSlotsTests {
    /// A store holding one value per (partition, slot): what the searches would sum.
    struct ModelStore {
        var values: [Int32: [UInt64: UInt64]] = [:]

        func sum(_ p: Int32, from: UInt64, to: UInt64) -> UInt64 {
            (values[p] ?? [:]).filter { $0.key >= from && $0.key < to }.reduce(0) { $0 + $1.value }
        }

        /// Per slot of `step`, what a fill search answers (values are kept per bucket).
        func fill(_ fills: [ClosedSlots.Fill], step: UInt64) -> [UInt64: PartialAnswer] {
            var out: [UInt64: UInt64] = [:]
            for f in fills {
                for (s, v) in values[f.partition] ?? [:] where s >= f.fromMs && s < f.toMs { out[s / step * step, default: 0] += v }
            }
            return out.mapValues { .value($0) }
        }

        /// What the open search answers: known partitions after their cached slots, the rest whole.
        func open(_ ranges: StoreRanges, start: UInt64, end: UInt64) -> UInt64 {
            var total: UInt64 = 0
            for (p, _) in values {
                if let group = ranges.open.first(where: { $0.partitions.contains(p) }) {
                    total += sum(p, from: group.fromMs, to: group.toMs)
                } else if !ranges.known.contains(p) {
                    total += sum(p, from: start, to: end)
                }
            }
            return total
        }
    }

    static func plan(start: UInt64, end: UInt64, step: UInt64) -> QueryPlan {
        QueryPlan(view: ViewDefinition.defaults[0], startMs: start, endMs: end, stepMs: step, filters: [], kind: .series(metric: .records, stepMs: step, splitBy: nil, splitLimit: 0))
    }

    @Test("a moving window over partitions whose boundaries advance unevenly", arguments: 1...12)
    func model(seed: UInt64) throws { try model(seed: seed, background: false) }

    /// As `IncrementalExecutor` does once a shape has slots cached: a fill is read now and
    /// committed some refreshes later (the window may have slid meanwhile), and the refreshes
    /// in between answer as if it had not been read.
    @Test("fills committed in the background, refreshes later", arguments: 1...12)
    func backgroundFills(seed: UInt64) throws { try model(seed: seed &+ 1000, background: true) }

    func model(seed: UInt64, background: Bool) throws {
        var rng = SplitMix64(seed: seed)
        // The view's bucket (app_1m); every other seed a series step of five buckets, whose
        // slots are cached partly while their buckets close one by one.
        let bucket: UInt64 = 60_000
        let step = seed % 2 == 0 ? bucket * 5 : bucket
        let partitions = Int32(1 + rng.next() % 6)
        let length = step * (1 + rng.next() % 30)
        var store = ModelStore()
        var cache = ClosedSlots(base: 0, stepMs: step)
        var boundaries: [Int32: UInt64] = [:]
        var now: UInt64 = step * 40
        var pending: (fills: [ClosedSlots.Fill], parts: [UInt64: PartialAnswer], generation: UInt64)?
        for _ in 0..<200 {
            // Records arrive in open slots of some partitions (never before their boundary).
            for p in 0..<partitions where rng.next() % 2 == 0 {
                let floor = boundaries[p].map { $0 / bucket * bucket + ($0 % bucket == 0 ? 0 : bucket) } ?? (now - 10 * step)
                let b = max(floor, now - bucket * (rng.next() % 25)) / bucket * bucket
                if b >= (boundaries[p] ?? 0) { store.values[p, default: [:]][b, default: 0] += 1 + rng.next() % 100 }
            }
            // Some partitions get (or advance) a boundary; one may never have one.
            for p in 1..<max(1, partitions) where rng.next() % 3 == 0 {
                let b = max(boundaries[p] ?? 0, now - bucket * (rng.next() % 20) - rng.next() % bucket)
                boundaries[p] = b
            }
            if rng.next() % 3 == 0 { now += step / 2 + rng.next() % step }
            // The window: usually "last length", sometimes fixed, rarely earlier than before.
            let end = (now + step - 1) / step * step
            var start = end > length ? end - length : 0
            if rng.next() % 20 == 0 { start = start > 3 * step ? start - 3 * step : 0 }
            let plan = Self.plan(start: start, end: end, step: step)
            // A background fill read earlier lands between refreshes: now, later, or never (the
            // cache was reset meanwhile).
            if let p = pending, rng.next() % 3 == 0 {
                try cache.commit(p.fills, parts: p.parts, generation: p.generation)
                pending = nil
            }
            var fills = cache.prepare(plan, boundaries: boundaries)
            let generation = cache.generation
            for f in fills {
                #expect(f.fromMs >= plan.startMs && f.toMs <= plan.endMs && f.fromMs < f.toMs)
                #expect(f.toMs <= boundaries[f.partition]!, "a fill reaches past its partition's boundary")
                #expect(f.toMs % bucket == 0, "a fill ends at a bucket's start")
            }
            var filled = store.fill(fills, step: step)
            if background && !fills.isEmpty && !cache.covered(after: []).isEmpty {
                if pending == nil { pending = (fills, filled, generation) }
                fills = []
                filled = [:]
            }
            // Owners answer some partitions from memory: every slot from the oldest they hold
            // (and from the asker's cached slots) on; the store answers the gap before it.
            var heldFrom: [Int32: UInt64] = [:]
            for p in 0..<partitions where rng.next() % 3 == 0 { heldFrom[p] = (now - bucket * (rng.next() % 30)) / bucket * bucket }
            let ranges = cache.storeRanges(after: fills, heldFrom: heldFrom, endMs: end)
            var answer = store.open(ranges, start: start, end: end)
            let covered = cache.covered(after: fills)
            for (p, held) in heldFrom { answer += store.sum(p, from: max(held, covered[p] ?? start, start), to: end) }
            for (_, part) in cache.slots(from: start, to: end) { if case .value(let v) = part { answer += v } }
            for (_, part) in filled { if case .value(let v) = part { answer += v } }
            var expected: UInt64 = 0
            for p in store.values.keys { expected += store.sum(p, from: start, to: end) }
            #expect(answer == expected, "seed \(seed): cached + filled + open = \(answer), whole range = \(expected)")
            // Commit only sometimes (a concurrent refresh may have moved the cache meanwhile).
            if !fills.isEmpty && rng.next() % 5 != 0 { try cache.commit(fills, parts: filled, generation: generation) }
        }
    }

    @Test("a fill computed against an older state is not committed")
    func staleCommit() throws {
        let m: UInt64 = 60_000
        var cache = ClosedSlots(base: 0, stepMs: m)
        let plan = Self.plan(start: 0, end: 10 * m, step: m)
        let fills = cache.prepare(plan, boundaries: [0: 5 * m])
        #expect(fills == [ClosedSlots.Fill(partition: 0, fromMs: 0, toMs: 5 * m)])
        let old = cache.generation
        #expect(try cache.commit(fills, parts: [0: .value(5)], generation: old))
        #expect(try !cache.commit(fills, parts: [0: .value(5)], generation: old), "the same fill twice would count twice")
        #expect(cache.slots(from: 0, to: 10 * m).count == 1)
        // The window moves on: slot 0 leaves, partition 0 stays covered to 5 minutes.
        #expect(cache.prepare(Self.plan(start: m, end: 11 * m, step: m), boundaries: [0: 5 * m]).isEmpty)
        #expect(cache.slots(from: 0, to: 11 * m).isEmpty)
        #expect(cache.storeRanges(after: [], endMs: 11 * m).open.map(\.fromMs) == [5 * m])
    }

    @Test("a series slot of five buckets is cached in parts as its buckets close")
    func partialSlots() throws {
        let m: UInt64 = 60_000
        var cache = ClosedSlots(base: 0, stepMs: 5 * m)
        let plan = Self.plan(start: 0, end: 10 * m, step: 5 * m)
        // Partition 0 final to 7.5 minutes: its buckets up to 7 minutes, i.e. slot 0 and two
        // buckets of slot 5.
        let fills = cache.prepare(plan, boundaries: [0: 7 * m + m / 2])
        #expect(fills == [ClosedSlots.Fill(partition: 0, fromMs: 0, toMs: 7 * m)])
        #expect(try cache.commit(fills, parts: [0: .value(10), 5 * m: .value(3)], generation: cache.generation))
        #expect(cache.storeRanges(after: [], heldFrom: [0: 6 * m], endMs: 10 * m).open.isEmpty, "memory from 6 min, cache to 7 min: no gap")
        let later = cache.prepare(plan, boundaries: [0: 9 * m])
        #expect(later == [ClosedSlots.Fill(partition: 0, fromMs: 7 * m, toMs: 9 * m)])
        #expect(try cache.commit(later, parts: [5 * m: .value(4)], generation: cache.generation))
        let slots = cache.slots(from: 0, to: 10 * m)
        #expect(slots.map(\.start) == [0, 5 * m])
        if case .value(let v) = slots[1].part { #expect(v == 7, "the slot's parts add up") } else { Issue.record("not a value") }
    }

    @Test("horizons: a checkpoint is in force only after it settled, and never moves back")
    func horizons() {
        var t = HorizonTracker()
        t.observe(partition: 3, boundary: 1000, nowMs: 10_000)
        #expect(t.inForce(nowMs: 11_000, settleMs: 2000).isEmpty)
        #expect(t.inForce(nowMs: 12_000, settleMs: 2000) == [3: 1000])
        t.observe(partition: 3, boundary: 900, nowMs: 12_500)
        t.observe(partition: 3, boundary: 2000, nowMs: 13_000)
        t.observe(partition: 3, boundary: 3000, nowMs: 14_000)
        #expect(t.inForce(nowMs: 14_500, settleMs: 2000) == [3: 1000])
        #expect(t.inForce(nowMs: 15_000, settleMs: 2000) == [3: 2000])
        #expect(t.inForce(nowMs: 16_000, settleMs: 2000) == [3: 3000])
        t.observe(partition: 3, boundary: 100, nowMs: 20_000)
        #expect(t.inForce(nowMs: 30_000, settleMs: 2000) == [3: 3000])
    }

    @Test("partial answers add exactly; top ranks by the exact metric; a split series keeps its top labels")
    func partials() throws {
        var a = MetricTotals()
        a.records = 2
        a.bytesUp = UInt64.max - 10
        var b = MetricTotals()
        b.records = 3
        b.bytesUp = 5
        var part = PartialAnswer.keyed(["x": a])
        try part.add(.keyed(["x": b, "y": b]))
        guard case .keyed(let rows) = part else { Issue.record("kind changed"); return }
        #expect(rows["x"]?.records == 5 && rows["x"]?.bytesUp == UInt64.max - 5 && rows["y"]?.records == 3)
        var overflow = PartialAnswer.keyed(["x": a])
        let tooLarge = #expect(throws: RPCError.self) { try overflow.add(.keyed(["x": a])) }
        #expect(tooLarge?.code == .invalidArgument)
        let mismatch = #expect(throws: RPCError.self) { try overflow.add(.value(1)) }
        #expect(mismatch?.code == .internal)

        let top = QueryPlan(view: ViewDefinition.defaults[0], startMs: 0, endMs: 60_000, stepMs: 60_000, filters: [], kind: .top(dimension: .application, metric: .records, limit: 1))
        var result = QueryResult(view: "app_1m", startMs: 0, endMs: 60_000, computedAtMs: 0)
        try PartialAnswer.answer(top, whole: part, slots: [], into: &result)
        #expect(result.top.map(\.value) == ["x"] && result.top.first?.metric == 5)

        let split = QueryPlan(view: ViewDefinition.defaults[0], startMs: 0, endMs: 180_000, stepMs: 60_000, filters: [], kind: .series(metric: .records, stepMs: 60_000, splitBy: .application, splitLimit: 2))
        let slots: [(start: UInt64, part: PartialAnswer)] = [(0, .split(["a": 1, "b": 7])), (120_000, .split(["a": 9, "c": 2]))]
        var whole = PartialAnswer.split([:])
        for s in slots { try whole.add(s.part) }
        var series = QueryResult(view: "app_1m", startMs: 0, endMs: 180_000, computedAtMs: 0)
        try PartialAnswer.answer(split, whole: whole, slots: slots, into: &series)
        #expect(series.series.map(\.label) == ["a", "b"])
        #expect(series.series[0].points.map(\.value) == [1, 0, 9])
        #expect(series.series[1].points.map(\.tsMs) == [0, 60_000, 120_000])
    }
}
