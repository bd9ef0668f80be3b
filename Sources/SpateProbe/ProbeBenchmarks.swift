import Foundation

/// Measurements of the probe's own work, without Kafka: the ceiling a run into a broker is
/// compared with.
public enum ProbeBenchmarks {
    /// Generates and encodes `records` records in batches of `batch`; returns records per second.
    public static func generateAndEncode(records: Int, batch: Int = 200, probes: Int = 8, subscribers: Int = 20_000) -> Double {
        let generator = TrafficGenerator(seed: 1, probes: probes, subscribers: subscribers)
        let clock = EventClock(startMs: 1_790_000_000_000, eventRate: 100_000, speedup: 1)
        var out: [UInt8] = []
        var index: UInt64 = 0
        var bytes = 0
        let start = ContinuousClock.now
        var probe: UInt32 = 1
        while index < UInt64(records) {
            generator.builder.begin(probeID: probe, sequence: index, createdMs: clock.timeMs(ofRecord: index), capacity: batch)
            var c = MessageContribution()
            generator.generate(probe: probe, firstIndex: index, count: batch, clock: clock, into: &c)
            generator.builder.finish(into: &out)
            bytes &+= out.count
            index += UInt64(batch)
            probe = probe % UInt32(probes) + 1
        }
        let d = ContinuousClock.now - start
        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        precondition(bytes > 0)
        return Double(index) / seconds
    }
}
