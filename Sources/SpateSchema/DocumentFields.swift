/// The metric fields of a rollup document, and how sums of them stay exact.
///
/// Stores sum `long` fields in floating point (Elasticsearch's and OpenSearch's `sum`
/// aggregation returns a double; osmem-server does the same), so a sum above 2^53 loses its
/// last digits. The metrics that reach that in realistic ranges — bytes and the RTT sum — are
/// also stored split in two parts, `<field>_hi` = value >> 24 and `<field>_lo` = value mod 2^24:
/// every partial sum of either part stays below 2^53 for up to 2^29 documents per query and
/// totals up to 2^77, so the store adds both exactly in any order, and the node recombines
/// them in 128-bit arithmetic. The other counters (records, flows, packets, RTT samples) are
/// summed plain; a plain sum at or above 2^53 is refused by the query, never rounded.
public enum DocumentFields {
    /// Summed counters, in document order.
    public static let counters = [
        "records", "flows", "bytes", "bytes_up", "bytes_down", "packets", "packets_up", "packets_down", "rtt_count", "rtt_sum_us",
    ]
    /// Counters also stored as `_hi`/`_lo` parts for exact sums.
    public static let split: Set<String> = ["bytes_up", "bytes_down", "rtt_sum_us"]
    /// Counters a hostile probe can drive to the cell limit (Int64.max, where cell sums
    /// saturate rather than wrap): queries ask for their `max` too and refuse a saturated sum.
    public static let saturable: Set<String> = ["bytes_up", "bytes_down", "packets_up", "packets_down"]
    /// A stored value this large (Int64.max, which a double rounds to 2^63) is a saturated cell.
    public static let saturatedAt: Double = 9_223_372_036_854_775_808  // 2^63
    /// Bits in the `_lo` part.
    public static let loBits: UInt64 = 24
    /// Largest exact plain sum (2^53): the double mantissa.
    public static let exactPlainLimit: Double = 9_007_199_254_740_992

    public static func hi(_ field: String) -> String { field + "_hi" }
    public static func lo(_ field: String) -> String { field + "_lo" }

    /// The `(hi, lo)` parts of `value`.
    public static func parts(_ value: UInt64) -> (hi: UInt64, lo: UInt64) {
        (value >> loBits, value & ((1 << loBits) - 1))
    }
}
