import Foundation
import Logging
import SpateCodec
import SpateKafka
import SpateModel
import SpateProbe
import SpateTestSupport
import Testing

/// Totals recomputed from the topic's messages, independently of the probe.
struct Recount {
    var totals = FlowTotals()
    var byMinuteApplication: [String: FlowTotals] = [:]
    var byMinuteProbe: [String: FlowTotals] = [:]
    var malformed = 0

    init(_ messages: [Int32: [[UInt8]]]) {
        let decoder = RecordBatchDecoder()
        for (_, list) in messages {
            for bytes in list {
                guard let batch = try? decoder.decode(bytes) else {
                    malformed += 1
                    continue
                }
                for r in batch.records {
                    var t = FlowTotals()
                    t.records = 1
                    t.flows = UInt64(r.flows)
                    t.bytesUp = r.bytesUp
                    t.bytesDown = r.bytesDown
                    t.packetsUp = r.packetsUp
                    t.packetsDown = r.packetsDown
                    let minute = r.endTimeMs / 60_000 * 60_000
                    totals.add(t)
                    byMinuteApplication["\(minute)/\(r.application)", default: FlowTotals()].add(t)
                    byMinuteProbe["\(minute)/\(r.probeID)", default: FlowTotals()].add(t)
                }
            }
        }
    }

    func matches(_ m: Manifest) -> [String] {
        var problems: [String] = []
        if totals != m.totals { problems.append("totals \(totals) != \(m.totals)") }
        let ma = Dictionary(uniqueKeysWithValues: m.byMinuteApplication.map { ("\($0.minuteMs)/\($0.application)", $0.totals) })
        let mp = Dictionary(uniqueKeysWithValues: m.byMinuteProbe.map { ("\($0.minuteMs)/\($0.probe)", $0.totals) })
        if ma != byMinuteApplication { problems.append("per (minute, application) differs: \(ma.count) vs \(byMinuteApplication.count) keys") }
        if mp != byMinuteProbe { problems.append("per (minute, probe) differs: \(mp.count) vs \(byMinuteProbe.count) keys") }
        if UInt64(malformed) != m.malformed.acknowledged { problems.append("malformed \(malformed) != \(m.malformed.acknowledged)") }
        return problems
    }
}

func runProbe(_ arguments: [String], logName: String) throws -> (status: Int32, output: String) {
    let log = NSTemporaryDirectory() + "/\(uniqueName(logName)).log"
    defer { unlink(log) }
    let child = try ChildProcess(try Binaries.path("spate-probe"), arguments, logPath: log)
    let status = child.wait(timeout: .seconds(600)) ?? -1
    return (status, child.output)
}

@Suite("spate-probe", .serialized, .timeLimit(.minutes(10)))
struct ProbeTests {
    @Test("200,000 records: every manifest total equals a recount of the topic; malformed count too")
    func manifestIsExact() throws {
        let services = try TestServices.shared()
        let topic = uniqueName("probe-exact")
        try services.createTopic(topic, partitions: 6)
        defer { services.deleteTopic(topic) }
        let manifestPath = NSTemporaryDirectory() + "/\(topic).json"
        defer { unlink(manifestPath) }
        let run = try runProbe(
            ["--bootstrap", services.kafkaBootstrap, "--topic", topic, "--count", "200000", "--rate", "0",
             "--probes", "5", "--seed", "42", "--start", "2026-11-20T10:00:00Z", "--speedup", "120",
             "--malformed", "0.02", "--manifest", manifestPath, "--quiet"], logName: "probe-exact")
        #expect(run.status == 0, "\(run.output)")
        let manifest = try Manifest.load(path: manifestPath)
        #expect(manifest.totals.records == 200_000)
        #expect(manifest.messages.failed == 0)
        #expect(manifest.malformed.acknowledged > 0)
        #expect(manifest.malformed.byKind.count == 3, "\(manifest.malformed.byKind)")
        #expect(Set(manifest.byMinuteApplication.map(\.minuteMs)).count >= 2, "the run spans several minutes")
        #expect(Set(manifest.byMinuteApplication.map(\.application)).count >= 100)

        let messages = try readTopic(bootstrap: services.kafkaBootstrap, topic: topic, expected: manifest.messages.acknowledged)
        #expect(UInt64(messages.values.map(\.count).reduce(0, +)) == manifest.messages.acknowledged)
        let problems = Recount(messages).matches(manifest)
        #expect(problems.isEmpty, "\(problems)")
    }

