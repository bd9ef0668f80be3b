import ArgumentParser
import Foundation
import SpateCodec
import SpateIngest
import SpateModel
import SpateProbe
import SpateSchema

/// What an open-bucket snapshot costs (issue 13): the default views fed with probe messages at
/// the sizing target's event density, then every partition's open state saved and restored as
/// a flush and a new owner would. Compared with the documents the same run's flushes write.
struct SnapshotBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot", abstract: "Bytes and CPU of open-bucket snapshots (save and restore) at the default views.")

    @Option(help: "Records folded before the snapshot (at 100,000 records/s of event time, 6M is one minute).") var records = 6_000_000
    @Option(help: "Records per message.") var batch = 200
    @Option(help: "Probes (one partition each).") var probes = 12
    @Option(help: "Distinct subscribers.") var subscribers = 1_000_000
    @Option(help: "Event-time density, records per second of event time (100000 = 6M/min).") var eventRate = 100_000.0

    func run() throws {
        print("encoding \(records) records (\(probes) probes, \(subscribers) subscribers, \(Int(eventRate)) records/s of event time)…")
        let messages = ProbeBenchmarks.encodedMessages(
            records: records, batch: batch, probes: probes, subscribers: subscribers, eventRate: eventRate)
        let input = messages.reduce(0) { $0 + $1.bytes.count }
        let views = ViewDefinition.defaults
        var rollups: [UInt32: PartitionRollup] = [:]
        var offsets: [UInt32: Int64] = [:]
        var nextFlush = [UInt64](repeating: 0, count: views.count)
        var documentBytes = 0
        let decoder = RecordBatchDecoder()
        for m in messages {
            let rollup = rollups[m.probe] ?? PartitionRollup(partition: Int32(m.probe), views: views, latenessMs: 120_000, resume: .beginning())
            rollups[m.probe] = rollup
            let offset = offsets[m.probe, default: 0]
            offsets[m.probe] = offset + 1
            _ = try m.bytes.withUnsafeBytes { raw in
                try decoder.withBatch(raw, limits: .default, messageTimestampMs: Int64(m.lastEventMs)) { try rollup.fold(offset: offset, batch: $0) }
            }
            var due = Set<Int>()
            for (v, view) in views.enumerated() where m.lastEventMs >= nextFlush[v] {
                due.insert(v)
                nextFlush[v] = m.lastEventMs + view.flushIntervalMs
            }
            if !due.isEmpty {
                for r in rollups.values {
                    var sink = BulkDocumentSink(naming: IndexNaming(prefix: "bench"), topic: "bench")
                    _ = r.flush(due: { due.contains($0) }, into: &sink)
                    documentBytes += sink.body.bytes.count
                }
            }
        }
        let eventSeconds = Double(records) / eventRate
        var snapshotBytes = 0
        var cells = 0
        var saveCPU = 0.0
        var restoreCPU = 0.0
        var largest = 0
        for (p, r) in rollups.sorted(by: { $0.key < $1.key }) {
            var sink = BulkDocumentSink(naming: IndexNaming(prefix: "bench"), topic: "bench")
            var resume = r.flush(due: { _ in false }, into: &sink)
            var bytes: [UInt8] = []
            saveCPU += cpuSeconds { bytes = r.snapshot() }
            resume.snapshot = SnapshotReference(
                offset: r.nextOffset, maxEventTs: r.maxEventTs, slot: 0, chunks: 1, bytes: bytes.count,
                hash: bytes.withUnsafeBytes { StableHash.hash($0) })
            var restored: PartitionRollup?
            restoreCPU += try cpuSeconds {
                restored = try PartitionRollup.restoring(partition: Int32(p), views: views, latenessMs: 120_000, snapshot: bytes, resume: resume)
            }
            precondition(restored?.openCells == r.openCells)
            snapshotBytes += bytes.count
            largest = max(largest, bytes.count)
            cells += r.openCells
        }
        let mb = { (b: Int) in Double(b) / 1_000_000 }
        print(String(format: "event time folded: %.0f s; input %.1f MB; documents written by the flushes %.1f MB (%.2f MB per s of event time)",
            eventSeconds, mb(input), mb(documentBytes), mb(documentBytes) / eventSeconds))
        print(String(format: "open state: %d cells in %d partitions; snapshot %.1f MB in all (largest partition %.1f MB), %.1f bytes per cell",
            cells, rollups.count, mb(snapshotBytes), mb(largest), Double(snapshotBytes) / Double(max(1, cells))))
        print(String(format: "save %.0f ms CPU, restore %.0f ms CPU (all partitions, one core)", saveCPU * 1000, restoreCPU * 1000))
        print(String(format: "at ingest.snapshot_interval 10 s: %.2f MB/s of snapshots (base64 in the store: %.2f MB/s)",
            mb(snapshotBytes) / 10, mb(snapshotBytes) / 10 * 4 / 3))
        print("peak RSS \(peakRSSMegabytes()) MB")
    }
}
