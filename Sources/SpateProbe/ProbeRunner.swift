import Foundation
public import Logging
import SpateCodec
import SpateKafka
import Synchronization
import SpateModel

/// Counters the progress display reads while the run goes on.
final class ProbeCounters: Sendable {
    let recordsSent = Atomic<UInt64>(0)
    let recordsAcked = Atomic<UInt64>(0)
    let bytesSent = Atomic<UInt64>(0)
    let messagesFailed = Atomic<UInt64>(0)
    let brokerErrors = Atomic<UInt64>(0)
    let malformedSent = Atomic<UInt64>(0)
}

/// Accumulates acknowledged contributions. Touched only by the producer's report thread
/// until the producer is closed, then read by the main thread.
final class ManifestAccumulator: @unchecked Sendable {
    var totals = FlowTotals()
    var byMinuteApplication: [UInt64: FlowTotals] = [:]
    var byMinuteProbe: [UInt64: FlowTotals] = [:]
    var messages = Manifest.Messages()
    var malformed = Manifest.Malformed()
    var failedRecords: UInt64 = 0
    var firstEventMs: UInt64 = .max
    var lastEventMs: UInt64 = 0

    func acknowledged(_ c: MessageContribution) {
        messages.acknowledged += 1
        if let kind = c.malformedKind {
            malformed.acknowledged += 1
            malformed.byKind[kind, default: 0] += 1
            return
        }
        for (k, t) in c.byMinuteApplication {
            byMinuteApplication[k, default: FlowTotals()].add(t)
            totals.add(t)
        }
        for (k, t) in c.byMinuteProbe { byMinuteProbe[k, default: FlowTotals()].add(t) }
        firstEventMs = min(firstEventMs, c.firstEventMs)
        lastEventMs = max(lastEventMs, c.lastEventMs)
    }

    func failed(_ c: MessageContribution, possiblyPersisted: Bool) {
        messages.failed += 1
        if possiblyPersisted { messages.failedPossiblyPersisted += 1 }
        if c.malformedKind != nil { malformed.failed += 1 } else { failedRecords += c.records }
    }
}

/// Produces simulated probe traffic to Kafka and keeps the exact manifest of what the broker
/// acknowledged.
public final class ProbeRunner: Sendable {
    private let options: ProbeOptions
    private let logger: Logger
    private let counters = ProbeCounters()
    private let stopRequested = Atomic<Bool>(false)
    private let stopRequestedAt = Mutex<ContinuousClock.Instant?>(nil)

    /// Whether a stop was requested more than `stopGrace` ago.
    private var stopGraceOver: Bool { stopRequestedAt.withLock { $0.map { ContinuousClock.now - $0 > Self.stopGrace } ?? false } }

