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
    /// `500ms`, `10s`, `2m`, `1h`, `3d`, or a number of seconds.
    public static func duration(_ text: String, key: String) throws -> Duration {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        let t = text.trimmingCharacters(in: .whitespaces)
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            if let v = Double(t.dropLast(suffix.count)), v >= 0, v.isFinite { return .milliseconds(Int64(v * factor * 1000)) }
            break
        }
        if let v = Double(t), v >= 0, v.isFinite { return .milliseconds(Int64(v * 1000)) }
        throw ConfigurationError(key, "'\(text)' is not a duration (use e.g. 500ms, 10s, 2m, 1h, 10d)")
    }

    /// A listener address `host:port` (port 0 = any free port); `alternatives` ends the error.
    public static func listenAddress(_ text: String, key: String, alternatives: String = "") throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port),
            !text[..<colon].isEmpty
        else { throw ConfigurationError(key, "'\(text)' must be host:port (e.g. 127.0.0.1:7400)" + alternatives) }
        return (String(text[..<colon]), port)
    }

    /// `1048576`, `512KB`, `256MB`, `2GB`, `5TB` (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB`.
    public static func bytes(_ text: String, key: String) throws -> Int64 {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [
            ("KIB", 1024), ("MIB", 1_048_576), ("GIB", 1_073_741_824), ("TIB", 1_099_511_627_776),
            ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("B", 1),
        ]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            if let v = Double(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), v >= 0, v.isFinite {
                return Int64(v * factor)
            }
            break
        }
        if let v = Int64(t), v >= 0 { return v }
        throw ConfigurationError(key, "'\(text)' is not a size (use e.g. 512MB, 2GiB, 5TB)")
    }
}

import Foundation
