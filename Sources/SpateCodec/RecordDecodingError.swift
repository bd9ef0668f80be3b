/// Why a Kafka message could not be read as a `RecordBatch`. The `reason` travels with the
/// message to the dead-letter topic, so it names the rule that failed and where.
public struct RecordDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The class of failure; stable strings, used as the DLQ `spate-reason` header prefix.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case malformedProtobuf = "malformed-protobuf"
            case emptyBatch = "empty-batch"
            case invalidBatch = "invalid-batch"
            case invalidRecord = "invalid-record"
            case invalidUTF8 = "invalid-utf8"
            case invalidString = "invalid-string"
            case eventTimeOutOfRange = "event-time-out-of-range"
            case counterOutOfRange = "counter-out-of-range"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// The bytes are not a protobuf message of the RecordBatch shape.
        public static let malformedProtobuf = Code(.malformedProtobuf)
        /// A batch without records.
        public static let emptyBatch = Code(.emptyBatch)
        /// A batch-level field breaks a rule (probe id 0, …).
        public static let invalidBatch = Code(.invalidBatch)
        /// A record field breaks a rule (address length, time order, port range, …).
        public static let invalidRecord = Code(.invalidRecord)
        /// A string field is not valid UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// A string field holds a NUL byte.
        public static let invalidString = Code(.invalidString)
        /// An event time outside the accepted window (`RecordLimits`).
        public static let eventTimeOutOfRange = Code(.eventTimeOutOfRange)
        /// A counter above its per-record ceiling (`RecordLimits`).
        public static let counterOutOfRange = Code(.counterOutOfRange)
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// Human-readable detail, e.g. "record 17: client_ip has 5 bytes (want 4 or 16)".
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `code: message`, the form written to the DLQ.
    public var description: String { "\(code): \(message)" }
}
