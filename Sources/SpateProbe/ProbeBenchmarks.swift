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
        let seconds = (ContinuousClock.now - start).inSeconds
        precondition(bytes > 0)
        return Double(index) / seconds
    }
}

import SpateCodec
import SpateModel

extension ProbeBenchmarks {
    /// Unpacks probe batches with protobuf-c into the arena and reads every record's volume
    /// fields; returns records per second.
    public static func decode(records: Int, batch: Int = 200) -> Double {
        let generator = TrafficGenerator(seed: 1, probes: 8, subscribers: 20_000)
        let clock = EventClock(startMs: 1_790_000_000_000, eventRate: 100_000, speedup: 1)
        var messages: [[UInt8]] = []
        for i in 0..<64 {
            generator.builder.begin(probeID: UInt32(i % 8 + 1), sequence: UInt64(i), createdMs: 1, capacity: batch)
            var c = MessageContribution()
            generator.generate(probe: UInt32(i % 8 + 1), firstIndex: UInt64(i * batch), count: batch, clock: clock, into: &c)
            var out: [UInt8] = []
            generator.builder.finish(into: &out)
            messages.append(out)
        }
        let decoder = RecordBatchDecoder()
        var sum: UInt64 = 0
        var done = 0
        let start = ContinuousClock.now
        while done < records {
            let m = messages[(done / batch) % messages.count]
            m.withUnsafeBytes { raw in
                try! decoder.withBatch(raw) { b in
                    for i in 0..<b.count { sum &+= b[i].bytesDown &+ UInt64(b[i].application.utf8.count) }
                }
            }
            done += batch
        }
        let d = ContinuousClock.now - start
        precondition(sum != 0)
        return Double(done) / d.inSeconds
    }
}

extension ProbeBenchmarks {
    /// One encoded probe message of a benchmark workload.
    public struct EncodedMessage: Sendable {
        public var probe: UInt32
        public var bytes: [UInt8]
        /// The event time of its last record (what a Kafka timestamp would be close to).
        public var lastEventMs: UInt64
    }

    /// `records` records of realistic traffic encoded as probe messages of `batch` records,
    /// probes taking turns, event time advancing at `eventRate` records/s from `startMs`: the
    /// bytes a node would read from Kafka, without Kafka.
    public static func encodedMessages(
        records: Int, batch: Int = 200, probes: Int = 12, subscribers: Int = 1_000_000, eventRate: Double = 100_000,
        startMs: UInt64 = 1_790_000_000_000
    ) -> [EncodedMessage] {
        let generator = TrafficGenerator(seed: 1, probes: probes, subscribers: subscribers)
        let clock = EventClock(startMs: startMs, eventRate: eventRate, speedup: 1)
        var out: [EncodedMessage] = []
        out.reserveCapacity(records / batch + 1)
        var index: UInt64 = 0
        var probe: UInt32 = 1
        while index < UInt64(records) {
            generator.builder.begin(probeID: probe, sequence: index, createdMs: clock.timeMs(ofRecord: index), capacity: batch)
            var c = MessageContribution()
            generator.generate(probe: probe, firstIndex: index, count: batch, clock: clock, into: &c)
            var bytes: [UInt8] = []
            generator.builder.finish(into: &bytes)
            out.append(EncodedMessage(probe: probe, bytes: bytes, lastEventMs: clock.timeMs(ofRecord: index + UInt64(batch) - 1)))
            index += UInt64(batch)
            probe = probe % UInt32(probes) + 1
        }
        return out
    }
}
