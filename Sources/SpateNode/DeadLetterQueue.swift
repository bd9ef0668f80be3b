import Foundation
import Logging
import SpateKafka
import Synchronization

/// Publishes input Spate could not use to the dead-letter topic, with the reason and the
/// source coordinates in headers (`spate-reason`, `spate-source-topic`,
/// `spate-source-partition`, `spate-source-offset`, `spate-node`) and the key
/// `<topic>/<partition>/<offset>` so consumers can de-duplicate after a replay.
///
/// Dead letters are never dropped. A value larger than one Kafka message may hold is sent in
/// pieces, each with `spate-piece-offset` (its first byte within the whole value) and
/// `spate-total-bytes` headers; a piece the broker refuses as too large is split again; any
/// other refusal is retried with backoff for as long as it takes. Per source partition every
/// dead letter gets a sequence number, and a checkpoint waits until every dead letter below
/// its mark is delivered — so a dead letter Kafka will not take holds the checkpoint back,
/// exactly like a document the store will not take.
final class DeadLetterQueue: Sendable {
    private let producer: KafkaProducer
    let topic: String
    private let node: String
    private let counters: NodeCounters
    private let logger: Logger
    private let box = StateBox()
    /// Pieces are at most this large (bytes of value), below the producer's message.max.bytes.
    let pieceBytes: Int
    /// Pieces are never split below this size.
    static let minimumPieceBytes = 4096

    private final class StateBox: Sendable {
        let state = Mutex<State>(State())
        let stopped = Atomic<Bool>(false)
    }

    /// One piece of a dead letter, kept until Kafka acknowledges it.
    struct Piece: Sendable {
        var partition: Int32
        var sequence: UInt64
        var key: [UInt8]
        var headers: [(String, [UInt8])]
        var value: [UInt8]
        var valueOffset: Int
        var totalBytes: Int
        var attempt = 0
    }

    private struct State {
        /// Next sequence number per source partition.
        var next: [Int32: UInt64] = [:]
        /// Pieces not yet delivered, per partition and sequence number.
        var outstanding: [Int32: [UInt64: Int]] = [:]
        var inFlight: [UInt64: Piece] = [:]
        var retries: [(piece: Piece, notBefore: ContinuousClock.Instant)] = []
        var nextToken: UInt64 = 0
        var failingSince: Date?
        var lastError: String?
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
        // Headroom under message.max.bytes (librdkafka's default 1,000,000) for key, headers and
        // record framing.
        let maxMessage = props["message.max.bytes"].flatMap { Int($0) } ?? 1_000_000
        pieceBytes = max(Self.minimumPieceBytes, maxMessage - 16_384)
        let box = self.box
        producer = try KafkaProducer(properties: props, logger: logger) { [counters, logger] report in
            Self.delivered(report, box: box, counters: counters, logger: logger)
        }
        let retryThread = Thread { [self] in retryLoop() }
        retryThread.name = "dead-letter-retry"
        retryThread.start()
    }

    static let consumerOnly: Set<String> = [
        "group.id", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "auto.offset.reset",
        "enable.auto.commit", "partition.assignment.strategy", "queued.max.messages.kbytes", "fetch.max.bytes",
        "fetch.wait.max.ms", "enable.partition.eof", "group.instance.id", "fetch.min.bytes", "enable.auto.offset.store",
        "fetch.queue.backoff.ms", "queued.min.messages",
    ]

    /// Sends one dead letter for the message at (`partition`, `offset`).
    func publish(value: UnsafeRawBufferPointer, sourceTopic: String, partition: Int32, offset: Int64, reason: String) {
        let headers: [(String, [UInt8])] = [
            ("spate-reason", Array(reason.utf8)), ("spate-source-topic", Array(sourceTopic.utf8)),
            ("spate-source-partition", Array(String(partition).utf8)), ("spate-source-offset", Array(String(offset).utf8)),
            ("spate-node", Array(node.utf8)),
        ]
        let key = Array("\(sourceTopic)/\(partition)/\(offset)".utf8)
        let bytes = Array(value)
        var pieces: [Piece] = []
        var start = 0
        repeat {
            let end = min(bytes.count, start + pieceBytes)
            pieces.append(
                Piece(
                    partition: partition, sequence: 0, key: key, headers: headers, value: Array(bytes[start..<end]),
                    valueOffset: start, totalBytes: bytes.count))
            start = end
        } while start < bytes.count
        box.state.withLock { s in
            let sequence = s.next[partition, default: 0]
            s.next[partition] = sequence + 1
            s.outstanding[partition, default: [:]][sequence] = pieces.count
            for i in pieces.indices { pieces[i].sequence = sequence }
        }
        counters.pendingBytes.add(bytes.count, ordering: .relaxed)
        for p in pieces { send(p) }
    }

    /// Hands one piece to librdkafka; a refusal schedules a retry (never a drop).
    private func send(_ piece: Piece) {
        var headers = piece.headers
        if piece.value.count < piece.totalBytes {  // a piece of a larger value
            headers.append(("spate-piece-offset", Array(String(piece.valueOffset).utf8)))
            headers.append(("spate-total-bytes", Array(String(piece.totalBytes).utf8)))
        }
        let token = box.state.withLock { s -> UInt64 in
            let t = s.nextToken
            s.nextToken += 1
            s.inFlight[t] = piece
            return t
        }
        while !box.stopped.load(ordering: .acquiring) {
            do {
                try piece.value.withUnsafeBytes { raw in
                    try producer.send(topic: topic, key: piece.key, value: raw, headers: headers, token: token)
                }
                return
            } catch let e as KafkaError where e.code == .queueFull {
                // Local queue full: the broker is slow; wait for deliveries.
                usleep(2000)
            } catch {
                box.state.withLock { _ = $0.inFlight.removeValue(forKey: token) }
                Self.failed(piece, error: error, box: box, counters: counters, logger: logger)
                return
            }
        }
    }

