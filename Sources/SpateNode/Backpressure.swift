/// When a worker pauses its partitions and when it resumes them. Pure (the counters are passed
/// in), so its thresholds are tested without a store.
///
/// It pauses on what waiting can reclaim: documents and bytes in flight to the store, a stalled
/// flush, and resident memory above 85% of `ingest.max_memory` while something is pending. It
/// resumes once those are back under their low-water marks: half the pending limits, 70% of
/// the memory limit (or nothing pending), no stalled flush. Open rollup state is not in the
/// condition: it shrinks only when records advance the watermark, so pausing for it would
/// never end.
public struct Backpressure: Sendable {
    public let maxPendingDocuments: Int
    public let maxPendingBytes: Int64
    public let maxMemory: Int64

    public init(maxPendingDocuments: Int, maxPendingBytes: Int64, maxMemory: Int64) {
        self.maxPendingDocuments = maxPendingDocuments
        self.maxPendingBytes = maxPendingBytes
        self.maxMemory = maxMemory
    }

    /// What the worker should do.
    public enum Action: Equatable, Sendable {
        case pause, resume, none
    }

    /// The action for a worker that is `paused` or not, given the node's pending documents and
    /// bytes, its resident bytes, and whether one of the worker's flushes is stalled. (Divided
    /// before multiplied: `ingest.max_memory` may be up to 10^18.)
    public func action(paused: Bool, documents: Int, bytes: Int, residentBytes: Int, stalled: Bool) -> Action {
        let nothingPending = documents == 0 && bytes == 0
        let rss = Int64(residentBytes)
        let memoryHigh = rss > maxMemory / 100 * 85 && !nothingPending
        let over = documents > maxPendingDocuments || Int64(bytes) > maxPendingBytes || memoryHigh || stalled
        let under = documents < maxPendingDocuments / 2 && Int64(bytes) < maxPendingBytes / 2
            && (rss < maxMemory / 100 * 70 || nothingPending) && !stalled
        if over && !paused { return .pause }
        if paused && under { return .resume }
        return .none
    }
}
