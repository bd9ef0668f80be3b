import ArgumentParser
import Foundation
import Logging
import SpateCodec
import SpateKafka
import Synchronization
import SpateModel

/// The decode-only ceiling of ingest: the same Kafka consumers and protobuf-c decoding as
/// spate-node, without rollups, flushes or commits.
struct Drain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain", abstract: "Consume and decode a topic with N group members; print records/s (decode-only ceiling).")

    @Option(help: "Kafka bootstrap servers.") var bootstrap: String
    @Option(help: "Topic to drain.") var topic: String
    @Option(help: "Consumer threads (group members), as spate-node's workers.") var workers = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Stop after this many records.") var records: UInt64

    func validate() throws {
        try check(workers, "--workers", 1...256)
        guard records >= 1 else { throw ValidationError("--records must be at least 1") }
    }

    func run() throws {
        let group = "spate-bench-drain-\(UInt32.random(in: 0...UInt32.max))"
        let total = Atomic<UInt64>(0)
        let firstAt = Mutex<ContinuousClock.Instant?>(nil)
        // When each consumer got its first records, and the total consumed then: the group's
        // members get their partitions at different times (Tansu answers a follower's SyncGroup
        // up to a second after the leader's), so the rate from the last one's start is printed too.
        let starts = Mutex<[(at: ContinuousClock.Instant, total: UInt64)]>([])
        // Messages and partition runs (consecutive messages of one partition) per worker: how a
        // fetch hands a consumer its messages, which `spate-bench fold --run` models.
        let runs = Mutex<(messages: Int, runs: Int)>((0, 0))
        let done = DispatchSemaphore(value: 0)
        let target = records
        let (bootstrap, topic) = (bootstrap, topic)
        for w in 0..<workers {
            let thread = Thread {
                defer { done.signal() }
                do {
                    let consumer = try KafkaConsumer(
                        properties: [
                            "bootstrap.servers": bootstrap, "group.id": group, "client.id": "drain-\(w)",
                            "auto.offset.reset": "earliest", "partition.assignment.strategy": "cooperative-sticky",
                            "session.timeout.ms": "6000", "heartbeat.interval.ms": "1000", "queued.max.messages.kbytes": "32768",
                            "fetch.queue.backoff.ms": String(KafkaConsumer.fetchQueueBackoffMs),
                        ],
                        logger: Logger(label: "drain"), maxBatch: 2000)
                    try consumer.subscribe([topic])
                    let decoder = RecordBatchDecoder()
                    var sum: UInt64 = 0
                    var (messages, partitionRuns, last): (Int, Int, Int32) = (0, 0, -1)
                    var started = false
                    defer { runs.withLock { $0 = ($0.messages + messages, $0.runs + partitionRuns) } }
                    while total.load(ordering: .relaxed) < target {
                        try consumer.poll(timeoutMs: 100) { m in
                            messages += 1
                            if m.partition != last { partitionRuns += 1 }
                            last = m.partition
                            try decoder.withBatch(m.value) { batch in
                                for i in 0..<batch.count {
                                    let r = batch[i]
                                    sum &+= r.bytesDown &+ UInt64(r.application.utf8.count) &+ UInt64(r.subscriberID.utf8.count)
                                }
                                firstAt.withLock { if $0 == nil { $0 = .now } }
                                if !started {
                                    started = true
                                    starts.withLock { $0.append((.now, total.load(ordering: .relaxed))) }
                                }
                                total.add(UInt64(batch.count), ordering: .relaxed)
                            }
                        }
                    }
                    try consumer.close()
                    if sum == 42 { print("") }
                } catch {
                    FileHandle.standardError.write(Data("drain worker \(w): \(error)\n".utf8))
                }
            }
            thread.start()
        }
        for _ in 0..<workers { done.wait() }
        let end = ContinuousClock.now
        guard let start = firstAt.withLock({ $0 }) else { throw ValidationError("no records consumed") }
        let seconds = (end - start).inSeconds
        let n = total.load(ordering: .relaxed)
        print(String(format: "drain: %.0f records/s (%llu records in %.2f s, %d workers, from the first record)", Double(n) / seconds, n, seconds, workers))
        let started = starts.withLock { $0 }
        if started.count == workers, let last = started.max(by: { $0.at < $1.at }) {
            let seconds = (end - last.at).inSeconds
            print(String(format: "drain-all: %.0f records/s (%llu records in %.2f s, from the last consumer's first record)", Double(n - last.total) / seconds, n - last.total, seconds))
        }
        let (messages, partitionRuns) = runs.withLock { $0 }
        print(String(format: "drain: %d messages in %d partition runs (%.1f messages of one partition in a row)", messages, partitionRuns, Double(messages) / Double(max(1, partitionRuns))))
    }
}
