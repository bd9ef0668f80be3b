import ArgumentParser
import Foundation
import SpateCodec
import SpateIngest
import SpateModel
import SpateProbe
import SpateSchema

/// The node's own ingest CPU, without a broker: pre-encoded probe messages, decoded and
/// validated as a worker does, then folded into the default views (one rollup per partition,
/// partitions keyed by probe as Kafka would), flushing every view on its interval of event time
/// into bulk documents. Compared with a decode-only pass over the same bytes in the same run.
struct FoldBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fold", abstract: "CPU per record: decode + validate + fold into the default views vs decode only, one core.")

    @OptionGroup var workload: FoldWorkload
    @Option(help: "Repetitions of each pass; the best is reported.") var repeats = 3
    @Option(help: "Fold only these default views (comma-separated names): the cost of each, by difference.")
    var views: String?

    func validate() throws {
        try check(repeats, "--repeats", 1...100)
        guard let views else { return }
        let names = Set(ViewDefinition.defaults.map(\.name))
        for v in views.split(separator: ",") where !names.contains(String(v)) {
            throw ValidationError("--views: no default view is named \(v) (\(names.sorted().joined(separator: ", ")))")
        }
    }

    var definitions: [ViewDefinition] {
        guard let views else { return ViewDefinition.defaults }
        let chosen = Set(views.split(separator: ",").map(String.init))
        return ViewDefinition.defaults.filter { chosen.contains($0.name) }
    }

    func run() throws {
        let messages = workload.messages()
        let records = workload.records
        var decodeTimes: [Double] = []
        var foldTimes: [Double] = []
        var closeTimes: [Double] = []
        var documents = 0
        var closeDocuments = 0
        var digests: Set<UInt64> = []
        var closeDigests: Set<UInt64> = []
        var state = (open: 0, interners: 0)
        for _ in 0..<repeats {
            decodeTimes.append(try cpuSeconds { try Self.decodeOnly(messages) })
            let (fold, close, held) = try Self.timedFold(messages, views: definitions)
            foldTimes.append(fold.seconds)
            documents = fold.documents
            digests.insert(fold.digest)
            closeTimes.append(close.seconds)
            closeDocuments = close.documents
            closeDigests.insert(close.digest)
            state = held
        }
        let n = Double(records)
        let decodeBest = decodeTimes.min() ?? 0
        let foldBest = foldTimes.min() ?? 0
        let decodeNs = decodeBest / n * 1e9
        let foldNs = foldBest / n * 1e9
        print(String(format: "decode+validate: %.0f ns/record CPU, %.0f records/s", decodeNs, n / decodeBest))
        print(String(format: "decode+validate+fold+flush: %.0f ns/record CPU, %.0f records/s (%d documents)", foldNs, n / foldBest, documents))
        print(String(format: "ratio fold/decode: %.2f; peak RSS %d MB", foldNs / decodeNs, peakRSSMegabytes()))
        let closeNs = (closeTimes.min() ?? 0) / n * 1e9
        print(String(format: "then every bucket closed and written (top-K selection included): %.0f ns/record CPU (%d documents)", closeNs, closeDocuments))
        print(
            "held at the end: open buckets \(state.open / 1_000_000) MB (cells, keys, tables, sketches), interners \(state.interners / 1_000_000) MB, over \(workload.probes) partitions"
        )
        print("every repeat, ns/record: decode " + decodeTimes.map { String(Int($0 / n * 1e9)) }.joined(separator: " ")
            + "; fold " + foldTimes.map { String(Int($0 / n * 1e9)) }.joined(separator: " ")
            + "; close " + closeTimes.map { String(Int($0 / n * 1e9)) }.joined(separator: " "))
        // Equal digests before and after a change to the fold = the same documents (bytes,
        // versions, sketches) and the same late decisions.
        print("result digest: " + digests.map { String($0, radix: 16) }.sorted().joined(separator: " "))
        print("close digest: " + closeDigests.map { String($0, radix: 16) }.sorted().joined(separator: " "))
    }

    /// Decodes and validates every message as a worker does, touching each record.
    static func decodeOnly(_ messages: [ProbeBenchmarks.EncodedMessage]) throws {
        let decoder = RecordBatchDecoder()
        var sum: UInt64 = 0
        for m in messages {
            try m.bytes.withUnsafeBytes { raw in
                try decoder.withBatch(raw, limits: .default, messageTimestampMs: Int64(m.lastEventMs)) { b in
                    for i in 0..<b.count { sum &+= b[i].bytesDown &+ UInt64(b[i].subscriberID.utf8.count) }
                }
            }
        }
        precondition(sum != 0)
    }

    /// One timed pass: CPU seconds, documents written and an order-independent digest of every
    /// document (and, for the fold, every fold outcome and checkpoint).
    typealias Pass = (seconds: Double, documents: Int, digest: UInt64)

    /// Folds every message into its partition's rollup and flushes on the views' intervals of
    /// event time (the fold pass); then closes every bucket and writes it, as the watermark
    /// passing them does in a node (the close pass: the final documents, the top-K selection).
    static func timedFold(
        _ messages: [ProbeBenchmarks.EncodedMessage], views: [ViewDefinition]
    ) throws -> (fold: Pass, close: Pass, held: (open: Int, interners: Int)) {
        var driver = FoldDriver(views: views)
        var fold: Pass = (0, 0, 0)
        fold.seconds = try cpuSeconds {
            try driver.run(
                messages,
                folded: { probe, offset, outcome in
                    var o = StableHash.combine(UInt64(probe), UInt64(bitPattern: offset))
                    o = StableHash.combine(o, UInt64(outcome.folded))
                    for i in outcome.late { o = StableHash.combine(o, UInt64(i)) }
                    fold.digest &+= StableHash.combine(o, UInt64(outcome.skippedReplay))
                },
                flushed: { r, sink, checkpoint in Self.note(r, sink, checkpoint, into: &fold) })
        }
        let held = (open: driver.rollups.values.reduce(0) { $0 + $1.memoryBytes }, interners: driver.rollups.values.reduce(0) { $0 + $1.internerBytes })
        var close: Pass = (0, 0, 0)
        close.seconds = cpuSeconds { driver.closeAll { r, sink, checkpoint in Self.note(r, sink, checkpoint, into: &close) } }
        return (fold, close, held)
    }

    private static func note(_ r: PartitionRollup, _ sink: BulkDocumentSink, _ checkpoint: ResumeState, into pass: inout Pass) {
        pass.documents += sink.count
        pass.digest &+= StableHash.combine(
            StableHash.combine(UInt64(bitPattern: checkpoint.offset), checkpoint.maxEventTs), UInt64(bitPattern: Int64(r.partition)))
        for i in 0..<sink.count { pass.digest &+= sink.body.item(i).withUnsafeBytes { StableHash.hash($0) } }
    }
}

