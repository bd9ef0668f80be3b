import Logging
import SpateKafka
import Synchronization

/// Publishes input Spate could not use to the dead-letter topic, with the reason and the
/// source coordinates in headers (`spate-reason`, `spate-source-topic`,
/// `spate-source-partition`, `spate-source-offset`, `spate-node`) and the key
/// `<topic>/<partition>/<offset>` so consumers can de-duplicate after a replay.
///
/// Per source partition it counts messages sent and settled (acknowledged or finally failed);
/// a checkpoint waits until every dead letter below it is settled.
final class DeadLetterQueue: Sendable {
    private let producer: KafkaProducer
    let topic: String
    private let node: String
    private let counters: NodeCounters
    private let logger: Logger
    private let box = StateBox()

    private final class StateBox: Sendable {
        let state = Mutex<State>(State())
    }

    private struct State {
        var sent: [Int32: UInt64] = [:]
        var settled: [Int32: UInt64] = [:]
        var tokens: [UInt64: Int32] = [:]
        var nextToken: UInt64 = 0
    }

    init(configuration: NodeConfiguration, counters: NodeCounters, logger: Logger) throws {
        topic = configuration.kafka.deadLetterTopic
        node = configuration.node.id
        self.counters = counters
        self.logger = logger
        var props = configuration.kafka.properties
        props["bootstrap.servers"] = configuration.kafka.bootstrap
        props["client.id"] = "spate-node/\(configuration.node.id)/dlq"
        props["enable.idempotence"] = "true"
        props["linger.ms"] = props["linger.ms"] ?? "20"
        // Consumer-only properties in the shared map would make the producer refuse to start.
        for k in props.keys where Self.consumerOnly.contains(k) { props.removeValue(forKey: k) }
        let box = self.box
        producer = try KafkaProducer(properties: props, logger: logger) { [counters, logger] report in
            let partition = box.state.withLock { s -> Int32? in
                guard let p = s.tokens.removeValue(forKey: report.token) else { return nil }
                s.settled[p, default: 0] += 1
                return p
            }
            if let error = report.error {
                counters.deadLetterFailures.add(1, ordering: .relaxed)
                logger.error("dead letter from partition \(partition ?? -1) was not delivered: \(error)")
            } else {
                counters.deadLetters.add(1, ordering: .relaxed)
            }
        }
    }

    static let consumerOnly: Set<String> = [
        "group.id", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "auto.offset.reset",
        "enable.auto.commit", "partition.assignment.strategy", "queued.max.messages.kbytes", "fetch.max.bytes",
        "fetch.wait.max.ms", "enable.partition.eof", "group.instance.id", "fetch.min.bytes", "enable.auto.offset.store",
    ]

    /// Sends one dead letter for the message at (`partition`, `offset`).
    func publish(value: UnsafeRawBufferPointer, sourceTopic: String, partition: Int32, offset: Int64, reason: String) {
        let token = box.state.withLock { s -> UInt64 in
            let t = s.nextToken
            s.nextToken += 1
            s.tokens[t] = partition
            s.sent[partition, default: 0] += 1
            return t
        }
        let headers: [(String, [UInt8])] = [
            ("spate-reason", Array(reason.utf8)), ("spate-source-topic", Array(sourceTopic.utf8)),
            ("spate-source-partition", Array(String(partition).utf8)), ("spate-source-offset", Array(String(offset).utf8)),
            ("spate-node", Array(node.utf8)),
        ]
        let key = Array("\(sourceTopic)/\(partition)/\(offset)".utf8)
        while true {
            do {
                try producer.send(topic: topic, key: key, value: value, headers: headers, token: token)
                return
            } catch let e as KafkaError where e.isRetriable {
                // Local queue full: the broker is slow; wait for deliveries.
                usleep(2000)
            } catch {
                logger.error("dead letter for \(sourceTopic)[\(partition)]@\(offset) could not be queued: \(error)")
                box.state.withLock { s in
                    s.tokens.removeValue(forKey: token)
                    s.settled[partition, default: 0] += 1
                }
                counters.deadLetterFailures.add(1, ordering: .relaxed)
                return
            }
        }
    }

    /// Dead letters sent so far for `partition`.
    func sentCount(partition: Int32) -> UInt64 { box.state.withLock { $0.sent[partition] ?? 0 } }

    /// Waits until at least `count` dead letters of `partition` are settled.
    func waitSettled(partition: Int32, count: UInt64) async {
        while box.state.withLock({ ($0.settled[partition] ?? 0) < count }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    func close(timeout: Duration) { producer.close(timeout: timeout) }
}

#if canImport(Glibc)
import Glibc
#endif
