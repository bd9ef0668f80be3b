/// The snapshot bytes one ingest worker may still write (`ingest.snapshot_max_rate`, docs/DESIGN.md
/// "Resume from the horizon"): a token bucket filled at the worker's share of the node's rate
/// (rate ÷ workers, bytes per second), holding at most one second of it.
///
/// A snapshot's size is known only once it is encoded, so a snapshot is started while the
/// balance is positive and charged after: the balance may go below zero, and the worker's next
/// snapshot waits until it is paid back. Over any period of T seconds a worker writes at most
/// share × (T + 1 s) + one snapshot (and the release snapshots, which never wait).
///
/// Why a budget as well as each partition's stretched interval: the interval spaces a
/// partition's snapshots by the size of its last one, and a partition has no last one before
/// its first. Without the budget, every partition of a catching-up worker saved its whole open
/// state at its first flush, at once, and the snapshots waited in the bulk queue together
/// (docs/BENCHMARKS.md).
///
/// I/O-free: the caller passes the time.
public struct SnapshotBudget: Sendable {
    /// Bytes per second this worker accrues.
    public let bytesPerSecond: Double
    /// The most the balance holds.
    public let burst: Double
    public private(set) var balance: Double
    private var at: ContinuousClock.Instant

    /// `rate`: `ingest.snapshot_max_rate`, shared by `workers`; starts full.
    public init(rate: Int64, workers: Int, now: ContinuousClock.Instant) {
        bytesPerSecond = Double(rate) / Double(max(1, workers))
        burst = bytesPerSecond
        balance = burst
        at = now
    }

    /// Whether a snapshot may start now.
    public mutating func allows(now: ContinuousClock.Instant) -> Bool {
        refill(now)
        return balance > 0
    }

    /// Charges a snapshot of `bytes` written now.
    public mutating func charge(_ bytes: Int, now: ContinuousClock.Instant) {
        refill(now)
        balance -= Double(max(0, bytes))
    }

    private mutating func refill(_ now: ContinuousClock.Instant) {
        let ms = (now - at).wholeMilliseconds
        guard ms > 0 else { return }
        balance = min(burst, balance + Double(ms) / 1000 * bytesPerSecond)
        at += .milliseconds(ms)
    }
}