/// The workload the fold benchmarks feed: probe messages at an event-time density.
struct FoldWorkload: ParsableArguments {
    @Option(help: "Records in the workload (at 100,000 records/s of event time, 3M is 30 s).") var records = 3_000_000
    @Option(help: "Records per message.") var batch = 200
    @Option(help: "Probes (one partition each).") var probes = 12
    @Option(help: "Distinct subscribers.") var subscribers = 1_000_000
    @Option(help: "Event-time density, records per second of event time (100000 = 6M/min).") var eventRate = 100_000.0
    @Option(
        help: "Messages of one partition in a row (1: one message of each partition in turn, the caches' worst case; a Kafka fetch hands a consumer runs of one partition's messages, `spate-bench drain` prints how long).")
    var run = 1

    func validate() throws {
        try check(records, "--records", 1...50_000_000)
        try check(batch, "--batch", 1...maxBatch)
        try check(probes, "--probes", 1...1_000)
        try check(subscribers, "--subscribers", 1...10_000_000)
        try check(run, "--run", 1...100_000)
        guard eventRate.isFinite, eventRate >= 0.01, eventRate <= 1e9 else {
            throw ValidationError("--event-rate must be 0.01 to 1000000000 records per second (got \(eventRate))")
        }
    }

    /// The encoded messages, announced on stdout.
    func messages() -> [ProbeBenchmarks.EncodedMessage] {
        print("encoding \(records) records (\(probes) probes, \(subscribers) subscribers, \(Int(eventRate)) records/s of event time)…")
        let messages = ProbeBenchmarks.encodedMessages(
            records: records, batch: batch, probes: probes, subscribers: subscribers, eventRate: eventRate)
        print("\(messages.count) messages, \(messages.reduce(0) { $0 + $1.bytes.count } / 1_000_000) MB")
        guard run > 1 else { return messages }
        print("in runs of \(run) messages of one partition")
        var out: [ProbeBenchmarks.EncodedMessage] = []
        var start = 0
        while start < messages.count {
            let group = messages[start..<min(messages.count, start + run * probes)]
            for p in 1...UInt32(probes) { out += group.filter { $0.probe == p } }
            start += run * probes
        }
        return out
    }
}

