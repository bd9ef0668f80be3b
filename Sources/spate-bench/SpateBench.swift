import ArgumentParser
import Foundation
import SpateProbe

/// Micro-benchmarks of Spate's own CPU work, and the load generators of the end-to-end
/// benchmarks (scripts in cluster/bench-* that run the real executables against Tansu and
/// osmem-server).
@main
struct SpateBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spate-bench", abstract: "Micro-benchmarks (build with -c release).",
        subcommands: [ProbeEncode.self, Decode.self, FoldBench.self, SnapshotBench.self, InternBench.self, Drain.self, WatchBench.self])
}

/// Refuses a count option outside `range`, naming the option (a bench's loops, divisions and
/// memory take these numbers as given).
func check(_ value: Int, _ option: String, _ range: ClosedRange<Int>) throws {
    guard range.contains(value) else {
        throw ValidationError("\(option) must be \(range.lowerBound) to \(range.upperBound) (got \(value))")
    }
}

/// Messages hold at most this many records in the benches (`--batch`).
let maxBatch = 10_000

struct ProbeEncode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe-encode", abstract: "Records/s spate-probe generates and encodes without Kafka (its ceiling).")

    @Option(help: "Records to generate.") var records = 5_000_000
    @Option(help: "Records per batch.") var batch = 200
    @Option(help: "Repetitions; the best is reported.") var repeats = 3

    func validate() throws {
        try check(records, "--records", 1...100_000_000)
        try check(batch, "--batch", 1...maxBatch)
        try check(repeats, "--repeats", 1...100)
    }

    func run() {
        let best = (0..<repeats).map { _ in ProbeBenchmarks.generateAndEncode(records: records, batch: batch) }.max() ?? 0
        print(String(format: "probe-encode: %.0f records/s (best of %d, %d records, batch %d)", best, repeats, records, batch))
    }
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode", abstract: "Records/s protobuf-c unpacks (arena) and walks, one core.")

    @Option(help: "Records to decode.") var records = 5_000_000
    @Option(help: "Records per batch.") var batch = 200

    func validate() throws {
        try check(records, "--records", 1...1_000_000_000)
        try check(batch, "--batch", 1...maxBatch)
    }

    func run() {
        let rate = ProbeBenchmarks.decode(records: records, batch: batch)
        print(String(format: "decode: %.0f records/s (%d records, batch %d)", rate, records, batch))
    }
}
