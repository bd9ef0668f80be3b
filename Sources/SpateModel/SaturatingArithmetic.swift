extension UInt64 {
    /// `self + other`, or `limit` when the sum would pass it (or overflow): sums of counters
    /// that come from outside stop at a bound instead of wrapping or trapping.
    @inline(__always)
    public func saturatingAdd(_ other: UInt64, limit: UInt64 = .max) -> UInt64 {
        let (s, o) = addingReportingOverflow(other)
        return o || s > limit ? limit : s
    }
}

extension UInt64 {
    /// `value` rounded toward zero and clamped to `0...UInt64.max` (NaN: 0): a Double from
    /// outside (an estimate, a rate) as a count, without the trap of `UInt64(_:)`.
    public init(clamping value: Double) {
        if !(value > 0) {
            self = 0
        } else if value >= 18_446_744_073_709_551_616 {  // 2^64
            self = .max
        } else {
            self = UInt64(value)
        }
    }
}

extension Sequence where Element: FixedWidthInteger {
    /// The sum, stopping at `Element.max` (or `.min`) instead of trapping: sums of sizes and
    /// counters that come from outside.
    public func saturatingSum() -> Element {
        reduce(0) { s, v in
            let (r, overflow) = s.addingReportingOverflow(v)
            return overflow ? (v > 0 ? .max : .min) : r
        }
    }
}
