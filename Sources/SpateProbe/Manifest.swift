public import Foundation

/// Sums over a set of flow records.
public struct FlowTotals: Codable, Hashable, Sendable {
    public var records: UInt64 = 0
    public var flows: UInt64 = 0
    public var bytesUp: UInt64 = 0
    public var bytesDown: UInt64 = 0
    public var packetsUp: UInt64 = 0
    public var packetsDown: UInt64 = 0

    public init() {}

    /// Up and down together.
    public var packets: UInt64 { packetsUp &+ packetsDown }

    public mutating func add(_ o: FlowTotals) {
        records &+= o.records
        flows &+= o.flows
        bytesUp &+= o.bytesUp
        bytesDown &+= o.bytesDown
        packetsUp &+= o.packetsUp
        packetsDown &+= o.packetsDown
    }

    @inline(__always)
    mutating func add(flows f: UInt32, bytesUp bu: UInt64, bytesDown bd: UInt64, packetsUp pu: UInt64, packetsDown pd: UInt64) {
        records &+= 1
        flows &+= UInt64(f)
        bytesUp &+= bu
        bytesDown &+= bd
        packetsUp &+= pu
        packetsDown &+= pd
    }

    enum CodingKeys: String, CodingKey {
        case records, flows, bytesUp = "bytes_up", bytesDown = "bytes_down", packetsUp = "packets_up", packetsDown = "packets_down", packets
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        records = try c.decode(UInt64.self, forKey: .records)
        flows = try c.decode(UInt64.self, forKey: .flows)
        bytesUp = try c.decode(UInt64.self, forKey: .bytesUp)
        bytesDown = try c.decode(UInt64.self, forKey: .bytesDown)
        packetsUp = try c.decode(UInt64.self, forKey: .packetsUp)
        packetsDown = try c.decode(UInt64.self, forKey: .packetsDown)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(records, forKey: .records)
        try c.encode(flows, forKey: .flows)
        try c.encode(bytesUp, forKey: .bytesUp)
        try c.encode(bytesDown, forKey: .bytesDown)
        try c.encode(packetsUp, forKey: .packetsUp)
        try c.encode(packetsDown, forKey: .packetsDown)
        try c.encode(packets, forKey: .packets)
    }
}

/// What a spate-probe run delivered: exact totals of the records the broker acknowledged
/// (delivery reports), never of records that failed or were only attempted.
public struct Manifest: Codable, Sendable {
    /// Totals of one (UTC minute, application).
    public struct MinuteApplication: Codable, Hashable, Sendable {
        /// Minute start, Unix milliseconds.
        public var minuteMs: UInt64
        public var application: String
        public var totals: FlowTotals
        enum CodingKeys: String, CodingKey { case minuteMs = "minute_ms", application, totals }
    }

    /// Totals of one (UTC minute, probe).
    public struct MinuteProbe: Codable, Hashable, Sendable {
        public var minuteMs: UInt64
        public var probe: UInt32
        public var totals: FlowTotals
        enum CodingKeys: String, CodingKey { case minuteMs = "minute_ms", probe, totals }
    }

    /// Kafka messages by outcome.
    public struct Messages: Codable, Hashable, Sendable {
        public var sent: UInt64 = 0
        public var acknowledged: UInt64 = 0
        public var failed: UInt64 = 0
        /// Failed messages that librdkafka says may still have been written (timed out after
        /// sending). Non-zero means the topic may hold records the totals do not count.
        public var failedPossiblyPersisted: UInt64 = 0
        enum CodingKeys: String, CodingKey {
            case sent, acknowledged, failed, failedPossiblyPersisted = "failed_possibly_persisted"
        }
    }

    /// Malformed messages injected with `--malformed`.
    public struct Malformed: Codable, Hashable, Sendable {
        /// Acknowledged malformed messages: what a consumer must reject.
        public var acknowledged: UInt64 = 0
        public var failed: UInt64 = 0
        /// Acknowledged ones by kind: random-bytes, truncated-batch, other-message-type.
        public var byKind: [String: UInt64] = [:]
        enum CodingKeys: String, CodingKey { case acknowledged, failed, byKind = "by_kind" }
    }

    public var topic: String
    public var seed: UInt64
    public var probes: Int
    public var batch: Int
    public var subscribers: Int
    /// Event time of record 0, Unix ms.
    public var startMs: UInt64
    /// Event-time span of the acknowledged records.
    public var firstEventMs: UInt64?
    public var lastEventMs: UInt64?
    public var speedup: Double
    public var totals: FlowTotals
    /// Records in messages whose delivery failed (not in `totals`).
    public var failedRecords: UInt64
    public var messages: Messages
    public var malformed: Malformed
    /// Broker/client error events seen during the run (outages that were retried).
    public var brokerErrors: UInt64
    public var elapsedSeconds: Double
    public var byMinuteApplication: [MinuteApplication]
    public var byMinuteProbe: [MinuteProbe]

    enum CodingKeys: String, CodingKey {
        case topic, seed, probes, batch, subscribers, startMs = "start_ms", firstEventMs = "first_event_ms",
            lastEventMs = "last_event_ms", speedup, totals, failedRecords = "failed_records", messages, malformed,
            brokerErrors = "broker_errors", elapsedSeconds = "elapsed_seconds",
            byMinuteApplication = "by_minute_application", byMinuteProbe = "by_minute_probe"
    }

    /// Pretty, key-sorted JSON.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    public static func load(path: String) throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}
