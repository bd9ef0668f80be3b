extension UInt64 {
    /// `self + other`, or `limit` when the sum would pass it (or overflow): sums of counters
    /// that come from outside stop at a bound instead of wrapping or trapping.
    @inline(__always)
    public func saturatingAdd(_ other: UInt64, limit: UInt64 = .max) -> UInt64 {
        let (s, o) = addingReportingOverflow(other)
        return o || s > limit ? limit : s
    }
}
