/// A cache of answers bounded in bytes (I/O-free, no clock of its own): entries expire at a
/// given time, expired entries are swept at most once a second (and whenever room is needed),
/// then the entries closest to expiry make room; a value above an eighth of the budget is
/// not stored at all.
public struct AnswerCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private var entries: [Key: (value: Value, expiresMs: UInt64, bytes: Int)] = [:]
    private var lastSweepMs: UInt64 = 0
    /// Bytes held (as estimated by the caller).
    public private(set) var bytes = 0
    /// The budget.
    public let maxBytes: Int

    /// An empty cache holding at most `maxBytes`.
    public init(maxBytes: Int) { self.maxBytes = maxBytes }

    /// Entries held (expired ones may linger until the next sweep).
    public var count: Int { entries.count }

    /// The value for `key` if it has not expired at `nowMs`.
    public func value(_ key: Key, nowMs: UInt64) -> Value? {
        guard let e = entries[key], e.expiresMs > nowMs else { return nil }
        return e.value
    }

    /// Stores `value` (estimated at `size` bytes) until `expiresMs`, making room first.
    public mutating func insert(_ key: Key, _ value: Value, size: Int, expiresMs: UInt64, nowMs: UInt64) {
        if let old = entries.removeValue(forKey: key) { bytes -= old.bytes }
        guard size <= maxBytes / 8 else { return }
        if nowMs >= lastSweepMs + 1000 || bytes + size > maxBytes {
            lastSweepMs = nowMs
            for (k, e) in entries where e.expiresMs <= nowMs {
                entries[k] = nil
                bytes -= e.bytes
            }
        }
        if bytes + size > maxBytes {
            for (k, e) in entries.sorted(by: { $0.value.expiresMs < $1.value.expiresMs }) {
                guard bytes + size > maxBytes else { break }
                entries[k] = nil
                bytes -= e.bytes
            }
        }
        entries[key] = (value, expiresMs, size)
        bytes += size
    }
}
