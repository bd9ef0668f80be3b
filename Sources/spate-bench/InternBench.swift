import ArgumentParser
import Foundation
import SpateIngest
import SpateModel
import SpateTestSupport

/// What interning subscriber ids costs, for ordinary ids and for ids a hostile probe made to
/// share one `StableHash` (the interner places strings by a keyed hash, so both should cost
/// the same).
struct InternBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "intern", abstract: "CPU per string interned: ordinary subscriber ids vs ids with one stable hash.")

    @Option(help: "Distinct strings, each interned once, then looked up once.") var strings = 20_000

    func validate() throws {
        try check(strings, "--strings", 1...1_000_000)
    }

    func run() {
        print("making \(strings) strings of 16 bytes with one stable hash…")
        let colliding = StableHashCollisions.make(strings)
        let ordinary = (0..<strings).map { Array(String(format: "sub-%012d", $0).utf8) }
        for (name, set) in [("ordinary ids", ordinary), ("one stable hash", colliding)] {
            let interner = StringInterner()
            var missing = 0
            let seconds = cpuSeconds {
                for pass in 0..<2 {
                    for s in set where s.withUnsafeBufferPointer({ interner.intern($0) }) == nil { missing += pass + 1 }
                }
            }
            let ns = Int((seconds / Double(2 * set.count) * 1e9).rounded())
            print("\(name): \(ns) ns per intern (\(set.count) strings, twice each), longest probe \(interner.longestProbe) slots" + (missing > 0 ? ", \(missing) refused" : ""))
        }
    }
}
