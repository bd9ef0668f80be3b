import Foundation
import Logging
import SpateKafka

/// Reads `expected` messages of a topic with a fresh group and returns every message's bytes,
/// in offset order per partition. Idle markers (empty values a node writes into a quiet
/// partition, docs/DESIGN.md "Quiet partitions") are not the producer's and are skipped. (Tansu 0.6's ListOffsets answers the last batch's base offset
/// instead of the high watermark, so the expected count comes from the producer's manifest.)
public func readTopic(bootstrap: String, topic: String, expected: UInt64, timeout: Duration = .seconds(120)) throws -> [Int32: [[UInt8]]] {
    let consumer = try KafkaConsumer(
        properties: [
            "bootstrap.servers": bootstrap, "group.id": uniqueName("reader"), "auto.offset.reset": "earliest",
            "session.timeout.ms": "6000", "heartbeat.interval.ms": "500",
        ],
        logger: Logger(label: "test.reader"), maxBatch: 5000)
    try consumer.subscribe([topic])
    let total = Int64(expected)
    var out: [Int32: [[UInt8]]] = [:]
    var count: Int64 = 0
    let deadline = ContinuousClock.now + timeout
    // Read until the expected count, then a little longer to catch any extra message.
    var quietSince = ContinuousClock.now
    while ContinuousClock.now < deadline && (count < total || ContinuousClock.now - quietSince < .seconds(1)) {
        try consumer.poll(timeoutMs: 200) { m in
            if m.value.isEmpty && m.header("spate-idle-marker") != nil { return }
            out[m.partition, default: []].append(Array(m.value))
            count += 1
            quietSince = .now
        }
    }
    try consumer.close()
    guard count == total else { throw TestSupportError("read \(count) of \(total) messages of \(topic)") }
    return out
}

