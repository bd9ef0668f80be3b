import Foundation
import SpateCodec
import SpateModel
import SpateElastic
import SpateKafka
import SpateProbe
import SpateTestSupport
import Testing

/// Ingest against real Tansu and osmem-server: the store's sums per (minute, application) and
/// (minute, probe) must equal spate-probe's manifest exactly, whatever happens to the nodes.
@Suite("spate-node ingest, exactly once", .serialized, .timeLimit(.minutes(10)))
struct IngestExactlyOnceTests {
    static let probeBase = ["--probes", "12", "--subscribers", "600", "--start", "now-3m", "--speedup", "12", "--seed", "11"]

    static func sleep(_ seconds: Double) async throws { try await Task.sleep(for: .milliseconds(Int64(seconds * 1000))) }

    @Test("1,000,000 records through 2 nodes: every (minute, application) and (minute, probe) sum is exact")
    func twoNodes() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "two-nodes") { bed in
            try bed.startNode("a")
            try bed.startNode("b")
            let manifest = try bed.runProbe(Self.probeBase + ["--count", "1000000", "--rate", "0"])
            #expect(manifest.totals.records == 1_000_000)
            let problems = try await bed.waitForExactTotals(manifest)
            #expect(problems.isEmpty, "\(problems)\n\(bed.nodeLogs())")
        }
    }

    @Test("1,000,000 records while one of 2 nodes is SIGKILLed at three random moments and restarted: still exact")
    func killedThreeTimes() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "kills") { bed in
            bed.views = NodeTestBed.applicationViews
            var victim = try bed.startNode("a")
            try bed.startNode("b")
            let (probe, manifestPath) = try bed.startProbe(Self.probeBase + ["--count", "1000000", "--rate", "25000"])
            var moments: [String] = []
            for round in 1...3 {
                let wait = Double.random(in: 3...9)
                try await Self.sleep(wait)
                victim.signal(SIGKILL)
                #expect(victim.wait(timeout: .seconds(10)) == 128 + SIGKILL)
                let down = Double.random(in: 0.5...3)
                moments.append(String(format: "kill %d after %.1fs, down %.1fs", round, wait, down))
                try await Self.sleep(down)
                victim = try bed.startNode("a")
            }
            #expect(probe.wait(timeout: .seconds(300)) == 0)
            let manifest = try Manifest.load(path: manifestPath)
            #expect(manifest.totals.records == 1_000_000)
            let problems = try await bed.waitForExactTotals(manifest, timeout: .seconds(300))
            #expect(problems.isEmpty, "\(moments) \(problems)\n\(bed.nodeLogs())")
        }
    }

    @Test("rebalance: 1 node, 2 more join mid-stream, one leaves on SIGTERM and exits 0 within its grace: exact")
    func rebalance() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "rebalance") { bed in
            bed.views = NodeTestBed.applicationViews
            try bed.startNode("a", workers: 1)
            let (probe, manifestPath) = try bed.startProbe(Self.probeBase + ["--count", "500000", "--rate", "20000"])
            try await Self.sleep(5)
            let b = try bed.startNode("b", workers: 1)
            try bed.startNode("c", workers: 1)
            try await Self.sleep(10)
            let grace = Duration.seconds(25)  // ingest.shutdown_grace in the bed's configuration
            let stopAt = ContinuousClock.now
            b.signal(SIGTERM)
            let status = b.wait(timeout: grace + .seconds(5))
            let took = ContinuousClock.now - stopAt
            #expect(status == 0, "exit status after SIGTERM\n\(bed.nodeLogs())")
            #expect(took < grace, "took \(took)")
            #expect(b.output.contains("stopped cleanly"))
            #expect(probe.wait(timeout: .seconds(300)) == 0)
            let manifest = try Manifest.load(path: manifestPath)
            let problems = try await bed.waitForExactTotals(manifest, timeout: .seconds(300))
            #expect(problems.isEmpty, "\(problems)\n\(bed.nodeLogs())")
        }
    }

    @Test("the store stops answering for 30 s and a proxy injects 429 items and 503 bulks: exact, and RSS stays under its bound")
    func storeOutage() async throws {
        let services = try DevServices.start()
        defer { services.stop() }
        try await NodeTestBed.with(services: services, name: "outage") { bed in
            bed.views = NodeTestBed.applicationViews
            let portFile = bed.directory + "/proxy.port"
            let proxy = try ChildProcess(
                "/usr/bin/env",
                ["python3", Repository.root + "/Tests/Tools/fault-proxy.py", "--upstream", services.elasticURL, "--port-file", portFile,
                 "--item-429", "0.2", "--request-503", "0.1"],
                logPath: bed.directory + "/proxy.log")
            defer {
                proxy.signal(SIGKILL)
                proxy.wait(timeout: .seconds(5))
            }
            var port = ""
            for _ in 0..<100 where port.isEmpty {
                port = (try? String(contentsOfFile: portFile, encoding: .utf8)) ?? ""
                try await Self.sleep(0.05)
            }
            let bound: Int64 = 300_000_000
            let node = try bed.startNode(
                "a", elasticURL: "http://127.0.0.1:\(port)",
                ingest: ["max_memory": "300MB", "max_pending_bytes": "64MB", "fetch_queue_bytes": "8MB", "store_stall_timeout": "5s"])
            let (probe, manifestPath) = try bed.startProbe(Self.probeBase + ["--count", "300000", "--rate", "10000"])
            var peak: Int64 = 0
            func sampleRSS() { peak = max(peak, ChildProcess.residentBytes(pid: node.pid) ?? 0) }
            for _ in 0..<20 {
                sampleRSS()
                try await Self.sleep(0.25)
            }
            let osmem = try #require(services.osmemPID)
            kill(osmem, SIGSTOP)
            for _ in 0..<120 {
                sampleRSS()
                try await Self.sleep(0.25)
            }
            kill(osmem, SIGCONT)
            #expect(probe.wait(timeout: .seconds(300)) == 0)
            let manifest = try Manifest.load(path: manifestPath)
            let problems = try await bed.waitForExactTotals(manifest, timeout: .seconds(300))
            sampleRSS()
            #expect(problems.isEmpty, "\(problems)\n\(bed.nodeLogs())")
            #expect(peak > 0 && peak < bound, "peak RSS \(peak) bytes, bound \(bound)")
            let stats = try String(contentsOfFile: portFile + ".stats", encoding: .utf8)
            #expect(stats.contains("\"items_429\": ") && !stats.contains("\"items_429\": 0,"), "\(stats)")
            #expect(!stats.contains("\"requests_503\": 0,"), "\(stats)")
            #expect(node.output.contains("pausing"), "the node never paused while the store was away")
            #expect(node.output.contains("resuming"), "the node never resumed")
        }
    }

    @Test("malformed input: dead letters equal the manifest's malformed count, with reasons; good records exact")
    func malformed() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "malformed") { bed in
            bed.views = NodeTestBed.applicationViews
            try bed.startNode("a")
            let manifest = try bed.runProbe(Self.probeBase + ["--count", "300000", "--rate", "0", "--malformed", "0.01"])
            #expect(manifest.malformed.acknowledged > 10)
            let problems = try await bed.waitForExactTotals(manifest)
            #expect(problems.isEmpty, "\(problems)\n\(bed.nodeLogs())")
            let letters = try readDeadLetters(bed, expected: Int(manifest.malformed.acknowledged))
            #expect(letters.count == Int(manifest.malformed.acknowledged))
            #expect(letters.allSatisfy { !$0.reason.isEmpty && $0.sourceTopic == bed.topic })
            let reasons = Set(letters.map { String($0.reason.prefix { $0 != ":" }) })
            #expect(reasons.isSubset(of: ["malformed-protobuf", "invalid-batch", "empty-batch", "invalid-record", "invalid-utf8"]), "\(reasons)")
        }
    }

    struct DeadLetter {
        var reason: String
        var sourceTopic: String
        var offset: String
    }

    func readDeadLetters(_ bed: NodeTestBed, expected: Int) throws -> [DeadLetter] {
        let consumer = try KafkaConsumer(
            properties: ["bootstrap.servers": bed.services.kafkaBootstrap, "group.id": uniqueName("dlq-reader"), "auto.offset.reset": "earliest"],
            logger: .init(label: "dlq"))
        try consumer.subscribe([bed.deadLetterTopic])
        var out: [DeadLetter] = []
        let deadline = ContinuousClock.now + .seconds(60)
        var quietSince = ContinuousClock.now
        while ContinuousClock.now < deadline && (out.count < expected || ContinuousClock.now - quietSince < .seconds(2)) {
            try consumer.poll(timeoutMs: 200) { m in
                func text(_ h: String) -> String { m.header(h).map { String(decoding: $0, as: UTF8.self) } ?? "" }
                out.append(DeadLetter(reason: text("spate-reason"), sourceTopic: text("spate-source-topic"), offset: text("spate-source-offset")))
                quietSince = .now
            }
        }
        try consumer.close()
        return out
    }
}

