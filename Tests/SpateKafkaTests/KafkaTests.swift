import Foundation
import Logging
import SpateCodec
import SpateKafka
import SpateModel
import SpateTestSupport
import Synchronization
import Testing

@Suite("librdkafka binding")
struct KafkaLibraryTests {
    @Test("the loaded librdkafka is at least 2.2")
    func version() throws {
        try KafkaLibrary.checkVersion()
        #expect(KafkaLibrary.version >= KafkaLibrary.minimumVersion)
    }

    @Test("a rejected property names the key")
    func badProperty() {
        let error = #expect(throws: KafkaError.self) {
            _ = try KafkaProducer(properties: ["bootstrap.servers": "127.0.0.1:1", "no.such.property": "1"], logger: Logger(label: "t")) { _ in }
        }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("no.such.property") == true)
    }

    @Test("a consumer without group.id is refused")
    func noGroup() {
        let error = #expect(throws: KafkaError.self) {
            _ = try KafkaConsumer(properties: ["bootstrap.servers": "127.0.0.1:1"], logger: Logger(label: "t"))
        }
        #expect(error?.message.contains("group.id") == true)
    }

    @Test("a waker ends a waiting poll long before its timeout, and is harmless once the consumer is gone")
    func wakeEndsPoll() throws {
        let waker: KafkaPollWaker
        do {
            let consumer = try KafkaConsumer(properties: ["bootstrap.servers": "127.0.0.1:1", "group.id": uniqueName("wake")], logger: Logger(label: "t"))
            waker = consumer.waker
            // Woken before it waits: the next poll returns at once (the wake is not lost).
            waker.wake()
            #expect(try consumer.poll(timeoutMs: 600_000) { _ in } == 0)
            // Woken while it waits: a ten-minute poll returns once another thread wakes it.
            let returned = DispatchSemaphore(value: 0)
            nonisolated(unsafe) let polled = consumer
            let thread = Thread {
                _ = try? polled.poll(timeoutMs: 600_000) { _ in }
                returned.signal()
            }
            thread.start()
            var woken = false
            for _ in 0..<600 where !woken {
                waker.wake()
                woken = returned.wait(timeout: .now() + .milliseconds(100)) == .success
            }
            #expect(woken)
            try consumer.close()
        }
        waker.wake()
    }
}

/// Collects delivery reports on the producer's report thread.
final class DeliveryLog: Sendable {
    let reports = Mutex<[KafkaDeliveryReport]>([])
    func add(_ r: KafkaDeliveryReport) { reports.withLock { $0.append(r) } }
}

@Suite("Kafka against Tansu", .serialized, .timeLimit(.minutes(3)))
struct KafkaTansuTests {
    static let groupTimeouts = [
        "session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "max.poll.interval.ms": "60000",
        "topic.metadata.refresh.interval.ms": "2000",
    ]

    @Test("1,000+ records round-trip: Swift → protobuf-c → Tansu → group consumer → Swift")
    func roundTrip() throws {
        let services = try TestServices.shared()
        let topic = uniqueName("roundtrip")
        try services.createTopic(topic, partitions: 3)
        defer { services.deleteTopic(topic) }

        let log = DeliveryLog()
        let producer = try KafkaProducer(
            properties: ["bootstrap.servers": services.kafkaBootstrap, "enable.idempotence": "true", "linger.ms": "5"],
            logger: Logger(label: "test.producer"), onDelivery: log.add)
        let encoder = RecordBatchEncoder()
        var sent: [RecordBatch] = []
        for probe in UInt32(1)...4 {
            for seq in UInt64(0)..<3 {
                let batch = RecordBatch(
                    probeID: probe, sequence: seq, createdMs: 1_700_000_000_000 + seq,
                    records: SampleRecords.make(count: 100, seed: UInt64(probe) * 100 + seq, probeID: probe))
                sent.append(batch)
                let bytes = encoder.encode(batch)
                try bytes.withUnsafeBytes { raw in
                    try producer.send(
                        topic: topic, key: Array("probe-\(probe)".utf8), value: raw,
                        headers: [("spate-test", Array("yes".utf8))], token: UInt64(sent.count - 1))
                }
            }
        }
        try producer.flush(timeout: .seconds(30))
        producer.close(timeout: .seconds(5))
        let reports = log.reports.withLock { $0 }
        #expect(reports.count == sent.count)
        #expect(reports.allSatisfy { $0.error == nil && $0.offset >= 0 })
        #expect(Set(reports.map(\.token)) == Set(0..<UInt64(sent.count)))
        #expect(sent.reduce(0) { $0 + $1.records.count } >= 1000)

        let consumer = try KafkaConsumer(
            properties: Self.groupTimeouts.merging([
                "bootstrap.servers": services.kafkaBootstrap, "group.id": uniqueName("g"),
                "auto.offset.reset": "earliest",
            ]) { $1 },
            logger: Logger(label: "test.consumer"))
        try consumer.subscribe([topic])
        let decoder = RecordBatchDecoder()
        var received: [RecordBatch] = []
        var keysOK = true
        let deadline = ContinuousClock.now + .seconds(60)
        while received.count < sent.count && ContinuousClock.now < deadline {
            try consumer.poll(timeoutMs: 200) { message in
                let batch = try decoder.decode(Array(message.value))
                keysOK = keysOK && message.key.map { Array($0) } == Array("probe-\(batch.probeID)".utf8)
                received.append(batch)
            }
        }
        try consumer.close()
        #expect(keysOK)
        // Per-probe order is kept (one key → one partition); compare as sets of whole batches.
        #expect(received.count == sent.count)
        #expect(Set(received) == Set(sent))
        for probe in UInt32(1)...4 {
            #expect(received.filter { $0.probeID == probe }.map(\.sequence) == [0, 1, 2])
        }
    }

