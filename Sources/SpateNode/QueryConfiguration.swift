import Foundation
public import SpateServer

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
    /// Frame limit before a valid token (`max_preauth_frame_size`).
    public var maxPreAuthFrameSize: Int = ServerLimits.defaults.maxPreAuthFrameSize
    /// Connections that have not authenticated yet (`max_unauthenticated_connections`).
    public var maxUnauthenticatedConnections: Int = 128
    /// Metadata entries per call (`max_metadata_entries`).
    public var maxMetadataEntries: Int = ServerLimits.defaults.maxMetadataEntries
    /// Bound of the answer cache in estimated bytes (`cache_max_bytes`).
    public var cacheMaxBytes: Int = 64 << 20
    /// Largest request message (`max_request_size`).
    public var maxRequestSize: Int = ServerLimits.defaults.maxRequestSize
    /// Wait for a call's request message (`request_timeout`).
    public var requestTimeout: Duration = ServerLimits.defaults.requestTimeout
    /// Accept to preface (TLS handshake included) and, with a token, to the first valid token (`handshake_timeout`).
    public var handshakeTimeout: Duration = ServerLimits.defaults.handshakeTimeout
    /// Wrong tokens per connection before GOAWAY (`max_failed_tokens`).
    public var maxFailedTokens: Int = ServerLimits.defaults.maxFailedTokens
    /// PINGs closer than this are strikes (`min_ping_interval`).
    public var minPingInterval: Duration = ServerLimits.defaults.minPingInterval
    /// Strikes before GOAWAY too_many_pings (`max_ping_strikes`).
    public var maxPingStrikes: Int = ServerLimits.defaults.maxPingStrikes
    /// A peer not reading its answers this long is closed (`write_stall_timeout`).
    public var writeStallTimeout: Duration = ServerLimits.defaults.writeStallTimeout
    /// Close this long after GOAWAY even if it cannot be written (`goaway_timeout`).
    public var goAwayTimeout: Duration = ServerLimits.defaults.goAwayTimeout
    /// Answer open buckets from their owners' memory (`live_tier`).
    public var liveTier = true
    /// Deadline of a node-to-node OpenBuckets call and of a worker's answer (`peer_timeout`).
    public var peerTimeout: Duration = .milliseconds(500)
    /// How long an owner keeps a closed bucket in memory after its final flush, so that askers
    /// whose cached slots have not reached it yet get it from memory, not from a store search
    /// (`live_keep_closed`; 0: released at once).
    public var liveKeepClosed: Duration = .seconds(60)
    /// At most this many cells of such buckets are kept per partition and view, the oldest
    /// going first (`live_keep_closed_cells`).
    public var liveKeepClosedCells = 100_000
    /// CA that peers' TLS certificates are verified against (`peer_ca_file`; default: the
    /// system's roots). Used only when TLS is on.
    public var peerCAFile: String?

    /// The peer limits as `--print-config` shows them.
    var peerLimitLines: [String] {
        [
            "query.max_preauth_frame_size = \(maxPreAuthFrameSize)", "query.max_unauthenticated_connections = \(maxUnauthenticatedConnections)",
            "query.max_metadata_entries = \(maxMetadataEntries)", "query.max_request_size = \(maxRequestSize)",
            "query.cache_max_bytes = \(cacheMaxBytes)", "query.request_timeout = \(requestTimeout)",
            "query.handshake_timeout = \(handshakeTimeout)", "query.max_failed_tokens = \(maxFailedTokens)",
            "query.min_ping_interval = \(minPingInterval)", "query.max_ping_strikes = \(maxPingStrikes)",
            "query.write_stall_timeout = \(writeStallTimeout)", "query.goaway_timeout = \(goAwayTimeout)",
            "query.live_tier = \(liveTier)", "query.peer_timeout = \(peerTimeout)", "query.peer_ca_file = \(peerCAFile ?? "(system roots)")",
            "query.live_keep_closed = \(liveKeepClosed)", "query.live_keep_closed_cells = \(liveKeepClosedCells)",
        ]
    }

    /// The per-connection limits of the server module.
    public var serverLimits: ServerLimits {
        ServerLimits(
            maxFrameSize: maxFrameSize, maxPreAuthFrameSize: maxPreAuthFrameSize, maxOutboundFrameSize: ServerLimits.defaults.maxOutboundFrameSize,
            maxRequestSize: maxRequestSize, maxStreams: maxStreamsPerConnection, maxMetadataEntries: maxMetadataEntries, maxDeadline: maxDeadline, requestTimeout: requestTimeout,
            handshakeTimeout: handshakeTimeout, idleTimeout: idleTimeout, maxFailedTokens: maxFailedTokens, minPingInterval: minPingInterval,
            maxPingStrikes: maxPingStrikes, writeStallTimeout: writeStallTimeout, goAwayTimeout: goAwayTimeout, token: token)
    }

    public var host: String { String(listen[..<(listen.lastIndex(of: ":") ?? listen.endIndex)]) }
    public var port: Int { Int(listen[listen.index(after: listen.lastIndex(of: ":")!)...]) ?? 0 }
}

