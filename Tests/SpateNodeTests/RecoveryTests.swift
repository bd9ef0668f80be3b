import Foundation
import Logging
import SpateKafka
import SpateProbe
import SpateTestSupport
import Testing

/// Resume from the horizon: a partition's new owner restores its open buckets from the
/// snapshot its checkpoint names and re-reads only what came after it — not the hour the
/// `app_1h` bucket has been open — and the group's committed offsets are the real position.
@Suite("spate-node recovery from snapshots", .serialized, .timeLimit(.minutes(10)))
struct RecoveryTests {
    /// The hour view and the top-K view stay open for the whole run: event time runs from 5 to
    /// 35 minutes past an hour two hours ago (40× wall time).
    static func probeArguments(count: Int) -> [String] {
        let hour: UInt64 = 3_600_000
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let start = now / hour * hour - 2 * hour + 5 * 60_000
        return [
            "--probes", "12", "--subscribers", "600", "--start", String(start), "--speedup", "40", "--seed", "21", "--count", String(count),
            "--rate", "4000", "--batch", "100",
        ]
    }

    /// The topic's per-partition high watermarks.
    final class Watermarks {
        let consumer: KafkaConsumer
        let topic: String
        let partitions: Int
        init(bed: NodeTestBed, group: String) throws {
            consumer = try KafkaConsumer(
                properties: ["bootstrap.servers": bed.services.kafkaBootstrap, "group.id": group], logger: Logger(label: "test"))
            topic = bed.topic
            partitions = bed.partitions
        }
        func high() throws -> [Int32: Int64] {
            var out: [Int32: Int64] = [:]
            for p in 0..<Int32(partitions) { out[p] = try consumer.queryWatermarks(KafkaTopicPartition(topic: topic, partition: p)).high }
            return out
        }
        func committed() throws -> [Int32: Int64] {
            let tps = (0..<Int32(partitions)).map { KafkaTopicPartition(topic: topic, partition: $0) }
            return Dictionary(uniqueKeysWithValues: try consumer.committed(tps).map { ($0.key.partition, $0.value) })
        }
    }

    /// "partition P: restored … resuming at offset X" lines of a log after `from` characters.
    static func restores(_ log: String, after from: Int) -> [Int32: Int64] {
        var out: [Int32: Int64] = [:]
        for line in log.dropFirst(from).split(separator: "\n") where line.contains("from the snapshot at offset") {
            guard let p = line.range(of: "partition "), let r = line.range(of: "resuming at offset ") else { continue }
            let partition = Int32(line[p.upperBound...].prefix { $0.isNumber })
            let offset = Int64(line[r.upperBound...].prefix { $0.isNumber })
            if let partition, let offset { out[partition] = offset }
        }
        return out
    }

