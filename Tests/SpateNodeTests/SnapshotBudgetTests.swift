import SpateNode
import Testing

/// A worker's share of `ingest.snapshot_max_rate`, without a node: time is passed in.
@Suite("snapshot budget")
struct SnapshotBudgetTests {
    static let t0 = ContinuousClock.now

    static func at(_ ms: Int64) -> ContinuousClock.Instant { t0 + .milliseconds(ms) }

    /// `allows` mutates (it accrues), so it cannot run inside `#expect`.
    static func ask(_ b: inout SnapshotBudget, _ now: ContinuousClock.Instant) -> Bool { b.allows(now: now) }

    @Test("a worker's share accrues up to one second of it, and starts full")
    func burst() {
        // 4 MB/s over 2 workers: 2 MB/s each, at most 2 MB held.
        var b = SnapshotBudget(rate: 4_000_000, workers: 2, now: Self.t0)
        #expect(b.bytesPerSecond == 2_000_000)
        #expect(b.burst == 2_000_000)
        #expect(Self.ask(&b, Self.t0))
        // An idle hour adds nothing beyond the burst: a 1.5 MB snapshot and then a 15 MB one
        // pass (the balance is still positive), the third waits.
        #expect(Self.ask(&b, Self.at(3_600_000)))
        b.charge(1_500_000, now: Self.at(3_600_000))
        #expect(Self.ask(&b, Self.at(3_600_000)))
        b.charge(15_000_000, now: Self.at(3_600_000))
        #expect(b.balance == -14_500_000)
        #expect(!Self.ask(&b, Self.at(3_600_000)))
    }

    @Test("a snapshot larger than the balance is charged in full; the next waits until the debt is paid")
    func debt() {
        var b = SnapshotBudget(rate: 4_000_000, workers: 2, now: Self.t0)
        b.charge(12_000_000, now: Self.t0)  // 10 MB owed at 2 MB/s: 5 s
        #expect(!Self.ask(&b, Self.at(1)))
        #expect(!Self.ask(&b, Self.at(4_999)))
        #expect(!Self.ask(&b, Self.at(5_000)))  // exactly paid back: zero is not positive
        #expect(Self.ask(&b, Self.at(5_001)))
    }

    @Test("over a long run a worker writes its share, plus at most one second of it and one snapshot")
    func longRun() {
        // Asked every 100 ms for 10 minutes, each snapshot 3 MB: the limit binds.
        let rate: Int64 = 4_000_000
        var b = SnapshotBudget(rate: rate, workers: 1, now: Self.t0)
        var written = 0
        let seconds = 600
        for tick in 0..<(seconds * 10) {
            let now = Self.at(Int64(tick) * 100)
            if b.allows(now: now) {
                b.charge(3_000_000, now: now)
                written += 3_000_000
            }
        }
        let share = Double(rate) * Double(seconds)
        #expect(Double(written) <= share + b.burst + 3_000_000)
        #expect(Double(written) >= share - 3_000_000)
    }

    @Test("no workers still gives a positive budget; a negative size charges nothing")
    func degenerate() {
        var b = SnapshotBudget(rate: 10_000, workers: 0, now: Self.t0)
        #expect(b.bytesPerSecond == 10_000)
        #expect(b.burst == 10_000)
        #expect(Self.ask(&b, Self.t0))
        b.charge(-5, now: Self.t0)
        #expect(b.balance == 10_000)
    }
}
