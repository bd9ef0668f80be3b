internal import CRdKafka
public import Logging

/// librdkafka's built-in mock Kafka cluster: real TCP listeners on 127.0.0.1 that other
/// processes can use, with fault injection. For broker-fault tests only — its partitions keep
/// ~100k messages, so it is no broker for benchmarks or demos (Tansu is).
public final class KafkaMockCluster: @unchecked Sendable {
    private let rk: OpaquePointer
    private let cluster: OpaquePointer
    private let callbacks: KafkaCallbacks

    /// Starts `brokers` mock brokers (ids 1...brokers).
    public init(brokers: Int, logger: Logger) throws {
        try KafkaLibrary.checkVersion()
        let conf = try KafkaConf.make([:])
        callbacks = KafkaCallbacks(logger: logger, clientName: "mock-cluster", onError: nil)
        rk = try makeKafkaHandle(type: RD_KAFKA_PRODUCER, conf: conf, callbacks: callbacks)
        guard let c = rd_kafka_mock_cluster_new(rk, Int32(brokers)) else {
            rd_kafka_destroy(rk)
            throw KafkaError(.clientCreation, "cannot create a mock cluster")
        }
        cluster = c
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(rk)
    }

    /// The bootstrap servers to give clients.
    public var bootstrapServers: String { String(cString: rd_kafka_mock_cluster_bootstraps(cluster)) }

    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws {
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.admin, err, "mock topic \(name)") }
    }

    /// Disconnects broker `id` and refuses new connections until `setBrokerUp`.
    public func setBrokerDown(_ id: Int32) throws {
        let err = rd_kafka_mock_broker_set_down(cluster, id)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.admin, err, "broker \(id) down") }
    }

    public func setBrokerUp(_ id: Int32) throws {
        let err = rd_kafka_mock_broker_set_up(cluster, id)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.admin, err, "broker \(id) up") }
    }
}
