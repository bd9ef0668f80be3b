import SpateNode
import Testing

/// When a worker pauses and resumes, without a store: the counters are passed in.
@Suite("backpressure")
struct BackpressureTests {
    static let policy = Backpressure(maxPendingDocuments: 1_000, maxPendingBytes: 1_000_000, maxMemory: 1_000_000_000)

    @Test("pauses above a pending limit, a stalled flush, or 85% of max_memory while something is pending; resumes under the low marks")
    func thresholds() {
        let p = Self.policy
        #expect(p.action(paused: false, documents: 1_000, bytes: 0, residentBytes: 0, stalled: false) == .none)
        #expect(p.action(paused: false, documents: 1_001, bytes: 0, residentBytes: 0, stalled: false) == .pause)
        #expect(p.action(paused: false, documents: 0, bytes: 1_000_001, residentBytes: 0, stalled: false) == .pause)
        #expect(p.action(paused: false, documents: 0, bytes: 0, residentBytes: 0, stalled: true) == .pause)
        // Memory counts only while something is pending: waiting cannot reclaim the rest.
        #expect(p.action(paused: false, documents: 1, bytes: 0, residentBytes: 850_000_001, stalled: false) == .pause)
        #expect(p.action(paused: false, documents: 0, bytes: 0, residentBytes: 990_000_000, stalled: false) == .none)
        // Already paused: nothing more to do until under the low marks.
        #expect(p.action(paused: true, documents: 1_001, bytes: 0, residentBytes: 0, stalled: false) == .none)
        #expect(p.action(paused: true, documents: 500, bytes: 0, residentBytes: 0, stalled: false) == .none)
        #expect(p.action(paused: true, documents: 499, bytes: 499_999, residentBytes: 699_999_999, stalled: false) == .resume)
        #expect(p.action(paused: true, documents: 499, bytes: 0, residentBytes: 700_000_000, stalled: false) == .none)
        #expect(p.action(paused: true, documents: 0, bytes: 0, residentBytes: 990_000_000, stalled: false) == .resume)
        #expect(p.action(paused: true, documents: 0, bytes: 0, residentBytes: 0, stalled: true) == .none)
    }

    @Test("the largest max_memory the configuration accepts (10^18) is compared without overflow")
    func hugeMemoryLimit() {
        // 85% of it was computed as max_memory × 85 / 100, which trapped above Int64.max / 85.
        let p = Backpressure(maxPendingDocuments: 1_000, maxPendingBytes: 1_000_000, maxMemory: 1_000_000_000_000_000_000)
        #expect(p.action(paused: false, documents: 1, bytes: 1, residentBytes: Int.max, stalled: false) == .pause)
        #expect(p.action(paused: false, documents: 1, bytes: 1, residentBytes: 1 << 40, stalled: false) == .none)
        #expect(p.action(paused: true, documents: 1, bytes: 1, residentBytes: 1 << 40, stalled: false) == .resume)
    }
}
