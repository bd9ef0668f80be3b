import Foundation

/// Parses the time forms spate-probe accepts on its command line.
public enum TimeParsing {
    /// `now`, `now-5d` / `now+2h` (s, m, h, d), an ISO-8601 UTC instant
    /// (`2026-11-20T00:00:00Z`, optional fraction), or Unix milliseconds. Nil when not one.
    public static func instantMs(_ text: String, nowMs: UInt64) -> UInt64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t == "now" { return nowMs }
        if t.hasPrefix("now-") || t.hasPrefix("now+") {
            guard let d = durationMs(String(t.dropFirst(4))) else { return nil }
            return t.hasPrefix("now-") ? (nowMs >= d ? nowMs - d : nil) : nowMs + d
        }
        if let ms = UInt64(t), t.count >= 10 { return ms }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = formatter.date(from: t) { return UInt64(d.timeIntervalSince1970 * 1000) }
        formatter.formatOptions = [.withInternetDateTime]
        if let d = formatter.date(from: t) { return UInt64(d.timeIntervalSince1970 * 1000) }
        return nil
    }

    /// `250ms`, `20s`, `5m`, `2h`, `3d`, or a bare number of seconds. Nil when not one.
    public static func durationMs(_ text: String) -> UInt64? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            guard let v = Double(text.dropLast(suffix.count)), v >= 0, v.isFinite else { return nil }
            return UInt64(v * factor)
        }
        guard let v = Double(text), v >= 0, v.isFinite else { return nil }
        return UInt64(v * 1000)
    }
}

extension Duration {
    /// The duration in whole milliseconds (sub-millisecond parts truncated).
    public var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
