import Foundation
import SpateModel

/// Prints answers in the chosen format.
enum Render {
    static func result(_ r: QueryResult, query: Query, format: OutputFormat) {
        switch format {
        case .json: Format.print(Format.json(r))
        case .csv: print(csv(r, query: query))
        case .table: print(text(r, query: query, width: terminalWidth()))
        }
    }

    static func terminalWidth() -> Int {
        var w = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &w) == 0, w.ws_col > 20 { return Int(w.ws_col) }
        return 100
    }

    static func metric(of q: Query) -> Metric {
        switch q.kind {
        case .top(_, let m, _): return m
        case .series(let m, _, _, _): return m
        default: return .bytes
        }
    }

    static func header(_ r: QueryResult) -> String {
        Format.dim("\(Format.time(ms: r.startMs)) → \(Format.time(ms: r.endMs)) · view \(r.view)\(r.cached ? " · cached" : "")\(r.storePartitions > 0 ? " · \(r.storePartitions) partitions from the store" : "")")
    }

    /// The terminal rendering (also used by watch widgets), at most `width` columns.
    static func text(_ r: QueryResult, query: Query, width: Int) -> String {
        var lines: [String] = []
        switch query.kind {
        case .top(let d, let m, _):
            let maxV = r.top.map(\.metric).max() ?? 1
            let labelWidth = min(28, max(8, r.top.map { $0.value.count }.max() ?? 8))
            let barWidth = max(5, width - labelWidth - 30)
            // The node checks each row against 2^64, not their sum: it saturates here.
            let total = r.top.map(\.metric).saturatingSum()
            lines.append(Format.table(
                [d.rawValue, m.rawValue, "share", ""],
                r.top.map { row in
                    let label = row.value.count > labelWidth ? String(row.value.prefix(labelWidth - 1)) + "…" : row.value
                    return [label, Format.value(row.metric, metric: m), String(format: "%.1f%%", total > 0 ? 100 * Double(row.metric) / Double(total) : 0),
                            Format.bar(Double(row.metric) / Double(max(1, maxV)), width: barWidth)]
                }))
            if r.top.isEmpty { lines.append(Format.dim("(no data in this range)")) }
        case .series(let m, _, _, _):
            let labelWidth = min(24, max(6, r.series.map { $0.label.count }.max() ?? 6))
            let sparkWidth = max(10, width - labelWidth - 32)
            for s in r.series {
                let values = s.points.map(\.value)
                let label = s.label.isEmpty ? m.rawValue : s.label
                lines.append(
                    label.padding(toLength: labelWidth, withPad: " ", startingAt: 0) + " " + Format.paint(Format.sparkline(values, width: sparkWidth), "36")
                        + "  last " + Format.value(values.last ?? 0, metric: m) + "  max " + Format.value(values.max() ?? 0, metric: m))
            }
            lines.append(Format.dim("step \(Format.duration(ms: r.stepMs)), \(r.series.first?.points.count ?? 0) points"))
        case .totals:
            let t = r.totals ?? MetricTotals()
            lines.append(Format.table(
                ["records", "flows", "bytes", "up", "down", "packets", "avg rtt"],
                [[Format.count(t.records), Format.count(t.flows), Format.bytes(t.bytesUp &+ t.bytesDown), Format.bytes(t.bytesUp), Format.bytes(t.bytesDown),
                  Format.count(t.packetsUp &+ t.packetsDown), t.rttCount > 0 ? String(format: "%.1f ms", Double(t.rttSumMicros) / Double(t.rttCount) / 1000) : "-"]]))
        case .distinctSubscribers:
            lines.append("distinct subscribers: " + Format.bold(Format.count(UInt64(clamping: (r.distinct ?? 0).rounded()))) + Format.dim("  (\(r.documents) documents merged)"))
        case .rttQuantiles:
            lines.append(Format.table(["quantile", "rtt"], r.quantiles.map { [String(format: "p%g", $0.0 * 100), String(format: "%.2f ms", $0.1 / 1000)] }))
        }
        lines.append(header(r))
        return lines.joined(separator: "\n")
    }

    static func csv(_ r: QueryResult, query: Query) -> String {
        switch query.kind {
        case .top(let d, let m, _):
            return Format.csv([d.rawValue, m.rawValue, "records", "flows", "bytes_up", "bytes_down", "packets_up", "packets_down"],
                r.top.map { [$0.value, String($0.metric), String($0.totals.records), String($0.totals.flows), String($0.totals.bytesUp), String($0.totals.bytesDown), String($0.totals.packetsUp), String($0.totals.packetsDown)] })
        case .series:
            return Format.csv(["series", "ts_ms", "value"], r.series.flatMap { s in s.points.map { [s.label, String($0.tsMs), String($0.value)] } })
        case .totals:
            let t = r.totals ?? MetricTotals()
            return Format.csv(["records", "flows", "bytes_up", "bytes_down", "packets_up", "packets_down", "rtt_count", "rtt_sum_us"],
                [[String(t.records), String(t.flows), String(t.bytesUp), String(t.bytesDown), String(t.packetsUp), String(t.packetsDown), String(t.rttCount), String(t.rttSumMicros)]])
        case .distinctSubscribers:
            return Format.csv(["distinct_subscribers", "documents"], [[String(r.distinct ?? 0), String(r.documents)]])
        case .rttQuantiles:
            return Format.csv(["quantile", "rtt_us"], r.quantiles.map { [String($0.0), String($0.1)] })
        }
    }
}
