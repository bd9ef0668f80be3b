/// Every failure SpateElastic reports; callers never see curl codes.
public struct ElasticError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case configuration, transport, timeout, http, decoding
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// Bad client configuration (URL, CA file, credentials file).
        public static let configuration = Code(.configuration)
        /// Could not connect, connection reset, TLS failure.
        public static let transport = Code(.transport)
        /// The request did not finish within its timeout.
        public static let timeout = Code(.timeout)
        /// The server answered with a non-2xx status; see `status`.
        public static let http = Code(.http)
        /// The answer was not the JSON shape expected.
        public static let decoding = Code(.decoding)
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    /// The HTTP status for `http` errors.
    public var status: Int?
    /// Timeouts, transport errors, 429 and 5xx may succeed when retried.
    public var isRetriable: Bool

    public init(_ code: Code, _ message: String, status: Int? = nil, isRetriable: Bool = false) {
        self.code = code
        self.message = message
        self.status = status
        self.isRetriable = isRetriable
    }

    /// An `http` error for `status`, retriable for 429 and 5xx.
    public static func http(_ status: Int, _ message: String) -> ElasticError {
        ElasticError(.http, message, status: status, isRetriable: status == 429 || status >= 500)
    }

    public var description: String {
        "elasticsearch \(code)\(status.map { " \($0)" } ?? ""): \(message)" + (isRetriable ? " (retriable)" : "")
    }
}