    private static func delivered(_ report: KafkaDeliveryReport, box: StateBox, counters: NodeCounters, logger: Logger) {
        guard let piece = box.state.withLock({ $0.inFlight.removeValue(forKey: report.token) }) else { return }
        if let error = report.error {
            failed(piece, error: error, box: box, counters: counters, logger: logger)
            return
        }
        counters.deadLetters.add(1, ordering: .relaxed)
        counters.pendingBytes.subtract(piece.value.count, ordering: .relaxed)
        box.state.withLock { s in
            s.failingSince = nil
            s.lastError = nil
            guard let left = s.outstanding[piece.partition]?[piece.sequence] else { return }
            if left <= 1 {
                s.outstanding[piece.partition]?.removeValue(forKey: piece.sequence)
            } else {
                s.outstanding[piece.partition]?[piece.sequence] = left - 1
            }
        }
    }

    /// A piece Kafka refused: split when too large, then retry after a backoff.
    private static func failed(_ piece: Piece, error: any Error, box: StateBox, counters: NodeCounters, logger: Logger) {
        counters.deadLetterFailures.add(1, ordering: .relaxed)
        var again: [Piece] = []
        if (error as? KafkaError)?.isMessageTooLarge == true && piece.value.count >= 2 * minimumPieceBytes {
            let half = piece.value.count / 2
            var a = piece
            a.value = Array(piece.value[..<half])
            var b = piece
            b.value = Array(piece.value[half...])
            b.valueOffset = piece.valueOffset + half
            again = [a, b]
        } else {
            var p = piece
            p.attempt += 1
            again = [p]
        }
        let first = box.state.withLock { s -> Bool in
            if again.count == 2 { s.outstanding[piece.partition]?[piece.sequence, default: 1] += 1 }
            let now = ContinuousClock.now
            for p in again { s.retries.append((p, now + backoff(attempt: p.attempt))) }
            let first = s.failingSince == nil
            if first { s.failingSince = Date() }
            s.lastError = "\(error)"
            return first
        }
        let message = "dead letter from partition \(piece.partition) (\(piece.value.count) bytes) not accepted by Kafka: \(error); retrying"
        if first { logger.error("\(message)") } else { logger.debug("\(message)") }
    }

    private static func backoff(attempt: Int) -> Duration {
        .milliseconds(Int64(min(10_000, 100 << min(attempt, 7))))
    }

    private func retryLoop() {
        while !box.stopped.load(ordering: .acquiring) {
            let now = ContinuousClock.now
            let due = box.state.withLock { s -> [Piece] in
                var due: [Piece] = []
                s.retries.removeAll { entry in
                    guard entry.notBefore <= now else { return false }
                    due.append(entry.piece)
                    return true
                }
                return due
            }
            for p in due {
                counters.deadLetterRetries.add(1, ordering: .relaxed)
                send(p)
            }
            usleep(50_000)
        }
    }

    /// Publishes an idle marker into (`topic`, `partition`) of the source topic: an empty value
    /// with the `spate-idle-marker` header holding the event time it stands for (decimal ms).
    /// Best effort: a lost marker is sent again at the next idle check.
    func publishIdleMarker(topic source: String, partition: Int32, eventTimeMs: UInt64) {
        let token = box.state.withLock { s -> UInt64 in
            let t = s.nextToken
            s.nextToken += 1
            return t  // not in inFlight: the delivery report is ignored
        }
        let empty: [UInt8] = []
        empty.withUnsafeBytes { raw in
            try? producer.send(
                topic: source, partition: partition, key: nil, value: raw, headers: [("spate-idle-marker", Array(String(eventTimeMs).utf8)), ("spate-node", Array(node.utf8))], token: token)
        }
    }

    /// The mark a checkpoint waits for: every dead letter of `partition` published so far.
    func sentCount(partition: Int32) -> UInt64 { box.state.withLock { $0.next[partition] ?? 0 } }

    /// Waits until every dead letter of `partition` below `mark` is delivered; false when
    /// `stop` says to give up first (shutdown), or the queue was closed.
    func waitSettled(partition: Int32, count mark: UInt64, stop: @Sendable () -> Bool = { false }) async -> Bool {
        while box.state.withLock({ ($0.outstanding[partition]?.keys.min() ?? .max) < mark }) {
            if stop() || box.stopped.load(ordering: .acquiring) { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }

    /// A warning while some dead letter has been refused for over 10 s.
    var stuckWarning: String? {
        box.state.withLock { s in
            guard let since = s.failingSince, Date().timeIntervalSince(since) > 10 else { return nil }
            return "dead letters to \(topic) refused by Kafka since \(since): \(s.lastError ?? "unknown error"); checkpoints wait for them"
        }
    }

    func close(timeout: Duration) {
        box.stopped.store(true, ordering: .releasing)
        producer.close(timeout: timeout)
    }
}

#if canImport(Glibc)
import Glibc
#endif