    /// A member polling on its own thread until told to stop, reporting its assignment.
    final class Member: KafkaRebalanceListener, @unchecked Sendable {
        let owned = Mutex<Set<Int32>>([])
        let stop = Atomic<Bool>(false)
        let done = DispatchSemaphore(value: 0)

        init(bootstrap: String, group: String, topic: String) {
            let thread = Thread { [self] in
                do {
                    let consumer = try KafkaConsumer(
                        properties: KafkaTansuTests.groupTimeouts.merging([
                            "bootstrap.servers": bootstrap, "group.id": group,
                            "partition.assignment.strategy": "cooperative-sticky",
                        ]) { $1 },
                        logger: Logger(label: "member"))
                    consumer.rebalanceListener = self
                    try consumer.subscribe([topic])
                    while !stop.load(ordering: .acquiring) {
                        try consumer.poll(timeoutMs: 100) { _ in }
                    }
                    try consumer.close()
                } catch {
                    Issue.record("member failed: \(error)")
                }
                done.signal()
            }
            thread.start()
        }

        func consumer(_ consumer: KafkaConsumer, assigned partitions: [KafkaTopicPartition]) -> [KafkaTopicPartition: Int64] {
            owned.withLock { $0.formUnion(partitions.map(\.partition)) }
            return [:]
        }

        func consumer(_ consumer: KafkaConsumer, revoked partitions: [KafkaTopicPartition], lost: Bool) {
            owned.withLock { $0.subtract(partitions.map(\.partition)) }
        }

        func leave() {
            stop.store(true, ordering: .releasing)
            done.wait()
        }
    }

    private func waitUntil(_ seconds: Int, _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return condition()
    }

    @Test("two members split a 6-partition topic disjointly; the survivor then owns all")
    func groupSplit() throws {
        let services = try TestServices.shared()
        let topic = uniqueName("split")
        try services.createTopic(topic, partitions: 6)
        defer { services.deleteTopic(topic) }
        let group = uniqueName("group")
        let all = Set(Int32(0)..<6)

        let a = Member(bootstrap: services.kafkaBootstrap, group: group, topic: topic)
        #expect(waitUntil(40) { a.owned.withLock { $0 } == all }, "first member never owned all partitions")
        let b = Member(bootstrap: services.kafkaBootstrap, group: group, topic: topic)
        let split = waitUntil(60) {
            let (pa, pb) = (a.owned.withLock { $0 }, b.owned.withLock { $0 })
            return !pa.isEmpty && !pb.isEmpty && pa.isDisjoint(with: pb) && pa.union(pb) == all
        }
        let (pa, pb) = (a.owned.withLock { $0 }, b.owned.withLock { $0 })
        #expect(split, "after the second joined: A=\(pa.sorted()) B=\(pb.sorted())")
        b.leave()
        #expect(b.owned.withLock { $0 }.isEmpty, "a member that left still owns partitions")
        #expect(waitUntil(60) { a.owned.withLock { $0 } == all }, "survivor owns \(a.owned.withLock { $0 }.sorted())")
        a.leave()
    }
}