extension NodeConfiguration {
    static let queryKeys = [
        "listen", "advertise", "max_frame_size", "max_streams_per_connection", "max_connections", "idle_timeout", "max_deadline",
        "token_file", "tls_cert_file", "tls_key_file", "min_refresh", "max_preauth_frame_size", "max_unauthenticated_connections", "max_request_size", "cache_max_bytes",
        "max_metadata_entries", "request_timeout", "handshake_timeout", "max_failed_tokens", "min_ping_interval", "max_ping_strikes",
        "write_stall_timeout", "goaway_timeout", "live_tier", "peer_timeout", "peer_ca_file",
        "live_keep_closed", "live_keep_closed_cells",
    ]

    static func buildQuery(_ t: ConfigTree, environment: [String: String]) throws -> QueryConfiguration {
        func str(_ k: String, _ d: String) throws -> String { try t.scalar("query.\(k)") ?? d }
        func int(_ k: String, _ d: Int, _ r: ClosedRange<Int>) throws -> Int {
            guard let s = try t.scalar("query.\(k)") else { return d }
            guard let v = Int(s), r.contains(v) else { throw ConfigurationError("query.\(k)", "'\(s)' must be a whole number in \(r.lowerBound)...\(r.upperBound)") }
            return v
        }
        func duration(_ k: String, _ d: Duration, _ r: ClosedRange<Duration> = .milliseconds(1)...Duration.seconds(86_400 * 365)) throws -> Duration {
            guard let s = try t.scalar("query.\(k)") else { return d }
            let v = try ConfigValue.duration(s, key: "query.\(k)")
            guard r.contains(v) else { throw ConfigurationError("query.\(k)", "'\(s)' must be between \(r.lowerBound) and \(r.upperBound)") }
            return v
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
        let maxFrameSize = try int("max_frame_size", 4 << 20, 1024...(64 << 20))
        var q = QueryConfiguration(
            listen: listen, advertise: advertise,
            maxFrameSize: maxFrameSize,
            maxStreamsPerConnection: try int("max_streams_per_connection", 100, 1...10_000),
            maxConnections: try int("max_connections", 1024, 1...100_000),
            idleTimeout: try duration("idle_timeout", .seconds(300)),
            maxDeadline: try duration("max_deadline", .seconds(60)),
            token: token, tlsCertificateFile: cert, tlsKeyFile: key,
            // Refresh intervals travel as 32-bit milliseconds; an hour is plenty.
            minimumRefresh: try duration("min_refresh", .seconds(1), .milliseconds(1)...Duration.seconds(3600)))
        let d = ServerLimits.defaults
        q.maxPreAuthFrameSize = try int("max_preauth_frame_size", d.maxPreAuthFrameSize, 1024...maxFrameSize)
        q.maxUnauthenticatedConnections = try int("max_unauthenticated_connections", min(128, q.maxConnections), 1...q.maxConnections)
        q.maxRequestSize = try int("max_request_size", d.maxRequestSize, 1024...maxFrameSize)
        q.cacheMaxBytes = try int("cache_max_bytes", 64 << 20, (1 << 20)...(16 << 30))
        q.maxMetadataEntries = try int("max_metadata_entries", d.maxMetadataEntries, 1...1024)
        q.requestTimeout = try duration("request_timeout", d.requestTimeout)
        q.handshakeTimeout = try duration("handshake_timeout", d.handshakeTimeout)
        q.maxFailedTokens = try int("max_failed_tokens", d.maxFailedTokens, 1...1000)
        q.minPingInterval = try duration("min_ping_interval", d.minPingInterval, .zero...Duration.seconds(3600))
        q.maxPingStrikes = try int("max_ping_strikes", d.maxPingStrikes, 0...1000)
        q.writeStallTimeout = try duration("write_stall_timeout", d.writeStallTimeout)
        q.goAwayTimeout = try duration("goaway_timeout", d.goAwayTimeout)
        let live = try str("live_tier", "true")
        guard ["true", "false"].contains(live) else { throw ConfigurationError("query.live_tier", "'\(live)' must be true or false") }
        q.liveTier = live == "true"
        q.peerTimeout = try duration("peer_timeout", .milliseconds(500), .milliseconds(10)...Duration.seconds(60))
        q.peerCAFile = try t.scalar("query.peer_ca_file").flatMap { $0.isEmpty ? nil : $0 }
        if let f = q.peerCAFile, !FileManager.default.isReadableFile(atPath: f) { throw ConfigurationError("query.peer_ca_file", "\(f) is not readable") }
        q.liveKeepClosed = try duration("live_keep_closed", .seconds(60), .zero...Duration.seconds(3600))
        q.liveKeepClosedCells = try int("live_keep_closed_cells", 100_000, 0...10_000_000)
        return q
    }
}
