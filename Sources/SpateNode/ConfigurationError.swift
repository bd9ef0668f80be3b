/// A configuration problem, naming the key (dotted path, e.g. `ingest.flush_interval`) and
/// the reason. The node refuses to start on any of these.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var key: String
    public var reason: String

    public init(_ key: String, _ reason: String) {
        self.key = key
        self.reason = reason
    }

    public var description: String { "configuration error: \(key): \(reason)" }
}

/// Parsers for the value forms configuration accepts.
public enum ConfigValue {
    /// `500ms`, `10s`, `2m`, `1h`, `3d`, or a number of seconds; at most `maxDuration` (36500d)
    /// and `max` when given. Never traps: a value beyond the bound names the key.
    public static func duration(_ text: String, key: String, max: Duration? = nil) throws -> Duration {
        guard let ms = TimeParsing.durationMilliseconds(text) else {
            throw ConfigurationError(key, "'\(text)' is not a duration (use e.g. 500ms, 10s, 2m, 1h, 10d)")
        }
        let limit = Swift.min(max ?? maxDuration, maxDuration)
        guard ms <= Double(limit.wholeMilliseconds) else {
            throw ConfigurationError(key, "'\(text)' is too long (at most \(describe(limit)))")
        }
        return .milliseconds(Int64(ms))
    }

    /// The longest duration any key accepts: 100 years.
    public static let maxDuration: Duration = .seconds(36_500 * 86_400)

    /// The largest size any key accepts: 1 EB (10^18 bytes), far inside `Int64`.
    public static let maxBytes: Int64 = 1_000_000_000_000_000_000

    /// A duration as configuration writes it: `90s`, `5m`, `36500d`.
    public static func describe(_ d: Duration) -> String {
        let ms = d.wholeMilliseconds
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms >= size && ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(ms)ms"
    }

    /// A listener address `host:port` (port 0 = any free port); `alternatives` ends the error.
    public static func listenAddress(_ text: String, key: String, alternatives: String = "") throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port),
            !text[..<colon].isEmpty
        else { throw ConfigurationError(key, "'\(text)' must be host:port (e.g. 127.0.0.1:7400)" + alternatives) }
        return (String(text[..<colon]), port)
    }

    /// `1048576`, `512KB`, `256MB`, `2GB`, `5TB` (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB`;
    /// at most `maxBytes` (1 EB) and `max` when given. Never traps.
    public static func bytes(_ text: String, key: String, max: Int64? = nil) throws -> Int64 {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [
            ("KIB", 1024), ("MIB", 1_048_576), ("GIB", 1_073_741_824), ("TIB", 1_099_511_627_776),
            ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("B", 1),
        ]
        var factor = 1.0
        var number = Substring(t)
        for (suffix, f) in units where t.hasSuffix(suffix) {
            factor = f
            number = t.dropLast(suffix.count)
            break
        }
        guard let v = Double(number.trimmingCharacters(in: .whitespaces)), v >= 0, v.isFinite else {
            throw ConfigurationError(key, "'\(text)' is not a size (use e.g. 512MB, 2GiB, 5TB)")
        }
        let limit = Swift.min(max ?? maxBytes, maxBytes)
        let value = v * factor
        guard value <= Double(limit) else { throw ConfigurationError(key, "'\(text)' is too large (at most \(limit) bytes)") }
        return Int64(value)
    }
}

import Foundation
import SpateModel
