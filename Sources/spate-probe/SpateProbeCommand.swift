import ArgumentParser
import Foundation
import Logging
import SpateKafka
import SpateModel
import SpateProbe

@main
struct SpateProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spate-probe",
        abstract: "Simulates DPI probes: publishes realistic flow records to Kafka and writes an exact manifest.",
        discussion: """
            Each Kafka message is one RecordBatch of --batch records from one probe, keyed by the probe id.
            The manifest counts only records whose messages the broker acknowledged. The same --seed (with \
            the same other options) produces byte-identical messages.
            SIGTERM/SIGINT: send nothing more, wait at most 3 s for outstanding acknowledgements, give up the \
            rest (counted as failed), write the manifest and exit.
            Exit codes: 0 every message sent was acknowledged; 1 the run failed (the producer failed, the \
            manifest could not be written); 2 invalid options, -X librdkafka properties included (also those librdkafka refuses only \
            together, when the producer is created); 3 some \
            messages were not acknowledged (the broker stayed away beyond librdkafka's message.timeout.ms, \
            600 s unless set with -X, or they were given up after a stop).
            """)

    /// Like ArgumentParser's, except that invalid options exit 2 instead of 64.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }

    @Option(help: "Kafka bootstrap servers (default: $SPATE_KAFKA_BOOTSTRAP).")
    var bootstrap: String?
    @Option(help: "Topic to publish to (default: $SPATE_TOPIC or spate.flows).")
    var topic: String?
    @Option(help: "Records per second; 0 sends as fast as the broker accepts.")
    var rate: Double = 10_000
    @Option(help: "Stop after this many records.")
    var count: UInt64?
    @Option(help: "Stop after this long (e.g. 20s, 5m, 1h).")
    var duration: String?
    @Option(help: "Number of simulated probes (ids 1...N).")
    var probes: Int = 8
    @Option(help: "Records per RecordBatch message.")
    var batch: Int = 200
    @Option(help: "Random seed; the same seed gives the same messages.")
    var seed: UInt64 = 1
    @Option(help: "Event time of the first record: now, now-5d, 2026-11-20T00:00:00Z or Unix ms (default: now).")
    var start: String = "now"
    @Option(help: "Event time runs this many times faster than wall time (backfills).")
    var speedup: Double = 1
    @Option(help: "With --rate 0: the records per second that event time assumes.")
    var eventRate: Double = 100_000
    @Option(help: "Distinct subscribers across all probes.")
    var subscribers: Int = 20_000
    @Option(help: "Write the JSON manifest of acknowledged totals to this file.")
    var manifest: String?
    @Option(help: "Compression: none, gzip, snappy, lz4, zstd.")
    var compression: String = "lz4"
    @Option(help: "Share of messages replaced by malformed ones (0 ≤ f ≤ 0.99: --count records still arrive).")
    var malformed: Double = 0
    @Option(name: .customShort("X"), help: ArgumentHelp("librdkafka property key=value (repeatable).", valueName: "key=value"))
    var properties: [String] = []
    @Flag(help: "No progress output.")
    var quiet = false
    @Option(help: "Log level for client messages: trace, debug, info, notice, warning, error.")
    var logLevel: String = "warning"

    func validate() throws {
        guard rate == 0 || (0.001...1e9).contains(rate) else { throw ValidationError("--rate must be 0 or 0.001...1000000000, got \(rate)") }
        if let count, count == 0 { throw ValidationError("--count must be > 0") }
        if let duration, TimeParsing.durationMs(duration) == nil {
            throw ValidationError("--duration: cannot read '\(duration)' (use e.g. 20s, 5m, 1h; at most \(TimeParsing.maxDurationText))")
        }
        if count != nil && duration != nil { throw ValidationError("--count and --duration exclude each other") }
        guard (1...1_000_000).contains(probes) else { throw ValidationError("--probes must be 1...1000000, got \(probes)") }
        guard (1...100_000).contains(batch) else { throw ValidationError("--batch must be 1...100000, got \(batch)") }
        guard speedup > 0, speedup <= 1e9 else { throw ValidationError("--speedup must be > 0 and at most 1000000000, got \(speedup)") }
        guard eventRate >= 1, eventRate <= 1e9 else { throw ValidationError("--event-rate must be 1...1000000000, got \(eventRate)") }
        guard subscribers >= 1, subscribers <= 5_000_000 else {
            throw ValidationError("--subscribers must be 1...5000000, got \(subscribers)")
        }
        guard subscribers >= probes else { throw ValidationError("--subscribers (\(subscribers)) must be ≥ --probes (\(probes))") }
        guard ["none", "gzip", "snappy", "lz4", "zstd"].contains(compression) else {
            throw ValidationError("--compression must be none, gzip, snappy, lz4 or zstd, got '\(compression)'")
        }
        guard malformed >= 0, malformed <= 0.99 else { throw ValidationError("--malformed must be in [0, 0.99], got \(malformed)") }
        guard TimeParsing.instantMs(start, nowMs: UInt64(Date().timeIntervalSince1970 * 1000)) != nil else {
            throw ValidationError("--start: cannot read '\(start)' (use now, now-5d, 2026-11-20T00:00:00Z or Unix ms)")
        }
        for p in properties {
            let parts = p.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("-X expects key=value, got '\(p)'") }
            if let problem = ProbeOptions.kafkaPropertyProblem(parts[0], parts[1]) { throw ValidationError("-X \(parts[0]): \(problem)") }
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: unknown level '\(logLevel)'") }
        if resolvedBootstrap == nil { throw ValidationError("--bootstrap is required (or set SPATE_KAFKA_BOOTSTRAP)") }
    }

    var resolvedBootstrap: String? {
        bootstrap ?? ProcessInfo.processInfo.environment["SPATE_KAFKA_BOOTSTRAP"]
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .warning
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        var props: [String: String] = [:]
        for p in properties {
            let parts = p.split(separator: "=", maxSplits: 1).map(String.init)
            props[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        let nowMs = UInt64(Date().timeIntervalSince1970 * 1000)
        let options = ProbeOptions(
            bootstrap: resolvedBootstrap!, topic: topic ?? ProcessInfo.processInfo.environment["SPATE_TOPIC"] ?? "spate.flows",
            rate: rate, count: count, duration: duration.flatMap(TimeParsing.durationMs).map { .milliseconds($0) },
            probes: probes, batch: batch, seed: seed, startMs: TimeParsing.instantMs(start, nowMs: nowMs)!,
            speedup: speedup, eventRate: eventRate, subscribers: subscribers, manifestPath: manifest,
            kafkaProperties: props, compression: compression, malformedFraction: malformed,
            progress: quiet ? .quiet : .auto)
        let runner = ProbeRunner(options: options, logger: Logger(label: "spate.probe"))
        let stop = SignalStop { runner.requestStop() }
        defer { withExtendedLifetime(stop) {} }
        let result: Manifest
        do {
            result = try runner.run()
        } catch let e as KafkaError where e.code == .configuration {
            // Each -X property passed its own check; librdkafka checks some only together.
            FileHandle.standardError.write(Data("spate-probe: librdkafka refused the Kafka properties (-X and the probe's own): \(e)\n".utf8))
            throw ExitCode(2)
        } catch {
            FileHandle.standardError.write(Data("spate-probe: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if !quiet {
            let t = result.totals
            FileHandle.standardError.write(Data("""
                records \(t.records) flows \(t.flows) bytes up \(t.bytesUp) down \(t.bytesDown) packets \(t.packets); \
                messages acked \(result.messages.acknowledged), failed \(result.messages.failed); malformed \(result.malformed.acknowledged)
                """.utf8 + [0x0A]))
        }
        if result.messages.failed > 0 { throw ExitCode(3) }
    }
}

/// Turns SIGINT/SIGTERM into a graceful stop: send no more, await acknowledgements, write
/// the manifest.
final class SignalStop {
    private let sources: [any DispatchSourceSignal]

    init(_ handler: @escaping @Sendable () -> Void) {
        sources = [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler(handler: handler)
            s.resume()
            return s
        }
    }
}
