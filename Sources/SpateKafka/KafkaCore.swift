internal import CRdKafka
import Synchronization
internal import Logging

/// librdkafka version facts and the runtime check every client runs before it starts.
public enum KafkaLibrary {
    /// The oldest librdkafka Spate accepts. 2.0.x mis-skips tagged fields (fixed in 2.2.0,
    /// confluentinc/librdkafka#4278) and so cannot talk to Tansu or KRaft-mode Kafka.
    public static let minimumVersion: UInt32 = 0x0202_0000

    /// The version of the librdkafka loaded at runtime, e.g. "2.8.0".
    public static var versionString: String { String(cString: rd_kafka_version_str()) }

    /// The numeric runtime version (0xMMmmrrpp).
    public static var version: UInt32 { UInt32(bitPattern: rd_kafka_version()) }

    /// Throws `unsupportedVersion` unless the loaded librdkafka is at least 2.2.
    public static func checkVersion() throws {
        guard version >= minimumVersion else {
            throw KafkaError(
                .unsupportedVersion,
                "librdkafka \(versionString) is loaded, Spate needs 2.2.0 or newer "
                    + "(older versions cannot parse tagged fields from Tansu or KRaft Kafka); "
                    + "run cluster/setup, which installs 2.8.0 into /usr/local")
        }
    }
}

extension KafkaLibrary {
    /// Why librdkafka refuses `value` for property `key` (unknown name, bad value), or nil when
    /// it accepts it. Lets a program refuse bad properties at start, before any client exists.
    public static func propertyProblem(_ key: String, _ value: String) -> String? {
        guard let conf = rd_kafka_conf_new() else { return "librdkafka could not allocate a configuration" }
        defer { rd_kafka_conf_destroy(conf) }
        var errstr = [CChar](repeating: 0, count: 512)
        guard rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK else { return nil }
        return String(decoding: errstr.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The configuration properties of one client, validated by librdkafka as they are applied.
struct KafkaConf {
    /// Builds an `rd_kafka_conf_t`; throws `configuration` naming the key librdkafka rejected.
    static func make(_ properties: [String: String]) throws -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            let rc = rd_kafka_conf_set(conf, key, value, &errstr, errstr.count)
            if rc != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let reason = String(decoding: errstr.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                throw KafkaError(.configuration, "property \(key): \(reason)")
            }
        }
        return conf
    }
}

/// Converts librdkafka error codes into `KafkaError`.
func kafkaError(_ code: KafkaError.Code, _ err: rd_kafka_resp_err_t, _ context: String) -> KafkaError {
    let text = String(cString: rd_kafka_err2str(err))
    let retriable: Bool
    switch err {
    case RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TRANSPORT,
        RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        retriable = true
    default:
        retriable = false
    }
    return KafkaError(code, "\(context): \(text)", isRetriable: retriable, rdkafkaCode: err.rawValue)
}

/// Forwards librdkafka's log lines to swift-log. librdkafka calls it from its own threads.
let kafkaLogCallback:
    @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
        rk, level, facility, line in
        guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
        let box = Unmanaged<KafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
        let fac = facility.map { String(cString: $0) } ?? "?"
        let text = line.map { String(cString: $0) } ?? ""
        // syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug
        let swiftLevel: Logger.Level = level <= 3 ? .error : level == 4 ? .warning : level <= 6 ? .info : .debug
        box.logger.log(level: swiftLevel, "\(fac): \(text)", metadata: ["kafka.client": .string(box.clientName)])
    }

/// Forwards librdkafka's client-level error events (all brokers down, fatal errors).
let kafkaErrorCallback:
    @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
        _, err, reason, opaque in
        guard let opaque else { return }
        let box = Unmanaged<KafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
        let text = reason.map { String(cString: $0) } ?? ""
        let error = kafkaError(.poll, rd_kafka_resp_err_t(rawValue: err), text)
        box.logger.warning("client error: \(error)", metadata: ["kafka.client": .string(box.clientName)])
        box.onError?(error)
    }

/// State reachable from librdkafka's C callbacks through the client opaque pointer. It lives
/// as long as the client handle (the owning wrapper releases it after rd_kafka_destroy).
final class KafkaCallbacks: @unchecked Sendable {
    let logger: Logger
    let clientName: String
    /// Set before the handle is created, never changed after: read from librdkafka threads.
    let onError: (@Sendable (KafkaError) -> Void)?
    /// Producer only: called for every delivery report on the thread serving reports.
    var onDelivery: ((KafkaDeliveryReport) -> Void)?
    /// Consumer only: the rebalance callback target (called on the polling thread).
    weak var rebalance: (any KafkaRebalanceListener)?
    weak var consumer: KafkaConsumer?

    init(logger: Logger, clientName: String, onError: (@Sendable (KafkaError) -> Void)?) {
        self.logger = logger
        self.clientName = clientName
        self.onError = onError
    }
}

/// Applies the shared callbacks and opaque to `conf` and creates the client handle.
func makeKafkaHandle(type: rd_kafka_type_t, conf: OpaquePointer, callbacks: KafkaCallbacks) throws -> OpaquePointer {
    rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(callbacks).toOpaque())
    rd_kafka_conf_set_log_cb(conf, kafkaLogCallback)
    rd_kafka_conf_set_error_cb(conf, kafkaErrorCallback)
    var errstr = [CChar](repeating: 0, count: 512)
    guard let rk = rd_kafka_new(type, conf, &errstr, errstr.count) else {
        // INVALID_ARG: the properties, taken together (conf finalize, SSL context, SASL,
        // assignors); anything else (a thread that could not start) is not the configuration's.
        let refused = rd_kafka_last_error() == RD_KAFKA_RESP_ERR__INVALID_ARG
        rd_kafka_conf_destroy(conf)
        let reason = String(decoding: errstr.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw KafkaError(refused ? .configuration : .clientCreation, reason)
    }
    return rk
}

/// A topic and partition.
public struct KafkaTopicPartition: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)[\(partition)]" }
}

/// Helpers for `rd_kafka_topic_partition_list_t`.
enum PartitionList {
    static func make(_ items: [(KafkaTopicPartition, Int64?)]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(max(items.count, 1)))!
        for (tp, offset) in items {
            let elem = rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)!
            if let offset { elem.pointee.offset = offset }
        }
        return list
    }

    static func read(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>?) -> [(KafkaTopicPartition, Int64, rd_kafka_resp_err_t)] {
        guard let list else { return [] }
        return (0..<Int(list.pointee.cnt)).map { i in
            let e = list.pointee.elems[i]
            return (KafkaTopicPartition(topic: String(cString: e.topic), partition: e.partition), e.offset, e.err)
        }
    }
}

/// A librdkafka handle passed to a thread that the owner outlives; rd_kafka_t is thread-safe
/// for the calls made through it.
struct UncheckedHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}

/// A boolean that one thread sets and others poll.
final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}