    @Test("the same seed gives byte-identical messages; another seed does not")
    func deterministic() throws {
        let services = try TestServices.shared()
        var runs: [[Int32: [[UInt8]]]] = []
        for seed in ["7", "7", "8"] {
            let topic = uniqueName("probe-det")
            try services.createTopic(topic, partitions: 3)
            defer { services.deleteTopic(topic) }
            let manifestPath = NSTemporaryDirectory() + "/\(topic).json"
            defer { unlink(manifestPath) }
            let run = try runProbe(
                ["--bootstrap", services.kafkaBootstrap, "--topic", topic, "--count", "20000", "--rate", "0", "--seed", seed,
                 "--start", "1790000000000", "--malformed", "0.05", "--manifest", manifestPath, "--quiet"], logName: "probe-det")
            #expect(run.status == 0, "\(run.output)")
            let manifest = try Manifest.load(path: manifestPath)
            runs.append(try readTopic(bootstrap: services.kafkaBootstrap, topic: topic, expected: manifest.messages.acknowledged))
        }
        #expect(runs[0].values.map(\.count).reduce(0, +) > 100)
        #expect(runs[0] == runs[1])
        #expect(runs[0] != runs[2])
    }

    @Test("configuration errors name the flag", arguments: [
        (["--rate", "-5"], "--rate"), (["--batch", "0"], "--batch"), (["--compression", "brotli"], "--compression"),
        (["--malformed", "1.5"], "--malformed"), (["--malformed", "0.9999999999999999"], "--malformed"), (["--start", "yesterday-ish"], "--start"), (["-X", "novalue"], "-X"),
        (["--duration", "10 parsecs"], "--duration"), (["--count", "5", "--duration", "5s"], "--count"),
        // Each passes alone; the producer refuses message.timeout.ms at or below linger.ms.
        (["-X", "message.timeout.ms=5", "-X", "linger.ms=50", "--count", "1"], "linger.ms"),
    ])
    func badFlags(arguments: [String], flag: String) throws {
        let run = try runProbe(["--bootstrap", "127.0.0.1:1"] + arguments, logName: "probe-flags")
        #expect(run.status == 2, "\(run.output)")
        #expect(run.output.contains(flag), "\(run.output)")
    }

    @Test("a --count near 2^64 shows an endless ETA in the progress line instead of trapping")
    func hugeCountProgress() throws {
        // librdkafka's mock cluster acknowledges the messages, so progress lines with an ETA are
        // drawn: (2^64 − 1 − sent) / rate seconds trapped in Int(_:).
        let log = NSTemporaryDirectory() + "/\(uniqueName("probe-eta")).log"
        defer { unlink(log) }
        let child = try ChildProcess(
            try Binaries.path("spate-probe"),
            ["--bootstrap", "127.0.0.1:1", "-X", "test.mock.num.brokers=1", "--rate", "1", "--batch", "1", "--count", "18446744073709551615"],
            logPath: log)
        let deadline = ContinuousClock.now + .seconds(30)
        while !child.output.contains(" eta ") && ContinuousClock.now < deadline && child.wait(timeout: .milliseconds(200)) == nil {}
        child.signal(SIGINT)
        let status = child.wait(timeout: .seconds(30))
        #expect(child.output.contains(" eta ∞"), "\(child.output)")
        // SIGINT stops the probe gracefully: 0, or 3 for messages given up unacknowledged.
        #expect(status == 0 || status == 3, "exit \(status.map(String.init) ?? "none"): \(child.output)")
    }

