/// A record attribute a rollup view can group by.
public enum Dimension: String, Sendable, Hashable, CaseIterable, Codable {
    case application
    case applicationCategory = "application_category"
    case host
    case subscriber
    case deviceType = "device_type"
    case country
    case probe
    case interface
    case l4Protocol = "l4_protocol"
    case serverPort = "server_port"
    /// The server address's network: /24 for IPv4, /48 for IPv6 ("203.0.113.0/24").
    case serverPrefix = "server_prefix"
    /// The client address's network: /24 for IPv4, /48 for IPv6.
    case clientPrefix = "client_prefix"

    /// Whether the value is one of the record's strings (interned) rather than a number or an
    /// address derived from bytes.
    public var isString: Bool {
        switch self {
        case .application, .applicationCategory, .host, .subscriber, .deviceType, .country: return true
        default: return false
        }
    }
}

/// Sketch metrics a view may carry besides its sums (which every view has).
public enum SketchKind: String, Sendable, Hashable, CaseIterable, Codable {
    /// Distinct subscribers, as a serialized HyperLogLog.
    case subscribers
    /// RTT quantiles, as a serialized relative-error quantile sketch (DDSketch).
    case rtt
}

/// A rollup view: records grouped by time bucket and dimensions, with summed metrics and
/// optional sketches, indexed daily as `<prefix>-<name>-YYYY.MM.DD`.
public struct ViewDefinition: Sendable, Hashable {
    /// Lowercase letters, digits and `_` (it becomes part of index names).
    public var name: String
    /// Bucket width in milliseconds (a divisor of a day).
    public var bucketMs: UInt64
    public var dimensions: [Dimension]
    public var sketches: Set<SketchKind>
    /// HyperLogLog precision (registers = 2^p) of the subscribers sketch.
    public var hllPrecision: Int
    /// How often dirty documents are rewritten; a bucket is also written once when it closes.
    public var flushIntervalMs: UInt64
    /// 0: every cell is a document, rewritten while its bucket is open. N > 0: a bucket is
    /// written once, when it closes, as its N largest cells (by bytes) plus one "(other)"
    /// document holding the rest — for dimensions whose cardinality grows with the user base
    /// (subscribers), so documents per record stay bounded. Totals stay exact.
    public var topK: Int

    /// The dimension value of the document that sums the cells outside the top K.
    public static let otherValue = "(other)"

    public init(
        name: String, bucketMs: UInt64, dimensions: [Dimension], sketches: Set<SketchKind> = [],
        hllPrecision: Int = 14, flushIntervalMs: UInt64 = 10_000, topK: Int = 0
    ) {
        self.name = name
        self.bucketMs = bucketMs
        self.dimensions = dimensions
        self.sketches = sketches
        self.hllPrecision = hllPrecision
        self.flushIntervalMs = flushIntervalMs
        self.topK = topK
    }

    /// The most dimensions a view may have.
    public static let maxDimensions = 6

    /// Problems with this definition, each naming the field; empty when valid.
    public func problems() -> [String] {
        var out: [String] = []
        if name.isEmpty || name.count > 40 || !name.allSatisfy({ $0.isLowercase && $0.isASCII || $0.isNumber || $0 == "_" }) {
            out.append("name '\(name)' must be 1-40 characters of a-z, 0-9 and _")
        }
        if bucketMs < 1000 || 86_400_000 % bucketMs != 0 {
            out.append("bucket must divide a day and be at least 1s (got \(bucketMs) ms)")
        }
        if dimensions.isEmpty || dimensions.count > Self.maxDimensions {
            out.append("dimensions: 1 to \(Self.maxDimensions) needed (got \(dimensions.count))")
        }
        if Set(dimensions).count != dimensions.count { out.append("dimensions repeat") }
        if !(4...16).contains(hllPrecision) { out.append("hll_precision must be 4...16 (got \(hllPrecision))") }
        if flushIntervalMs < 100 { out.append("flush_interval must be at least 100ms") }
        if topK < 0 || topK > 1_000_000 { out.append("top_k must be 0 (all cells) to 1000000 (got \(topK))") }
        return out
    }

    /// The default views: applications by minute and by hour, subscribers by 5 minutes, server
    /// networks by minute.
    public static let defaults: [ViewDefinition] = [
        ViewDefinition(
            name: "app_1m", bucketMs: 60_000, dimensions: [.application, .applicationCategory, .l4Protocol, .probe],
            sketches: [.subscribers, .rtt], hllPrecision: 14, flushIntervalMs: 10_000),
        ViewDefinition(
            name: "app_1h", bucketMs: 3_600_000, dimensions: [.application, .applicationCategory, .l4Protocol, .probe],
            sketches: [.subscribers, .rtt], hllPrecision: 16, flushIntervalMs: 60_000),
        ViewDefinition(
            name: "subscriber_5m", bucketMs: 300_000, dimensions: [.subscriber, .application],
            sketches: [], flushIntervalMs: 60_000, topK: 1000),
        ViewDefinition(
            name: "server_1m", bucketMs: 60_000, dimensions: [.serverPrefix, .serverPort, .application],
            sketches: [.subscribers], hllPrecision: 12, flushIntervalMs: 20_000),
    ]
}
