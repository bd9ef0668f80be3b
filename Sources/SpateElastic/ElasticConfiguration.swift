/// How to reach Elasticsearch (or OpenSearch). Credentials are values here; the node reads
/// them from files or the environment, never from argv, and never logs them.
public struct ElasticConfiguration: Sendable, Hashable {
    /// How requests authenticate.
    public enum Authentication: Sendable, Hashable {
        case none
        case basic(username: String, password: String)
        /// An Elasticsearch API key, sent as `Authorization: ApiKey <key>`.
        case apiKey(String)
    }

    /// Base URL, e.g. `http://127.0.0.1:9200`.
    public var url: String
    public var authentication: Authentication
    /// PEM CA bundle to verify the server against; nil uses the system store.
    public var caFile: String?
    /// Whole-request timeout.
    public var requestTimeout: Duration
    public var connectTimeout: Duration
    /// Requests in flight at once (each holds one keep-alive connection).
    public var maxConcurrentRequests: Int

    /// Defaults: no auth, 30 s requests, 5 s connect, 4 concurrent requests.
    public init(
        url: String, authentication: Authentication = .none, caFile: String? = nil,
        requestTimeout: Duration = .seconds(30), connectTimeout: Duration = .seconds(5),
        maxConcurrentRequests: Int = 4
    ) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.authentication = authentication
        self.caFile = caFile
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
        self.maxConcurrentRequests = maxConcurrentRequests
    }
}

extension Duration {
    var milliseconds: Int {
        let (s, atto) = components
        return Int(s) * 1000 + Int(atto / 1_000_000_000_000_000)
    }
}
