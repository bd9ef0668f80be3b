import Foundation

/// The query listener's settings (`query:` section).
public struct QueryConfiguration: Sendable {
    /// host:port; loopback unless configured otherwise.
    public var listen: String
    /// The address other nodes and `spate status` use to reach this node (default: listen).
    public var advertise: String
    public var maxFrameSize: Int
    public var maxStreamsPerConnection: Int
    public var maxConnections: Int
    public var idleTimeout: Duration
    /// Applied when a call sets no deadline, and the largest one accepted for unary calls.
    public var maxDeadline: Duration
    /// Shared secret from `token_file` or SPATE_QUERY_TOKEN; nil: no authentication.
    public var token: String?
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?
    public var minimumRefresh: Duration

    public var host: String { String(listen[..<(listen.lastIndex(of: ":") ?? listen.endIndex)]) }
    public var port: Int { Int(listen[listen.index(after: listen.lastIndex(of: ":")!)...]) ?? 0 }
}

extension NodeConfiguration {
    static let queryKeys = [
        "listen", "advertise", "max_frame_size", "max_streams_per_connection", "max_connections", "idle_timeout", "max_deadline",
        "token_file", "tls_cert_file", "tls_key_file", "min_refresh",
    ]

    static func buildQuery(_ t: ConfigTree, environment: [String: String]) throws -> QueryConfiguration {
        func str(_ k: String, _ d: String) throws -> String { try t.scalar("query.\(k)") ?? d }
        func int(_ k: String, _ d: Int, _ r: ClosedRange<Int>) throws -> Int {
            guard let s = try t.scalar("query.\(k)") else { return d }
            guard let v = Int(s), r.contains(v) else { throw ConfigurationError("query.\(k)", "'\(s)' must be a whole number in \(r.lowerBound)...\(r.upperBound)") }
            return v
        }
        func duration(_ k: String, _ d: Duration, max: Duration? = nil) throws -> Duration {
            guard let s = try t.scalar("query.\(k)") else { return d }
            return try ConfigValue.duration(s, key: "query.\(k)", max: max)
        }
        let listen = try str("listen", "127.0.0.1:7400")
        let port = try ConfigValue.listenAddress(listen, key: "query.listen").port
        var token: String?
        if let v = environment["SPATE_QUERY_TOKEN"], !v.isEmpty {
            token = v
        } else if let file = try t.scalar("query.token_file"), !file.isEmpty {
            do { token = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) } catch {
                throw ConfigurationError("query.token_file", "cannot read \(file): \(error.localizedDescription)")
            }
            guard token?.isEmpty == false else { throw ConfigurationError("query.token_file", "\(file) is empty") }
        }
        if t.node("query.token") != nil {
            throw ConfigurationError("query.token", "secrets are not accepted inline; use token_file or SPATE_QUERY_TOKEN")
        }
        let cert = try t.scalar("query.tls_cert_file").flatMap { $0.isEmpty ? nil : $0 }
        let key = try t.scalar("query.tls_key_file").flatMap { $0.isEmpty ? nil : $0 }
        if (cert == nil) != (key == nil) {
            throw ConfigurationError(cert == nil ? "query.tls_cert_file" : "query.tls_key_file", "TLS needs both tls_cert_file and tls_key_file")
        }
        for (k, f) in [("query.tls_cert_file", cert), ("query.tls_key_file", key)] {
            if let f, !FileManager.default.isReadableFile(atPath: f) { throw ConfigurationError(k, "\(f) is not readable") }
        }
        let advertise = try str("advertise", listen.hasPrefix("0.0.0.0:") ? "127.0.0.1:\(port)" : listen)
        return QueryConfiguration(
            listen: listen, advertise: advertise,
            maxFrameSize: try int("max_frame_size", 4 << 20, 1024...(64 << 20)),
            maxStreamsPerConnection: try int("max_streams_per_connection", 100, 1...10_000),
            maxConnections: try int("max_connections", 1024, 1...100_000),
            idleTimeout: try duration("idle_timeout", .seconds(300)),
            maxDeadline: try duration("max_deadline", .seconds(60)),
            token: token, tlsCertificateFile: cert, tlsKeyFile: key,
            // Refresh intervals travel as 32-bit milliseconds; an hour is plenty.
            minimumRefresh: try duration("min_refresh", .seconds(1), max: .seconds(3600)))
    }
}
