/// A metric a query can rank or plot by.
public enum Metric: String, Sendable, Hashable, CaseIterable, Codable {
    case records, flows, bytes
    case bytesUp = "bytes_up"
    case bytesDown = "bytes_down"
    case packets
    case packetsUp = "packets_up"
    case packetsDown = "packets_down"

    /// The document fields summed for this metric.
    public var fields: [String] {
        switch self {
        case .bytes: return ["bytes_up", "bytes_down"]
        case .packets: return ["packets_up", "packets_down"]
        default: return [rawValue]
        }
    }

    /// Whether values are bytes (for human units).
    public var isBytes: Bool { self == .bytes || self == .bytesUp || self == .bytesDown }
}

/// The time a query covers.
public enum QueryRange: Sendable, Hashable {
    /// [start, end) in Unix milliseconds.
    case absolute(startMs: UInt64, endMs: UInt64)
    /// The last `ms` milliseconds up to now.
    case last(ms: UInt64)

    /// The absolute range at `nowMs`.
    public func resolved(nowMs: UInt64) -> (startMs: UInt64, endMs: UInt64) {
        switch self {
        case .absolute(let s, let e): return (s, e)
        case .last(let ms): return (nowMs > ms ? nowMs - ms : 0, nowMs)
        }
    }
}

/// A condition on a dimension.
public struct QueryFilter: Sendable, Hashable {
    public enum Op: String, Sendable, Hashable { case eq, notEq = "not_eq", `in`, prefix }
    public var dimension: Dimension
    public var op: Op
    public var values: [String]

    public init(dimension: Dimension, op: Op, values: [String]) {
        self.dimension = dimension
        self.op = op
        self.values = values
    }
}

/// What a query asks.
public enum QueryKind: Sendable, Hashable {
    /// The `limit` values of `dimension` with the largest `metric`.
    case top(dimension: Dimension, metric: Metric, limit: Int)
    /// `metric` over time; `stepMs` 0 lets the planner choose; optionally one series per
    /// top-`splitLimit` value of `splitBy`.
    case series(metric: Metric, stepMs: UInt64, splitBy: Dimension?, splitLimit: Int)
    /// Every summed metric.
    case totals
    /// Distinct subscribers (merged HyperLogLogs).
    case distinctSubscribers
    /// RTT quantiles (merged sketches).
    case rttQuantiles([Double])
}

/// A question to the store.
public struct Query: Sendable, Hashable {
    public var range: QueryRange
    public var filters: [QueryFilter]
    /// A view to use; nil lets the planner pick the coarsest that can answer.
    public var view: String?
    public var kind: QueryKind

    public init(range: QueryRange, filters: [QueryFilter] = [], view: String? = nil, kind: QueryKind) {
        self.range = range
        self.filters = filters
        self.view = view
        self.kind = kind
    }
}

/// Summed metrics.
public struct MetricTotals: Sendable, Hashable, Codable {
    public var records: UInt64 = 0
    public var flows: UInt64 = 0
    public var bytesUp: UInt64 = 0
    public var bytesDown: UInt64 = 0
    public var packetsUp: UInt64 = 0
    public var packetsDown: UInt64 = 0
    public var rttCount: UInt64 = 0
    public var rttSumMicros: UInt64 = 0

    public init() {}

    /// The value of `m`; up + down saturates at `UInt64.max` (the node refuses such sums before
    /// they reach a `MetricTotals`; this keeps a hostile answer from trapping a client).
    public func value(_ m: Metric) -> UInt64 {
        switch m {
        case .records: return records
        case .flows: return flows
        case .bytes: return bytesUp.saturatingAdd(bytesDown)
        case .bytesUp: return bytesUp
        case .bytesDown: return bytesDown
        case .packets: return packetsUp.saturatingAdd(packetsDown)
        case .packetsUp: return packetsUp
        case .packetsDown: return packetsDown
        }
    }

    enum CodingKeys: String, CodingKey {
        case records, flows, bytesUp = "bytes_up", bytesDown = "bytes_down", packetsUp = "packets_up", packetsDown = "packets_down",
            rttCount = "rtt_count", rttSumMicros = "rtt_sum_us"
    }
}

/// One row of a top-N answer.
public struct TopRow: Sendable, Hashable, Codable {
    public var value: String
    public var metric: UInt64
    public var totals: MetricTotals

    public init(value: String, metric: UInt64, totals: MetricTotals) {
        self.value = value
        self.metric = metric
        self.totals = totals
    }
}

