import Foundation

/// Parses the time forms the command-line tools accept. Every form is range-checked: a value
/// that is not representable (`1e30d`, a date before 1970) is refused (nil), never trapped on.
public enum TimeParsing {
    /// The longest duration accepted anywhere: 100 years (36500d). Far beyond any useful
    /// range or interval, and far inside what `UInt64`/`Int64` milliseconds and `Duration` hold.
    public static let maxDurationMs: UInt64 = 36_500 * 86_400_000

    /// How the longest accepted duration is written in messages.
    public static let maxDurationText = "36500d"

    /// The latest instant accepted: 9999-12-31T23:59:59.999Z.
    public static let maxInstantMs: UInt64 = 253_402_300_799_999

    /// `now`, `now-5d` / `now+2h` (s, m, h, d), an ISO-8601 UTC instant
    /// (`2026-11-20T00:00:00Z`, optional fraction), or Unix milliseconds (10 digits or more),
    /// between 1970 and 9999. Nil when not one.
    public static func instantMs(_ text: String, nowMs: UInt64) -> UInt64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let result: UInt64?
        if t == "now" {
            result = nowMs
        } else if t.hasPrefix("now-") || t.hasPrefix("now+") {
            guard let d = durationMs(String(t.dropFirst(4))) else { return nil }
            result = t.hasPrefix("now-") ? (nowMs >= d ? nowMs - d : nil) : nowMs.addingReportingOverflow(d).partialValue
        } else if t.count >= 10, t.allSatisfy(\.isASCIIDigit) {
            result = UInt64(t)
        } else {
            result = isoInstantMs(t)
        }
        guard let result, result <= maxInstantMs else { return nil }
        return result
    }

    private static func isoInstantMs(_ t: String) -> UInt64? {
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
            formatter.formatOptions = options
            if let d = formatter.date(from: t) {
                let ms = d.timeIntervalSince1970 * 1000
                guard ms.isFinite, ms >= 0, ms <= Double(maxInstantMs) else { return nil }
                return UInt64(ms)
            }
        }
        return nil
    }

    /// `250ms`, `20s`, `5m`, `2h`, `3d`, or a bare number of seconds, at most `maxDurationMs`.
    /// Nil when not one (or beyond the maximum).
    public static func durationMs(_ text: String) -> UInt64? {
        guard let ms = durationMilliseconds(text), ms <= Double(maxDurationMs) else { return nil }
        return UInt64(ms)
    }

    /// The one duration grammar of the CLI and the configuration: `250ms`, `20s`, `5m`, `2h`,
    /// `3d` or a bare number of seconds, as milliseconds — finite and ≥ 0, but unbounded: each
    /// caller applies its own maximum. Nil when the text is not a duration.
    public static func durationMilliseconds(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        let t = text.trimmingCharacters(in: .whitespaces)
        var factor = 1000.0
        var number = Substring(t)
        for (suffix, f) in units where t.hasSuffix(suffix) {
            factor = f
            number = t.dropLast(suffix.count)
            break
        }
        guard let v = Double(number), v.isFinite, v >= 0 else { return nil }
        return v * factor
    }
}

extension Character {
    /// 0–9 only (not other Unicode digits).
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

extension Duration {
    /// The duration in whole milliseconds (sub-millisecond parts truncated).
    public var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }

    /// The duration in seconds, as a Double (rates, timings).
    public var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
