public import SpateIngest
public import SpateElastic
import SpateJSON
import SpateModel

/// Names of Spate's indices: daily per view by bucket time (UTC), plus the checkpoints.
public struct IndexNaming: Sendable, Hashable {
    public var prefix: String

    public init(prefix: String) { self.prefix = prefix }

    /// `<prefix>-<view>-YYYY.MM.DD` for the UTC day of `ms`.
    public func dailyIndex(view: String, ms: UInt64) -> String {
        "\(prefix)-\(view)-\(Self.day(ms))"
    }

    /// All daily indices of a view.
    public func pattern(view: String) -> String { "\(prefix)-\(view)-*" }

    public var checkpointIndex: String { "\(prefix)-checkpoints" }

    /// Where the open-bucket snapshots that checkpoints name live.
    public var snapshotIndex: String { "\(prefix)-snapshots" }

    /// Where leases live (the retention lease).
    public var leaseIndex: String { "\(prefix)-leases" }

    /// Where every live node publishes its state (cluster membership).
    public var memberIndex: String { "\(prefix)-members" }

    /// `YYYY.MM.DD` of Unix milliseconds (proleptic Gregorian, UTC).
    public static func day(_ ms: UInt64) -> String {
        let (y, m, d) = civil(days: Int64(ms / 86_400_000))
        return "\(y)." + (m < 10 ? "0\(m)" : "\(m)") + "." + (d < 10 ? "0\(d)" : "\(d)")
    }

    /// Howard Hinnant's days-to-civil.
    public static func civil(days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// Days since the epoch of a civil date (inverse of `civil`).
    public static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

/// Turns rollup documents into bulk `index` actions: deterministic ids, version = last
/// folded offset + 1 with `external_gte`, daily index by bucket time.
public struct BulkDocumentSink: RollupDocumentSink {
    public private(set) var body = BulkBody()
    public let naming: IndexNaming
    public let topic: String
    private var source: [UInt8] = []
    private var lastDay: UInt64 = .max
    private var lastIndex: [String: String] = [:]

    public init(naming: IndexNaming, topic: String) {
        self.naming = naming
        self.topic = topic
    }

    public var count: Int { body.count }

    public mutating func add(_ d: RollupDocument) {
        let day = d.bucketStart / 86_400_000
        if day != lastDay {
            lastIndex = [:]
            lastDay = day
        }
        let index: String
        if let cached = lastIndex[d.view.name] {
            index = cached
        } else {
            index = naming.dailyIndex(view: d.view.name, ms: d.bucketStart)
            lastIndex[d.view.name] = index
        }
        source.removeAll(keepingCapacity: true)
        Self.encodeSource(d, into: &source)
        body.index(index: index, id: Self.documentID(d, topic: topic), version: d.lastOffset + 1, encodedSource: source)
    }

    /// A stable 128-bit id (32 hex digits) of (view, bucket, dimension values, topic, partition):
    /// every node computes the same id for the same cell, so a replay overwrites.
    public static func documentID(_ d: RollupDocument, topic: String) -> String {
        var canonical = d.view.name + "\u{1F}" + String(d.bucketStart)
        for v in d.dimensionValues { canonical += "\u{1F}" + v }
        canonical += "\u{1F}" + topic + "\u{1F}" + String(d.partition)
        let a = StableHash.hash(canonical, seed: 0x5350_4154_4531)
        let b = StableHash.hash(canonical, seed: 0x5350_4154_4532)
        return hex(a) + hex(b)
    }

    private static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// The document's JSON `_source`.
    public static func encodeSource(_ d: RollupDocument, into out: inout [UInt8]) {
        func key(_ k: String) {
            out.append(contentsOf: ",\"".utf8)
            out.append(contentsOf: k.utf8)
            out.append(contentsOf: "\":".utf8)
        }
        func number<T: BinaryInteger>(_ k: String, _ v: T) {
            key(k)
            JSONWriter.appendInteger(v, to: &out)
        }
        // Only what queries read: the view is in the index name, the topic in the document id.
        // Every field costs the store indexing time (osmem-server: ~0.1 ms per field per
        // document) and disk. The partition is read: a query takes each partition's closed
        // buckets from its cache and asks the store only for the rest (docs/DESIGN.md, "Live
        // dashboards").
        out.append(contentsOf: "{\"ts\":".utf8)
        JSONWriter.appendInteger(d.bucketStart, to: &out)
        number("partition", d.partition)
        for (k, dim) in d.view.dimensions.enumerated() {
            key(dim.rawValue)
            JSONWriter.appendString(d.dimensionValues[k], to: &out)
        }
        func counter(_ k: String, _ v: UInt64) {
            number(k, v)
            if DocumentFields.split.contains(k) {
                let (hi, lo) = DocumentFields.parts(v)
                number(DocumentFields.hi(k), hi)
                number(DocumentFields.lo(k), lo)
            }
        }
        // Cell sums stop at Int64.max (the store's long), so up + down never wraps UInt64 and
        // the derived totals are clamped the same way.
        let bytes = d.bytesUp.saturatingAdd(d.bytesDown, limit: UInt64(Int64.max))
        let packets = d.packetsUp.saturatingAdd(d.packetsDown, limit: UInt64(Int64.max))
        counter("records", d.records)
        counter("flows", d.flows)
        counter("bytes", bytes)
        counter("bytes_up", d.bytesUp)
        counter("bytes_down", d.bytesDown)
        counter("packets", packets)
        counter("packets_up", d.packetsUp)
        counter("packets_down", d.packetsDown)
        counter("rtt_count", d.rttCount)
        counter("rtt_sum_us", d.rttSum)
        if d.rttCount > 0 {
            number("rtt_min_us", d.rttMin)
            number("rtt_max_us", d.rttMax)
        }
        if let h = d.subscribers {
            key("subscribers_hll")
            out.append(UInt8(ascii: "\""))
            Base64.append(h.serialized(), to: &out)
            out.append(UInt8(ascii: "\""))
        }
        if let s = d.rtt {
            key("rtt_sketch")
            out.append(UInt8(ascii: "\""))
            Base64.append(s.serialized(), to: &out)
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
    }
}