/// One series of a time-series answer.
public struct TimeSeries: Sendable, Hashable, Codable {
    public struct Point: Sendable, Hashable, Codable {
        public var tsMs: UInt64
        public var value: UInt64
        public init(tsMs: UInt64, value: UInt64) {
            self.tsMs = tsMs
            self.value = value
        }
        enum CodingKeys: String, CodingKey { case tsMs = "ts_ms", value }
    }
    /// The split value, or "" for an unsplit series.
    public var label: String
    public var points: [Point]

    public init(label: String, points: [Point]) {
        self.label = label
        self.points = points
    }
}

/// An answer.
public struct QueryResult: Sendable, Hashable {
    public var view: String
    public var startMs: UInt64
    public var endMs: UInt64
    public var stepMs: UInt64
    public var computedAtMs: UInt64
    public var cached: Bool
    public var top: [TopRow]
    public var series: [TimeSeries]
    public var totals: MetricTotals?
    public var distinct: Double?
    public var quantiles: [(Double, Double)]
    /// Documents merged for a sketch answer.
    public var documents: UInt64
    /// Partitions whose open buckets were answered from their owner's memory (the live tier).
    public var livePartitions: UInt32 = 0
    /// Partitions whose open buckets came from the store because no live owner answered: their
    /// part is as old as the store's copy (docs/DESIGN.md, "Live dashboards").
    public var storePartitions: UInt32 = 0

    public init(
        view: String, startMs: UInt64, endMs: UInt64, stepMs: UInt64 = 0, computedAtMs: UInt64, cached: Bool = false,
        top: [TopRow] = [], series: [TimeSeries] = [], totals: MetricTotals? = nil, distinct: Double? = nil,
        quantiles: [(Double, Double)] = [], documents: UInt64 = 0
    ) {
        self.view = view
        self.startMs = startMs
        self.endMs = endMs
        self.stepMs = stepMs
        self.computedAtMs = computedAtMs
        self.cached = cached
        self.top = top
        self.series = series
        self.totals = totals
        self.distinct = distinct
        self.quantiles = quantiles
        self.documents = documents
    }

    public static func == (a: QueryResult, b: QueryResult) -> Bool {
        a.view == b.view && a.startMs == b.startMs && a.endMs == b.endMs && a.stepMs == b.stepMs && a.computedAtMs == b.computedAtMs
            && a.cached == b.cached && a.top == b.top && a.series == b.series && a.totals == b.totals && a.distinct == b.distinct
            && a.quantiles.map(\.0) == b.quantiles.map(\.0) && a.quantiles.map(\.1) == b.quantiles.map(\.1) && a.documents == b.documents
            && a.livePartitions == b.livePartitions && a.storePartitions == b.storePartitions
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(view)
        hasher.combine(startMs)
        hasher.combine(computedAtMs)
    }
}

/// A view as the query side describes it.
public struct ViewSummary: Sendable, Hashable, Codable {
    public var name: String
    public var bucketMs: UInt64
    public var dimensions: [String]
    public var metrics: [String]
    public var sketches: [String]
    public var retentionDays: UInt32

    public init(name: String, bucketMs: UInt64, dimensions: [String], metrics: [String], sketches: [String], retentionDays: UInt32) {
        self.name = name
        self.bucketMs = bucketMs
        self.dimensions = dimensions
        self.metrics = metrics
        self.sketches = sketches
        self.retentionDays = retentionDays
    }

    enum CodingKeys: String, CodingKey {
        case name, bucketMs = "bucket_ms", dimensions, metrics, sketches, retentionDays = "retention_days"
    }
}

/// One partition as a node reports it.
public struct PartitionStatus: Sendable, Hashable, Codable {
    public var partition: Int32
    public var nextOffset: Int64
    public var committedOffset: Int64
    /// -1 when unknown.
    public var lag: Int64

    public init(partition: Int32, nextOffset: Int64, committedOffset: Int64, lag: Int64) {
        self.partition = partition
        self.nextOffset = nextOffset
        self.committedOffset = committedOffset
        self.lag = lag
    }

    enum CodingKeys: String, CodingKey { case partition, nextOffset = "next_offset", committedOffset = "committed_offset", lag }
}

/// A node as `Status` reports it.
public struct NodeStatus: Sendable, Hashable, Codable {
    public var nodeID: String
    public var queryAddress: String
    public var partitions: [PartitionStatus]
    public var recordsPerSecond: Double
    public var documentsPerSecond: Double
    public var recordsTotal: UInt64
    public var lateTotal: UInt64
    public var malformedTotal: UInt64
    public var documentsTotal: UInt64
    public var residentBytes: UInt64
    /// Reported by the node itself (false: only seen as a group member).
    public var reachable: Bool

