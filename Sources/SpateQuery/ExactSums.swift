public import SpateElastic
import SpateSchema
public import SpateJSON
public import SpateModel
import SpateWire

/// Asks the store for exact sums and recombines them (see `DocumentFields`): split fields
/// come back as two exact part sums joined in 128-bit arithmetic; plain fields are accepted
/// only below 2^53. Nothing a store answers — NaN, negatives, fractions, huge values — can
/// trap here: it becomes an error.
public enum ExactSums {
    /// `sum` aggregations for `fields`, each named `prefix + field` (split fields as
    /// `prefix + field_hi` and `prefix + field_lo`).
    public static func aggregations(_ fields: [String], prefix: String = "") -> JSONObject {
        var o = JSONObject()
        for f in fields {
            if DocumentFields.saturable.contains(f) { o[prefix + f + "_max"] = ["max": ["field": .string(f)]] }
            if DocumentFields.split.contains(f) {
                o[prefix + DocumentFields.hi(f)] = ["sum": ["field": .string(DocumentFields.hi(f))]]
                o[prefix + DocumentFields.lo(f)] = ["sum": ["field": .string(DocumentFields.lo(f))]]
            } else {
                o[prefix + f] = ["sum": ["field": .string(f)]]
            }
        }
        return o
    }

    /// The exact sum of `field`.
    /// - Throws: `RPCError(.invalidArgument)` when the sum does not fit 64 bits or a plain sum
    ///   reached 2^53; `RPCError(.internal)` when the store answered something that is not a
    ///   non-negative integer.
    public static func value(_ field: String, in aggs: [String: Aggregation], prefix: String = "") throws -> UInt64 {
        if case .value(let m?)? = aggs[prefix + field + "_max"], !(m < DocumentFields.saturatedAt) {
            throw RPCError(
                .invalidArgument,
                "a rollup cell's \(field) reached the store's 64-bit limit and saturated (hostile or broken input); the sum over this query is not exact")
        }
        if DocumentFields.split.contains(field) {
            let hi = try count(aggs[prefix + DocumentFields.hi(field)], field, beyond: tooLarge(field))
            let lo = try count(aggs[prefix + DocumentFields.lo(field)], field, beyond: tooLarge(field))
            let total = UInt128(hi) << UInt128(DocumentFields.loBits) + UInt128(lo)
            guard total <= UInt128(UInt64.max) else { throw tooLarge(field) }
            return UInt64(total)
        }
        return try count(
            aggs[prefix + field], field,
            beyond: RPCError(
                .invalidArgument,
                "the sum of \(field) over this query reaches 2^53, beyond what the store adds exactly; narrow the time range or add filters"))
    }

    /// The exact value of `metric` (the sum of its fields).
    public static func metric(_ metric: Metric, in aggs: [String: Aggregation], prefix: String = "") throws -> UInt64 {
        var total: UInt64 = 0
        for f in metric.fields {
            let (s, o) = total.addingReportingOverflow(try value(f, in: aggs, prefix: prefix))
            guard !o else { throw tooLarge(metric.rawValue) }
            total = s
        }
        return total
    }

    /// Every total of `MetricTotals` from aggregations made by `aggregations(totalFields)`.
    public static func totals(from aggs: [String: Aggregation], prefix: String = "") throws -> MetricTotals {
        var t = MetricTotals()
        t.records = try value("records", in: aggs, prefix: prefix)
        t.flows = try value("flows", in: aggs, prefix: prefix)
        t.bytesUp = try value("bytes_up", in: aggs, prefix: prefix)
        t.bytesDown = try value("bytes_down", in: aggs, prefix: prefix)
        t.packetsUp = try value("packets_up", in: aggs, prefix: prefix)
        t.packetsDown = try value("packets_down", in: aggs, prefix: prefix)
        t.rttCount = try value("rtt_count", in: aggs, prefix: prefix)
        t.rttSumMicros = try value("rtt_sum_us", in: aggs, prefix: prefix)
        // Clients show bytes and packets as up + down: those must fit too.
        guard !t.bytesUp.addingReportingOverflow(t.bytesDown).overflow else { throw tooLarge("bytes") }
        guard !t.packetsUp.addingReportingOverflow(t.packetsDown).overflow else { throw tooLarge("packets") }
        return t
    }

    /// A sum the store added exactly: an integer in [0, 2^53) (0 when no document matched);
    /// `beyond` is thrown at 2^53 and above.
    private static func count(_ agg: Aggregation?, _ field: String, beyond: @autoclosure () -> RPCError) throws -> UInt64 {
        guard case .value(let d)? = agg, let d else { return 0 }
        guard d.isFinite, d >= 0, d == d.rounded() else { throw nonsense(field, d) }
        guard d < DocumentFields.exactPlainLimit else { throw beyond() }
        return UInt64(d)
    }

    private static func tooLarge(_ field: String) -> RPCError {
        RPCError(.invalidArgument, "the sum of \(field) over this query exceeds 2^64 - 1; narrow the time range or add filters")
    }

    private static func nonsense(_ field: String, _ d: Double) -> RPCError {
        RPCError(.internal, "store answered \(d) as the sum of \(field), which is not a count")
    }
}