/// Folds messages into one rollup per partition (keyed by probe, as Kafka would), decoding and
/// validating as a worker does, and flushes every partition on each view's interval of event
/// time into bulk documents.
struct FoldDriver {
    let views: [ViewDefinition]
    private(set) var rollups: [UInt32: PartitionRollup] = [:]
    private var offsets: [UInt32: Int64] = [:]
    private var nextFlush: [UInt64]
    /// The latest event time of any message run.
    private var maxEventMs: UInt64 = 0

    /// The node's default lateness.
    static let latenessMs: UInt64 = 120_000

    init(views: [ViewDefinition] = ViewDefinition.defaults) {
        self.views = views
        nextFlush = [UInt64](repeating: 0, count: views.count)
    }

    mutating func run(
        _ messages: [ProbeBenchmarks.EncodedMessage], folded: (UInt32, Int64, FoldOutcome) -> Void,
        flushed: (PartitionRollup, BulkDocumentSink, ResumeState) -> Void
    ) throws {
        let decoder = RecordBatchDecoder()
        for m in messages {
            let rollup = rollups[m.probe] ?? PartitionRollup(partition: Int32(m.probe), views: views, latenessMs: Self.latenessMs, resume: .beginning())
            rollups[m.probe] = rollup
            let offset = offsets[m.probe, default: 0]
            offsets[m.probe] = offset + 1
            let outcome = try m.bytes.withUnsafeBytes { raw in
                try decoder.withBatch(raw, limits: .default, messageTimestampMs: Int64(m.lastEventMs)) { try rollup.fold(offset: offset, batch: $0) }
            }
            folded(m.probe, offset, outcome)
            maxEventMs = max(maxEventMs, m.lastEventMs)
            var due = Set<Int>()
            for (v, view) in views.enumerated() where m.lastEventMs >= nextFlush[v] {
                due.insert(v)
                nextFlush[v] = m.lastEventMs + view.flushIntervalMs
            }
            guard !due.isEmpty else { continue }
            for r in rollups.values {
                var sink = BulkDocumentSink(naming: IndexNaming(prefix: "bench"), topic: "bench")
                let checkpoint = r.flush(due: { due.contains($0) }, into: &sink)
                flushed(r, sink, checkpoint)
            }
        }
    }

    /// Closes every open bucket of every partition, as an idle marker far enough past the last
    /// event does, and flushes each partition once: the final documents of every bucket.
    mutating func closeAll(flushed: (PartitionRollup, BulkDocumentSink, ResumeState) -> Void) {
        let widest = views.map(\.bucketMs).max() ?? 0
        for (probe, r) in rollups.sorted(by: { $0.key < $1.key }) {
            let offset = offsets[probe, default: 0]
            offsets[probe] = offset + 1
            r.advance(offset: offset, eventTimeMs: maxEventMs + Self.latenessMs + widest)
            var sink = BulkDocumentSink(naming: IndexNaming(prefix: "bench"), topic: "bench")
            let checkpoint = r.flush(due: { _ in true }, into: &sink)
            flushed(r, sink, checkpoint)
        }
    }
}

/// CPU seconds `body` took on this thread.
func cpuSeconds(_ body: () throws -> Void) rethrows -> Double {
    func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
    let start = now()
    try body()
    return now() - start
}

/// The process's peak resident memory (VmHWM), in MB.
func peakRSSMegabytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
    }
    return 0
}