    public init(
        nodeID: String, queryAddress: String, partitions: [PartitionStatus], recordsPerSecond: Double = 0,
        documentsPerSecond: Double = 0, recordsTotal: UInt64 = 0, lateTotal: UInt64 = 0, malformedTotal: UInt64 = 0,
        documentsTotal: UInt64 = 0, residentBytes: UInt64 = 0, reachable: Bool = true
    ) {
        self.nodeID = nodeID
        self.queryAddress = queryAddress
        self.partitions = partitions
        self.recordsPerSecond = recordsPerSecond
        self.documentsPerSecond = documentsPerSecond
        self.recordsTotal = recordsTotal
        self.lateTotal = lateTotal
        self.malformedTotal = malformedTotal
        self.documentsTotal = documentsTotal
        self.residentBytes = residentBytes
        self.reachable = reachable
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id", queryAddress = "query_address", partitions, recordsPerSecond = "records_per_second",
            documentsPerSecond = "documents_per_second", recordsTotal = "records_total", lateTotal = "late_total",
            malformedTotal = "malformed_total", documentsTotal = "documents_total", residentBytes = "resident_bytes", reachable
    }
}

/// The answer to `Status`.
public struct ClusterStatus: Sendable, Hashable, Codable {
    public var nodeID: String
    public var version: String
    public var node: NodeStatus
    public var cluster: [NodeStatus]
    public var storeHealth: String
    public var topic: String
    public var group: String
    public var warnings: [String]

    public init(
        nodeID: String, version: String, node: NodeStatus, cluster: [NodeStatus], storeHealth: String, topic: String, group: String,
        warnings: [String]
    ) {
        self.nodeID = nodeID
        self.version = version
        self.node = node
        self.cluster = cluster
        self.storeHealth = storeHealth
        self.topic = topic
        self.group = group
        self.warnings = warnings
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id", version, node, cluster, storeHealth = "store_health", topic, group, warnings
    }
}

/// Storage of one view.
public struct ViewStorage: Sendable, Hashable, Codable {
    public var view: String
    public var indices: Int
    public var documents: UInt64
    public var bytes: UInt64
    public var bytesPerRecord: Double
    public var oldestDay: String
    public var newestDay: String
    public var retentionDays: UInt32

    public init(
        view: String, indices: Int, documents: UInt64, bytes: UInt64, bytesPerRecord: Double, oldestDay: String, newestDay: String,
        retentionDays: UInt32
    ) {
        self.view = view
        self.indices = indices
        self.documents = documents
        self.bytes = bytes
        self.bytesPerRecord = bytesPerRecord
        self.oldestDay = oldestDay
        self.newestDay = newestDay
        self.retentionDays = retentionDays
    }

    enum CodingKeys: String, CodingKey {
        case view, indices, documents, bytes, bytesPerRecord = "bytes_per_record", oldestDay = "oldest_day", newestDay = "newest_day",
            retentionDays = "retention_days"
    }
}

/// The answer to `Storage`.
public struct StorageReport: Sendable, Hashable, Codable {
    public var views: [ViewStorage]
    public var totalBytes: UInt64
    public var maxTotalBytes: UInt64
    public var projectedDays: Double
    public var bytesPerDay: UInt64
    public var warnings: [String]
    public var retentionOwner: String
    public var lastRetentionMs: UInt64

    public init(
        views: [ViewStorage], totalBytes: UInt64, maxTotalBytes: UInt64, projectedDays: Double, bytesPerDay: UInt64, warnings: [String],
        retentionOwner: String, lastRetentionMs: UInt64
    ) {
        self.views = views
        self.totalBytes = totalBytes
        self.maxTotalBytes = maxTotalBytes
        self.projectedDays = projectedDays
        self.bytesPerDay = bytesPerDay
        self.warnings = warnings
        self.retentionOwner = retentionOwner
        self.lastRetentionMs = lastRetentionMs
    }

    enum CodingKeys: String, CodingKey {
        case views, totalBytes = "total_bytes", maxTotalBytes = "max_total_bytes", projectedDays = "projected_days",
            bytesPerDay = "bytes_per_day", warnings, retentionOwner = "retention_owner", lastRetentionMs = "last_retention_ms"
    }
}
