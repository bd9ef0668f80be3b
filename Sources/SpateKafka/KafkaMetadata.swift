internal import CRdKafka
public import Logging

/// Cluster metadata without a long-lived client: which topics exist, with how many
/// partitions. Blocking (up to the timeout): call it off the cooperative pool.
public enum KafkaMetadata {
    /// The cluster's topics and their partition counts, from a short-lived client with
    /// `properties` (bootstrap servers, TLS, SASL). Listing all topics never creates one,
    /// whatever the broker's auto-creation setting.
    /// - Throws: `KafkaError` when the client cannot be made or no broker answers in time.
    public static func topics(properties: [String: String], timeout: Duration, logger: Logger) throws -> [String: Int] {
        var p = properties
        // Quiet: consumer-only properties on this client are expected, not worth a warning.
        p["log_level"] = "3"
        let conf = try KafkaConf.make(p)
        let callbacks = KafkaCallbacks(logger: logger, clientName: p["client.id"] ?? "metadata", onError: nil)
        let rk = try makeKafkaHandle(type: RD_KAFKA_CONSUMER, conf: conf, callbacks: callbacks)
        defer { withExtendedLifetime(callbacks) { rd_kafka_destroy(rk) } }
        var metadata: UnsafePointer<rd_kafka_metadata_t>?
        let err = rd_kafka_metadata(rk, 1, nil, &metadata, Int32(clamping: timeout.wholeMilliseconds))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md = metadata else { throw kafkaError(.admin, err, "metadata") }
        defer { rd_kafka_metadata_destroy(md) }
        var out: [String: Int] = [:]
        for i in 0..<Int(md.pointee.topic_cnt) {
            let t = md.pointee.topics[i]
            guard let name = t.topic, t.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            out[String(cString: name)] = Int(t.partition_cnt)
        }
        return out
    }
}

extension Duration {
    /// Whole milliseconds (sub-millisecond parts truncated).
    fileprivate var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