    public init(options: ProbeOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// After a stop request, how long `run()` still waits for outstanding acknowledgements
    /// before it gives the rest up (they count as failed messages).
    public static let stopGrace: Duration = .seconds(3)

    /// Asks a running `run()` to stop after the current message: it sends nothing more, waits
    /// at most `stopGrace` for acknowledgements, and returns the manifest of what was acknowledged.
    public func requestStop() {
        stopRequestedAt.withLock { $0 = $0 ?? .now }
        stopRequested.store(true, ordering: .releasing)
    }

    /// Runs to completion: sends, waits for every delivery report, returns the manifest (and
    /// writes it when `manifestPath` is set).
    public func run() throws -> Manifest {
        let o = options
        let generator = TrafficGenerator(seed: o.seed, probes: o.probes, subscribers: o.subscribers)
        let builder = generator.builder
        let clock = o.eventClock
        let accumulator = ManifestAccumulator()
        let pending = Mutex<[UInt64: MessageContribution]>([:])
        let counters = self.counters
        let producer = try KafkaProducer(
            properties: o.producerProperties, logger: logger,
            onError: { _ in counters.brokerErrors.add(1, ordering: .relaxed) },
            onDelivery: { report in
                guard let c = pending.withLock({ $0.removeValue(forKey: report.token) }) else { return }
                if report.error == nil {
                    accumulator.acknowledged(c)
                    counters.recordsAcked.add(c.records, ordering: .relaxed)
                } else {
                    accumulator.failed(c, possiblyPersisted: report.possiblyPersisted)
                    counters.messagesFailed.add(1, ordering: .relaxed)
                }
            })

        let progress = ProgressDisplay(style: o.progress, counters: counters, target: o.count, duration: o.duration)
        let startWall = ContinuousClock.now
        let deadline = o.duration.map { startWall + $0 }
        var buffer: [UInt8] = []
        var lastGood: [UInt8] = []
        var messageIndex: UInt64 = 0
        var recordIndex: UInt64 = 0
        var goodMessages: UInt64 = 0
        var sequences = [UInt64](repeating: 0, count: o.probes + 1)
        let decoder = RecordBatchDecoder()
        var malformedRNG = Xoshiro256(seed: o.seed ^ 0xBAD_BA7C4)
        let malformedThreshold = UInt64(o.malformedFraction * Double(UInt64.max >> 11)) << 11

        /// Enqueues one message; false when a stop request came while the local queue was
        /// full (the message was not sent and is not counted).
        func send(_ bytes: [UInt8], probe: UInt32, contribution: MessageContribution) throws -> Bool {
            let token = messageIndex
            pending.withLock { $0[token] = contribution }
            let key = Array("probe-\(probe)".utf8)
            while true {
                do {
                    try bytes.withUnsafeBytes { try producer.send(topic: o.topic, key: key, value: $0, token: token) }
                    break
                } catch let e as KafkaError where e.code == .queueFull {
                    // The broker is slow or away: wait for deliveries to drain the local queue,
                    // unless asked to stop.
                    if stopRequested.load(ordering: .acquiring) {
                        pending.withLock { _ = $0.removeValue(forKey: token) }
                        return false
                    }
                    progress.tick(now: .now)
                    Thread.sleep(forTimeInterval: 0.001)
                }
            }
            messageIndex += 1
            counters.bytesSent.add(UInt64(bytes.count), ordering: .relaxed)
            return true
        }

        while !stopRequested.load(ordering: .acquiring) {
            if let count = o.count, recordIndex >= count { break }
            if let deadline, ContinuousClock.now >= deadline { break }

            // Malformed injection: a deterministic choice per message index.
            if o.malformedFraction > 0, mix64(o.seed &* 0x9E37 ^ messageIndex) < malformedThreshold {
                let probe = UInt32(goodMessages % UInt64(o.probes)) + 1
                var (kind, bytes) = makeMalformed(&malformedRNG, lastGood: lastGood, probe: probe)
                while isDecodable(bytes, decoder) {
                    (kind, bytes) = ("random-bytes", (0..<64).map { _ in UInt8(truncatingIfNeeded: malformedRNG.next()) })
                }
                var c = MessageContribution()
                c.malformedKind = kind
                guard try send(bytes, probe: probe, contribution: c) else { break }
                counters.malformedSent.add(1, ordering: .relaxed)
                continue
            }

            var n = o.batch
            if let count = o.count { n = Int(min(UInt64(n), count - recordIndex)) }
            if o.rate > 0 {
                let due = startWall + .nanoseconds(Int64(Double(recordIndex) / o.rate * 1e9))
                let now = ContinuousClock.now
                if due > now {
                    progress.tick(now: now)
                    // In slices, so that a stop request is seen within 100 ms at any rate.
                    let wait = min(due - now, .milliseconds(100))
                    Thread.sleep(forTimeInterval: wait.inSeconds)
                    continue
                }
            }
            let probe = UInt32(goodMessages % UInt64(o.probes)) + 1
            let seq = sequences[Int(probe)]
            sequences[Int(probe)] += 1
            builder.begin(probeID: probe, sequence: seq, createdMs: clock.timeMs(ofRecord: recordIndex + UInt64(n) - 1), capacity: n)
            var c = MessageContribution()
            generator.generate(probe: probe, firstIndex: recordIndex, count: n, clock: clock, into: &c)
            builder.finish(into: &buffer)
            guard try send(buffer, probe: probe, contribution: c) else {
                sequences[Int(probe)] -= 1
                break
            }
            swap(&buffer, &lastGood)
            recordIndex += UInt64(n)
            goodMessages += 1
            counters.recordsSent.add(UInt64(n), ordering: .relaxed)
            progress.tick(now: .now)
        }

        // Wait for every delivery report (librdkafka retries through broker outages until
        // message.timeout.ms); after a stop request at most `stopGrace`, then the rest is given
        // up: purged messages get failed reports, which the manifest counts as failed.
        var purgedAt: ContinuousClock.Instant?
        while producer.pendingCount > 0 {
            progress.tick(now: .now, flushing: true)
            if purgedAt == nil && stopGraceOver {
                logger.warning("stopping: giving up \(producer.pendingCount) unacknowledged messages")
                producer.purge()
                purgedAt = .now
            }
            if let purgedAt, ContinuousClock.now - purgedAt > .seconds(2) { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        producer.close(timeout: purgedAt == nil ? .seconds(1) : .zero)
        // Reports that never came (the report thread has stopped): failed, perhaps persisted.
        for c in pending.withLock({ p in defer { p = [:] }; return Array(p.values) }) {
            accumulator.failed(c, possiblyPersisted: true)
            counters.messagesFailed.add(1, ordering: .relaxed)
        }
        let elapsed = ContinuousClock.now - startWall
        progress.finish(now: .now)

        let names = generator.applicationNames
        let a = accumulator
        let manifest = Manifest(
            topic: o.topic, seed: o.seed, probes: o.probes, batch: o.batch, subscribers: generator.subscribersPerProbe * o.probes,
            startMs: o.startMs, firstEventMs: a.firstEventMs == .max ? nil : a.firstEventMs,
            lastEventMs: a.firstEventMs == .max ? nil : a.lastEventMs, speedup: o.speedup, totals: a.totals,
            failedRecords: a.failedRecords, messages: Manifest.Messages(
                sent: messageIndex, acknowledged: a.messages.acknowledged, failed: a.messages.failed,
                failedPossiblyPersisted: a.messages.failedPossiblyPersisted),
            malformed: a.malformed, brokerErrors: counters.brokerErrors.load(ordering: .relaxed),
            elapsedSeconds: elapsed.inSeconds,
            byMinuteApplication: a.byMinuteApplication.map { key, t in
                Manifest.MinuteApplication(minuteMs: (key >> 20) * 60_000, application: names[Int(key & 0xfffff)], totals: t)
            }.sorted { ($0.minuteMs, $0.application) < ($1.minuteMs, $1.application) },
            byMinuteProbe: a.byMinuteProbe.map { key, t in
                Manifest.MinuteProbe(minuteMs: (key >> 20) * 60_000, probe: UInt32(key & 0xfffff), totals: t)
            }.sorted { ($0.minuteMs, $0.probe) < ($1.minuteMs, $1.probe) })
        if let path = o.manifestPath {
            try manifest.jsonData().write(to: URL(fileURLWithPath: path), options: .atomic)
        }
        return manifest
    }

    private func isDecodable(_ bytes: [UInt8], _ decoder: RecordBatchDecoder) -> Bool {
        (try? bytes.withUnsafeBytes { try decoder.withBatch($0) { _ in true } }) ?? false
    }

    /// One malformed message: random bytes, a truncated copy of the last good batch, or a
    /// valid message of another type (ProbeStatus).
    private func makeMalformed(_ rng: inout Xoshiro256, lastGood: [UInt8], probe: UInt32) -> (String, [UInt8]) {
        switch rng.below(3) {
        case 1 where lastGood.count > 2:
            return ("truncated-batch", Array(lastGood[..<(1 + rng.below(lastGood.count - 1))]))
        case 2:
            return ("other-message-type", ProbeStatusEncoder.encode(
                probeID: probe, uptimeSeconds: rng.next() % 1_000_000, recordsSent: rng.next() % 1_000_000_000,
                softwareVersion: "spate-probe/1"))
        default:
            return ("random-bytes", (0..<(16 + rng.below(400))).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
    }
}
