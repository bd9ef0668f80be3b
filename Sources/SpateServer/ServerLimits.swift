/// Every bound the query server keeps per peer (docs/PROTOCOL.md, "Limits"). One value per
/// listener, shared by its connections; the node fills it from the `query.*` configuration
/// keys, whose names are given on each property.
public struct ServerLimits: Sendable, Hashable {
    /// Largest frame payload accepted from an authenticated peer (`query.max_frame_size`).
    public var maxFrameSize: Int
    /// Largest frame payload accepted before the peer presented a valid token
    /// (`query.max_preauth_frame_size`): nothing big is buffered for an unknown peer.
    public var maxPreAuthFrameSize: Int
    /// Largest frame payload this server sends: the protocol's receiver maximum (4 MiB).
    /// A larger answer ends its call with RESOURCE_EXHAUSTED instead.
    public var maxOutboundFrameSize: Int
    /// Largest request message (a DATA frame's payload) a call accepts (`query.max_request_size`):
    /// requests are small; a large one is refused before any decoding.
    public var maxRequestSize: Int
    /// Concurrent calls per connection (`query.max_streams_per_connection`).
    public var maxStreams: Int
    /// Metadata entries accepted in one HEADERS frame (`query.max_metadata_entries`).
    public var maxMetadataEntries: Int
    /// Largest deadline of a unary call, and the deadline of one that sets none (`query.max_deadline`).
    public var maxDeadline: Duration
    /// Time a call may wait for its request message after HEADERS (`query.request_timeout`).
    public var requestTimeout: Duration
    /// Time from accept to the preface (TLS handshake included) and, with a token, to the first
    /// authenticated call (`query.handshake_timeout`).
    public var handshakeTimeout: Duration
    /// A connection without calls and without call frames for this long gets GOAWAY
    /// (`query.idle_timeout`); PINGs do not count.
    public var idleTimeout: Duration
    /// Wrong or missing tokens tolerated on one connection before GOAWAY (`query.max_failed_tokens`).
    public var maxFailedTokens: Int
    /// PINGs closer together than this are strikes (`query.min_ping_interval`), gRPC's rule.
    public var minPingInterval: Duration
    /// Strikes tolerated before GOAWAY `too_many_pings` (`query.max_ping_strikes`).
    public var maxPingStrikes: Int
    /// How long a peer that stopped reading may hold an unsent answer before the connection is
    /// closed (`query.write_stall_timeout`).
    public var writeStallTimeout: Duration
    /// After GOAWAY, the connection is closed when the frame is written or after this long,
    /// whichever comes first (`query.goaway_timeout`).
    public var goAwayTimeout: Duration
    /// The shared secret clients present as `authorization: Bearer <token>`; nil: no authentication.
    public var token: String?

    /// The documented defaults.
    public static var defaults: ServerLimits {
        ServerLimits(
            maxFrameSize: 4 << 20, maxPreAuthFrameSize: 16 << 10, maxOutboundFrameSize: 4 << 20, maxRequestSize: 64 << 10, maxStreams: 100,
            maxMetadataEntries: 16, maxDeadline: .seconds(60), requestTimeout: .seconds(10), handshakeTimeout: .seconds(10),
            idleTimeout: .seconds(300), maxFailedTokens: 3, minPingInterval: .seconds(1), maxPingStrikes: 2,
            writeStallTimeout: .seconds(30), goAwayTimeout: .seconds(1), token: nil)
    }

    /// All limits spelled out; see `defaults`.
    public init(
        maxFrameSize: Int, maxPreAuthFrameSize: Int, maxOutboundFrameSize: Int, maxRequestSize: Int, maxStreams: Int, maxMetadataEntries: Int,
        maxDeadline: Duration, requestTimeout: Duration, handshakeTimeout: Duration, idleTimeout: Duration, maxFailedTokens: Int,
        minPingInterval: Duration, maxPingStrikes: Int, writeStallTimeout: Duration, goAwayTimeout: Duration, token: String?
    ) {
        self.maxFrameSize = maxFrameSize
        self.maxPreAuthFrameSize = maxPreAuthFrameSize
        self.maxOutboundFrameSize = maxOutboundFrameSize
        self.maxRequestSize = maxRequestSize
        self.maxStreams = maxStreams
        self.maxMetadataEntries = maxMetadataEntries
        self.maxDeadline = maxDeadline
        self.requestTimeout = requestTimeout
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
        self.maxFailedTokens = maxFailedTokens
        self.minPingInterval = minPingInterval
        self.maxPingStrikes = maxPingStrikes
        self.writeStallTimeout = writeStallTimeout
        self.goAwayTimeout = goAwayTimeout
        self.token = token
    }

    /// The frame limit before authentication: the smaller of the two (no token: the full one).
    public var initialFrameLimit: Int { token == nil ? maxFrameSize : min(maxPreAuthFrameSize, maxFrameSize) }
}
