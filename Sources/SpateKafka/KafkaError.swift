/// Every failure SpateKafka reports. Callers never see librdkafka's error enums; the numeric
/// code is kept for logs only.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// The class of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case configuration, unsupportedVersion, clientCreation, produce, queueFull, delivery
            case subscribe, poll, commit, assignment, admin, timeout, closed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// A property was rejected, alone or, when the client was created, together with
        /// others; the message has librdkafka's reason, which names the keys.
        public static let configuration = Code(.configuration)
        /// The loaded librdkafka is older than Spate supports.
        public static let unsupportedVersion = Code(.unsupportedVersion)
        /// rd_kafka_new failed for another reason than the properties (a thread could not start).
        public static let clientCreation = Code(.clientCreation)
        /// A message could not be enqueued.
        public static let produce = Code(.produce)
        /// The producer queue is full; retry after serving delivery reports.
        public static let queueFull = Code(.queueFull)
        /// The broker did not acknowledge a message.
        public static let delivery = Code(.delivery)
        public static let subscribe = Code(.subscribe)
        /// A consumer-side error event (broker down, partition error).
        public static let poll = Code(.poll)
        public static let commit = Code(.commit)
        public static let assignment = Code(.assignment)
        public static let admin = Code(.admin)
        public static let timeout = Code(.timeout)
        /// The client was already closed.
        public static let closed = Code(.closed)
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    /// Whether retrying the same operation may succeed (transient broker or queue states).
    public var isRetriable: Bool
    /// librdkafka's `rd_kafka_resp_err_t` value, for logs.
    public var rdkafkaCode: Int32?

    public init(_ code: Code, _ message: String, isRetriable: Bool = false, rdkafkaCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable
        self.rdkafkaCode = rdkafkaCode
    }

    /// The broker (or librdkafka's own `message.max.bytes` check) refused the message as too
    /// large: resending it whole cannot succeed.
    public var isMessageTooLarge: Bool { rdkafkaCode == 10 }

    public var description: String {
        "kafka \(code): \(message)" + (isRetriable ? " (retriable)" : "")
    }
}