    @Test("SIGKILL of one of 2 nodes with the hour bucket open: the new owner re-reads only the last seconds, totals exact, commits at the end")
    func killResumesFromSnapshot() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "recovery") { bed in
            try await Self.killResumesFromSnapshot(bed)
        }
    }

    static func killResumesFromSnapshot(_ bed: NodeTestBed) async throws {
        bed.views = """
              - {name: app_1m, bucket: 1m, dimensions: [application, probe], sketches: [subscribers, rtt], hll_precision: 14, flush_interval: 4s}
              - {name: app_1h, bucket: 1h, dimensions: [application, application_category, l4_protocol, probe], sketches: [subscribers, rtt], hll_precision: 16, flush_interval: 4s}
              - {name: subscriber_5m, bucket: 5m, dimensions: [subscriber, application], flush_interval: 4s, top_k: 1000}
            """
        let ingest = ["snapshot_interval": "1s"]
        try bed.startNode("a", ingest: ingest, workers: 1)
        let victim = try bed.startNode("b", ingest: ingest, workers: 1)
        let marks = try Watermarks(bed: bed, group: bed.group)
        try await Task.sleep(for: .seconds(8))  // both members own partitions
        let (probe, manifestPath) = try bed.startProbe(Self.probeArguments(count: 120_000))
        try await Task.sleep(for: .seconds(18))
        // The checkpoints just before the kill: lower bounds of the victim's last ones (it may
        // write more before it dies). Read before, not after: the broker may hand the victim's
        // partitions over as soon as its connection drops, and the new owner's own checkpoints
        // would then be read here instead. On a loaded machine a partition's first snapshot can
        // come later than these 18 s; the kill then waits until every partition with records
        // has a checkpoint naming one (a checkpoint keeps its snapshot reference once it has
        // one, so they stay lower bounds).
        var atKill = try await Self.checkpoints(bed)
        let ready = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < ready {
            let withRecords = try marks.high().filter { $0.value > 0 }.keys
            if withRecords.allSatisfy({ atKill[$0]?.snapshot != nil }) { break }
            try await Task.sleep(for: .milliseconds(500))
            atKill = try await Self.checkpoints(bed)
        }
        let logBefore = (try? String(contentsOfFile: "\(bed.directory)/a.log", encoding: .utf8))?.count ?? 0
        victim.signal(SIGKILL)
        #expect(victim.wait(timeout: .seconds(10)) == 128 + SIGKILL)
        #expect(probe.wait(timeout: .seconds(300)) == 0)
        let manifest = try Manifest.load(path: manifestPath)
        let problems = try await bed.waitForExactTotals(manifest, timeout: .seconds(240))
        #expect(problems.isEmpty, "\(problems)\n\(bed.nodeLogs())")

        let log = (try? String(contentsOfFile: "\(bed.directory)/a.log", encoding: .utf8)) ?? ""
        let restored = Self.restores(log, after: logBefore)
        #expect(!restored.isEmpty, "node a restored no partition from a snapshot\n\(bed.nodeLogs(tail: 80))")
        #expect(!log.dropFirst(logBefore).contains("snapshot is unusable"), "\(bed.nodeLogs(tail: 80))")
        for (p, offset) in restored {
            guard let c = atKill[p] else {
                Issue.record("partition \(p) restored at \(offset) but had no checkpoint at the kill")
                continue
            }
            // Re-read: only what came after the snapshot the victim's last checkpoint names — not
            // the hour bucket from its first record. That snapshot may lie a little before the
            // checkpoint's horizon: a flush (a minute bucket closes every 1.5 s here) within
            // `snapshot_interval` of the last snapshot moves the horizon without a new one.
            guard let snapshotAt = c.snapshot else {
                Issue.record("partition \(p): the checkpoint at the kill named no snapshot")
                continue
            }
            #expect(offset >= snapshotAt, "partition \(p): resumed at \(offset), before the checkpoint's snapshot at \(snapshotAt)")
            #expect(snapshotAt <= c.horizon)
            #expect(offset > c.replayFrom, "partition \(p): resumed at \(offset), the hour bucket's first record is at \(c.replayFrom)")
        }

        // The committed offsets reach the end of every partition once the probe stopped.
        let end = try marks.high()
        var committed: [Int32: Int64] = [:]
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            committed = try marks.committed()
            if committed.filter({ $0.value > 0 }) == end.filter({ $0.value > 0 }) { break }
            try await Task.sleep(for: .seconds(1))
        }
        #expect(committed.filter { $0.value > 0 } == end.filter { $0.value > 0 }, "committed \(committed.sorted { $0.key < $1.key }), end \(end.sorted { $0.key < $1.key })")
    }

    /// Each partition's stored checkpoint: its horizon, its replay offset and its snapshot's offset.
    static func checkpoints(_ bed: NodeTestBed) async throws -> [Int32: (horizon: Int64, replayFrom: Int64, snapshot: Int64?)] {
        let client = try bed.elastic()
        defer { client.shutdown() }
        var out: [Int32: (horizon: Int64, replayFrom: Int64, snapshot: Int64?)] = [:]
        for p in 0..<Int32(bed.partitions) {
            guard let doc = try await client.getDocument(index: "\(bed.prefix)-checkpoints", id: "\(bed.group)|\(bed.topic)|\(p)"),
                let horizon = doc.source["horizon_offset"]?.int64Value, let from = doc.source["resume_offset"]?.int64Value
            else { continue }
            out[p] = (horizon, from, doc.source["snapshot_offset"]?.int64Value)
        }
        return out
    }
}
