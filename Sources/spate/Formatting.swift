import Foundation
import SpateJSON
import SpateModel

/// Human-friendly numbers, tables, bars and sparklines for the terminal; JSON and CSV for
/// scripts.
enum Format {
    /// Whether to use colour: only on a terminal, and never with NO_COLOR set.
    static let color: Bool = isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil

    static func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
    static func bold(_ s: String) -> String { paint(s, "1") }
    static func dim(_ s: String) -> String { paint(s, "2") }

    /// 1234 → "1.2k", 5_600_000 → "5.6M".
    static func count(_ v: UInt64) -> String { scaled(Double(v), units: ["", "k", "M", "G", "T", "P"], base: 1000) }

    /// Bytes in decimal units: "512 B", "1.5 MB".
    static func bytes(_ v: UInt64) -> String {
        v < 1000 ? "\(v) B" : scaled(Double(v), units: ["B", "KB", "MB", "GB", "TB", "PB", "EB"], base: 1000, space: true)
    }

    static func value(_ v: UInt64, metric: Metric) -> String { metric.isBytes ? bytes(v) : count(v) }

    private static func scaled(_ v: Double, units: [String], base: Double, space: Bool = false) -> String {
        var x = v
        var i = 0
        while x >= base && i < units.count - 1 {
            x /= base
            i += 1
        }
        if i == 0 { return String(Int(v)) + (space ? " " + units[0] : units[0]) }
        let text = x >= 100 ? String(format: "%.0f", x) : x >= 10 ? String(format: "%.1f", x) : String(format: "%.2f", x)
        return text + (space ? " " : "") + units[i]
    }

    static func duration(ms: UInt64) -> String {
        switch ms {
        case ..<60_000: return "\(ms / 1000)s"
        case ..<3_600_000: return "\(ms / 60_000)m"
        case ..<86_400_000: return ms % 3_600_000 == 0 ? "\(ms / 3_600_000)h" : "\(ms / 60_000)m"
        default: return "\(ms / 86_400_000)d"
        }
    }

    static func time(ms: UInt64) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000)) + "Z"
    }

    /// Left-aligned first column, right-aligned others; widths by content (ANSI codes ignored).
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = (0..<header.count).map { c in all.map { visibleLength($0[c]) }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - visibleLength(cell))
                return i == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        return ([bold(line(header))] + rows.map(line)).joined(separator: "\n")
    }

    static func visibleLength(_ s: String) -> Int {
        var n = 0
        var inEscape = false
        for ch in s.unicodeScalars {
            if ch == "\u{1B}" { inEscape = true; continue }
            if inEscape {
                if ch == "m" { inEscape = false }
                continue
            }
            n += 1
        }
        return n
    }

    /// A horizontal bar of `width` cells for `fraction` ∈ [0, 1], with eighth-cell precision.
    static func bar(_ fraction: Double, width: Int) -> String {
        let eighths = Int((max(0, min(1, fraction)) * Double(width * 8)).rounded())
        let partial = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]
        let s = String(repeating: "█", count: eighths / 8) + partial[eighths % 8]
        return paint(s, "36") + String(repeating: " ", count: max(0, width - (eighths + 7) / 8))
    }

    /// "▁▂▃▅▇█" for the values, scaled between their minimum and maximum (or zero).
    static func sparkline(_ values: [UInt64], width: Int? = nil) -> String {
        var v = values
        if let width, v.count > width {
            // Average down to `width` cells.
            let chunk = Double(v.count) / Double(width)
            v = (0..<width).map { i in
                let slice = values[Int(Double(i) * chunk)..<max(Int(Double(i) * chunk) + 1, Int(Double(i + 1) * chunk))]
                // The mean without a sum that could pass 2^64.
                return UInt64(clamping: slice.reduce(0.0) { $0 + Double($1) } / Double(slice.count))
            }
        }
        guard let maxV = v.max(), maxV > 0 else { return String(repeating: "▁", count: v.count) }
        let levels = Array("▁▂▃▄▅▆▇█")
        return String(v.map { levels[Int((Double($0) / Double(maxV) * 7).rounded())] })
    }

    static func csv(_ header: [String], _ rows: [[String]]) -> String {
        func esc(_ s: String) -> String { s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        return ([header] + rows).map { $0.map(esc).joined(separator: ",") }.joined(separator: "\n")
    }

    static func json(_ totals: MetricTotals) -> JSONValue {
        [
            "records": .number(totals.records), "flows": .number(totals.flows), "bytes": .number(totals.bytesUp &+ totals.bytesDown),
            "bytes_up": .number(totals.bytesUp), "bytes_down": .number(totals.bytesDown),
            "packets": .number(totals.packetsUp &+ totals.packetsDown), "packets_up": .number(totals.packetsUp),
            "packets_down": .number(totals.packetsDown), "rtt_count": .number(totals.rttCount), "rtt_sum_us": .number(totals.rttSumMicros),
        ]
    }

    /// The JSON form of an answer (stable keys, exact integers).
    static func json(_ r: QueryResult) -> JSONValue {
        var o = JSONObject()
        o["view"] = .string(r.view)
        o["start_ms"] = .number(r.startMs)
        o["end_ms"] = .number(r.endMs)
        if r.stepMs > 0 { o["step_ms"] = .number(r.stepMs) }
        o["computed_at_ms"] = .number(r.computedAtMs)
        o["cached"] = .bool(r.cached)
        o["live_partitions"] = .number(r.livePartitions)
        o["store_partitions"] = .number(r.storePartitions)
        if !r.top.isEmpty { o["rows"] = .array(r.top.map { ["value": .string($0.value), "metric": .number($0.metric), "totals": json($0.totals)] }) }
        if !r.series.isEmpty {
            o["series"] = .array(r.series.map { s in
                ["label": .string(s.label), "points": .array(s.points.map { ["ts_ms": .number($0.tsMs), "value": .number($0.value)] })]
            })
        }
        if let t = r.totals { o["totals"] = json(t) }
        if let d = r.distinct { o["distinct"] = .double(d) }
        if !r.quantiles.isEmpty { o["quantiles"] = .array(r.quantiles.map { ["quantile": .double($0.0), "value": .double($0.1)] }) }
        if r.documents > 0 { o["documents"] = .number(r.documents) }
        return .object(o)
    }

    static func print(_ json: JSONValue) { Swift.print(JSONWriter.string(json)) }
}