@Suite("spate-node sketches against exact answers", .serialized, .timeLimit(.minutes(10)))
struct IngestSketchTests {
    @Test("distinct subscribers per (hour, application) from merged HLLs within 2%; RTT p50/p99 within the sketch's 1%")
    func sketches() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "sketches") { bed in
            bed.views = NodeTestBed.applicationViews
            try bed.startNode("a")
            let manifest = try bed.runProbe(
                ["--probes", "6", "--subscribers", "30000", "--start", "now-2h", "--speedup", "200", "--seed", "5", "--count", "300000", "--rate", "0"])
            let problems = try await bed.waitForExactTotals(manifest)
            #expect(problems.isEmpty, "\(problems)\n\(bed.nodeLogs())")

            // Exact answers from the records themselves.
            let messages = try readTopic(bootstrap: bed.services.kafkaBootstrap, topic: bed.topic, expected: manifest.messages.acknowledged)
            var subscribers: [String: Set<String>] = [:]
            var rtts: [String: [Double]] = [:]
            let decoder = RecordBatchDecoder()
            for list in messages.values {
                for bytes in list {
                    for r in try decoder.decode(bytes).records {
                        let key = "\(r.endTimeMs / 3_600_000 * 3_600_000)/\(r.application)"
                        subscribers[key, default: []].insert(r.subscriberID)
                        if r.rttMicros > 0 { rtts[key, default: []].append(Double(r.rttMicros)) }
                    }
                }
            }

            // The sketches from the hourly view, merged across partitions, probes and protocols.
            let es = try bed.elastic()
            defer { es.shutdown() }
            let result = try await es.searchRaw(index: "\(bed.prefix)-app_1h-*", body: ["size": 10_000, "_source": ["ts", "application", "subscribers_hll", "rtt_sketch"]])
            var hlls: [String: HyperLogLog] = [:]
            var sketches: [String: QuantileSketch] = [:]
            for hit in result["hits"]?["hits"]?.arrayValue ?? [] {
                let s = try #require(hit["_source"])
                let key = "\(s["ts"]!.int64Value!)/\(s["application"]!.stringValue!)"
                let h = try #require(HyperLogLog(serialized: Base64.decode(s["subscribers_hll"]!.stringValue!)!))
                let q = try #require(QuantileSketch(serialized: Base64.decode(s["rtt_sketch"]!.stringValue!)!))
                if hlls[key] == nil { hlls[key] = h } else { hlls[key]!.merge(h) }
                if sketches[key] == nil { sketches[key] = q } else { sketches[key]!.merge(q) }
            }
            #expect(Set(hlls.keys) == Set(subscribers.keys))
            #expect(subscribers.values.contains { $0.count > 5000 }, "some cardinality should be large enough to use the dense form")
            for (key, exact) in subscribers {
                let estimate = hlls[key]?.estimate ?? 0
                #expect(abs(estimate - Double(exact.count)) <= 0.02 * Double(exact.count), "\(key): \(estimate) vs \(exact.count)")
            }
            var checked = 0
            for (key, var values) in rtts where values.count >= 200 {
                values.sort()
                for q in [0.5, 0.99] {
                    let exact = values[Int((q * Double(values.count - 1)).rounded(.down))]
                    let got = try #require(sketches[key]?.quantile(q))
                    #expect(abs(got - exact) <= 0.01 * exact, "\(key) p\(Int(q * 100)): \(got) vs \(exact)")
                }
                checked += 1
            }
            #expect(checked > 20)
        }
    }
}
