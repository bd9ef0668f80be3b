/// The value rules every record must meet before any of its numbers reaches arithmetic.
///
/// Event times must lie within a window around the Kafka message's own timestamp — part of the
/// message, so a replay of the same message decides the same way — and always within the
/// absolute range [2000-01-01, 2100-01-01). Counters have per-record ceilings far above any
/// real flow, chosen so that a rollup cell can never wrap: see `docs/DESIGN.md`, "Boundary
/// rules".
public struct RecordLimits: Sendable, Hashable {
    /// How far before the message timestamp an event time may be (ms).
    public var maxEventAgeMs: UInt64
    /// How far after the message timestamp an event time may be (ms).
    public var maxEventLeadMs: UInt64

    public init(maxEventAgeMs: UInt64, maxEventLeadMs: UInt64) {
        self.maxEventAgeMs = maxEventAgeMs
        self.maxEventLeadMs = maxEventLeadMs
    }

    /// 90 days back, 1 hour ahead (the node's defaults: `ingest.max_event_age`, `ingest.max_event_lead`).
    public static let `default` = RecordLimits(maxEventAgeMs: 90 * 86_400_000, maxEventLeadMs: 3_600_000)

    /// 2000-01-01T00:00:00Z: no event time is earlier.
    public static let minEventTimeMs: UInt64 = 946_684_800_000
    /// 2100-01-01T00:00:00Z: every event time is earlier.
    public static let maxEventTimeMs: UInt64 = 4_102_444_800_000
    /// Per record and direction: 2^46 bytes (64 TiB).
    public static let maxBytes: UInt64 = 1 << 46
    /// Per record and direction: 2^40 packets.
    public static let maxPackets: UInt64 = 1 << 40
    /// Per record: 2^24 flows.
    public static let maxFlows: UInt64 = 1 << 24
}

/// `RecordLimits` applied to one message.
struct RecordRules {
    /// Accepted event times, [lower, upper).
    let window: Range<UInt64>
    let windowDescription: String

    init(limits: RecordLimits, messageTimestampMs: Int64) {
        var lower = RecordLimits.minEventTimeMs
        var upper = RecordLimits.maxEventTimeMs
        if messageTimestampMs > 0 {
            let ts = UInt64(messageTimestampMs)
            let (back, under) = ts.subtractingReportingOverflow(limits.maxEventAgeMs)
            let (ahead, over) = ts.addingReportingOverflow(limits.maxEventLeadMs)
            lower = max(lower, under ? 0 : back)
            upper = min(upper, over ? .max : ahead &+ 1)
            if lower > upper { lower = upper }
            windowDescription = "is outside [\(lower), \(upper)): the message timestamp \(ts) minus \(limits.maxEventAgeMs) ms (ingest.max_event_age) to plus \(limits.maxEventLeadMs) ms (ingest.max_event_lead), within 2000-01-01..2100-01-01"
        } else {
            windowDescription = "is outside [\(lower), \(upper)) (2000-01-01..2100-01-01; the message has no timestamp)"
        }
        window = lower..<upper
    }
}