    @Test("an unknown librdkafka property is invalid input: exit 2 with its name")
    func badKafkaProperty() throws {
        let run = try runProbe(["--bootstrap", "127.0.0.1:1", "--count", "10", "-X", "linger.msec=5"], logName: "probe-prop")
        #expect(run.status == 2, "\(run.output)")
        #expect(run.output.contains("linger.msec"), "\(run.output)")
    }

    @Test("big numbers are refused by name, never a crash", arguments: [
        (["--speedup", "1e30"], "--speedup"), (["--event-rate", "1e-30"], "--event-rate"), (["--rate", "1e-300"], "--rate"),
        (["--duration", "1e30d"], "--duration"), (["--start", "now+1e30d"], "--start"),
    ])
    func bigNumbers(arguments: [String], flag: String) throws {
        let run = try runProbe(["--bootstrap", "127.0.0.1:1"] + arguments, logName: "probe-big")
        #expect(run.status == 2, "\(run.output)")
        #expect(run.output.contains(flag), "\(run.output)")
    }

    @Test("SIGTERM with the broker unreachable: the probe gives up its messages and exits 3 (some not acknowledged)")
    func stopWithoutBroker() throws {
        let log = NSTemporaryDirectory() + "/\(uniqueName("probe-stop")).log"
        defer { unlink(log) }
        let probe = try ChildProcess(try Binaries.path("spate-probe"), ["--bootstrap", "127.0.0.1:1", "--count", "10", "--quiet"], logPath: log)
        Thread.sleep(forTimeInterval: 1)
        probe.signal(SIGTERM)
        let status = probe.wait(timeout: .seconds(120))
        if status == nil { probe.signal(SIGKILL) }
        #expect(status == 3, "\(probe.output)")
    }

    @Test("a broker outage mid-run is retried and reported; the manifest stays exact")
    func brokerOutage() throws {
        let mock = try KafkaMockCluster(brokers: 1, logger: Logger(label: "mock"))
        let topic = uniqueName("probe-outage")
        try mock.createTopic(topic, partitions: 4)
        let manifestPath = NSTemporaryDirectory() + "/\(topic).json"
        defer { unlink(manifestPath) }
        let log = NSTemporaryDirectory() + "/\(topic).log"
        defer { unlink(log) }
        let probe = try ChildProcess(
            try Binaries.path("spate-probe"),
            ["--bootstrap", mock.bootstrapServers, "--topic", topic, "--count", "60000", "--rate", "10000",
             "--seed", "5", "--manifest", manifestPath, "-X", "reconnect.backoff.max.ms=200"],
            logPath: log)
        Thread.sleep(forTimeInterval: 2)
        try mock.setBrokerDown(1)
        Thread.sleep(forTimeInterval: 3)
        try mock.setBrokerUp(1)
        let status = probe.wait(timeout: .seconds(120))
        #expect(status == 0, "\(probe.output)")
        let manifest = try Manifest.load(path: manifestPath)
        #expect(manifest.messages.failed == 0)
        #expect(manifest.brokerErrors > 0, "the outage was not reported")
        #expect(probe.output.contains("broker errors"), "\(probe.output)")
        #expect(manifest.totals.records == 60_000)
        let messages = try readTopic(bootstrap: mock.bootstrapServers, topic: topic, expected: manifest.messages.acknowledged)
        let problems = Recount(messages).matches(manifest)
        #expect(problems.isEmpty, "\(problems)")
    }

    @Test("time flags parse", arguments: [
        ("2026-11-20T00:00:00Z", UInt64(1_795_132_800_000)), ("now", UInt64(5_000_000_000_000)),
        ("now-1d", UInt64(5_000_000_000_000 - 86_400_000)), ("1795132800123", UInt64(1_795_132_800_123)),
    ] as [(String, UInt64)])
    func timeParsing(text: String, expected: UInt64) {
        #expect(TimeParsing.instantMs(text, nowMs: 5_000_000_000_000) == expected)
    }
}
