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

    @OptionGroup var workload: FoldWorkload

    func run() throws {
        let messages = workload.messages()
        let input = messages.reduce(0) { $0 + $1.bytes.count }
        var driver = FoldDriver()
        var documentBytes = 0
        try driver.run(messages, folded: { _, _, _ in }, flushed: { _, sink, _ in documentBytes += sink.body.bytes.count })
        let views = driver.views
        let rollups = driver.rollups
        let eventSeconds = Double(workload.records) / workload.eventRate
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
                hash: SnapshotReference.hash(of: bytes))
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
