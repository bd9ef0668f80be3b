import Foundation
import Logging
import SpateCodec
import SpateJSON
import SpateKafka
import SpateModel
import SpateProbe
import SpateTestSupport
import Synchronization
import Testing

/// The edges of ingest against real nodes: poison records, sums beyond what a double holds,
/// and a store that refuses writes.
@Suite("Ingest edges (real nodes)", .serialized, .timeLimit(.minutes(10)))
struct IngestEdgeTests {
    /// Publishes `batches` to exact partitions and waits for every acknowledgement.
    static func produce(_ bed: NodeTestBed, _ batches: [(partition: Int32, batch: RecordBatch)]) throws {
        let acked = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let producer = try KafkaProducer(
            properties: ["bootstrap.servers": bed.services.kafkaBootstrap, "linger.ms": "5", "message.max.bytes": "10000000"],
            logger: Logger(label: "edge-producer")
        ) { report in
            if report.error == nil { acked.add(1, ordering: .relaxed) } else { failed.add(1, ordering: .relaxed) }
        }
        let encoder = RecordBatchEncoder()
        for (i, b) in batches.enumerated() {
            try encoder.encode(b.batch).withUnsafeBytes { raw in
                try producer.send(topic: bed.topic, partition: b.partition, key: Array("edge".utf8), value: raw, token: UInt64(i))
            }
        }
        try producer.flush(timeout: .seconds(60))
        producer.close(timeout: .seconds(5))
        guard acked.load(ordering: .relaxed) == batches.count else {
            throw TestSupportError("\(failed.load(ordering: .relaxed)) of \(batches.count) messages not acknowledged")
        }
    }

    static func record(_ ts: UInt64, app: String, bytesUp: UInt64 = 1000, bytesDown: UInt64 = 2000) -> FlowRecord {
        var r = SampleRecords.make(count: 2)[1]
        r.startTimeMs = ts
        r.endTimeMs = ts
        r.application = app
        r.bytesUp = bytesUp
        r.bytesDown = bytesDown
        r.packetsUp = 3
        r.packetsDown = 4
        r.flows = 1
        return r
    }

    static func spate(_ args: [String]) throws -> (status: Int32, json: JSONValue?, output: String) {
        let r = try Shell.run(try Binaries.path("spate"), args + ["--format", "json"])
        return (r.status, try? JSONParser.parse(r.output), r.output)
    }

    /// Starts Tests/Tools/fault-proxy.py in front of the store, refusing writes as its mode
    /// file says (`none`, `item-403`, `401`, `413`); returns it, its port and the mode file.
    static func startRefusalProxy(_ bed: NodeTestBed, mode: String) async throws -> (ChildProcess, String, String) {
        let modeFile = bed.directory + "/proxy.mode"
        try mode.write(toFile: modeFile, atomically: true, encoding: .utf8)
        let portFile = bed.directory + "/proxy.port"
        let proxy = try ChildProcess(
            "/usr/bin/env",
            ["python3", Repository.root + "/Tests/Tools/fault-proxy.py", "--upstream", bed.services.elasticURL, "--port-file", portFile,
             "--item-429", "0", "--request-503", "0", "--mode-file", modeFile],
            logPath: bed.directory + "/proxy.log")
        var port = ""
        for _ in 0..<100 where port.isEmpty {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8)) ?? ""
            try await Task.sleep(for: .milliseconds(50))
        }
        guard !port.isEmpty else { throw TestSupportError("the fault proxy did not start: \(proxy.output)") }
        return (proxy, port, modeFile)
    }

    /// Starts a node with its query port on a free loopback port; returns it and its address.
    static func startNode(_ bed: NodeTestBed, _ name: String, elasticURL: String? = nil) async throws -> (ChildProcess, String) {
        let port = try freePort()
        bed.query = ["listen": "127.0.0.1:\(port)"]
        let node = try bed.startNode(name, elasticURL: elasticURL, workers: 1)
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if (try? RawConnection(port: port)) != nil { return (node, "127.0.0.1:\(port)") }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("the query port \(port) never opened:\n\(node.output)")
    }

    @Test("poison records (event time near 2^64 and 2^63, year 2100, counters near 2^64, NUL) are dead-lettered; both nodes stay up; totals exact")
    func poisonRecords() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), partitions: 2, name: "poison") { bed in
            bed.views = NodeTestBed.applicationViews
            let (a, address) = try await Self.startNode(bed, "a")
            let (b, _) = try await Self.startNode(bed, "b")
            let now = UInt64(Date().timeIntervalSince1970 * 1000)
            let poison: [(String, FlowRecord)] = [
                ("event-time-out-of-range", Self.record(UInt64.max - 5, app: "poison")),
                ("event-time-out-of-range", Self.record(1 << 63, app: "poison")),
                ("event-time-out-of-range", Self.record(4_102_444_800_000 + 1000, app: "poison")),
                ("counter-out-of-range", Self.record(now - 60_000, app: "poison", bytesUp: UInt64.max - 5)),
                ("invalid-string", Self.record(now - 60_000, app: "Zoom\0Evil")),
            ]
            var messages: [(partition: Int32, batch: RecordBatch)] = []
            for (i, p) in poison.enumerated() {
                for partition in Int32(0)..<2 {
                    messages.append((partition, RecordBatch(probeID: 9, sequence: UInt64(i), createdMs: now, records: [Self.record(now - 90_000, app: "good"), p.1])))
                }
            }
            // Good traffic after the poison, on both partitions: the partitions go on.
            var good = RecordBatch(probeID: 9, sequence: 99, createdMs: now, records: [])
            for k in 0..<200 { good.records.append(Self.record(now - 50_000 + UInt64(k), app: "good")) }
            messages.append((0, good))
            messages.append((1, good))
            try Self.produce(bed, messages)

            // Exactly the 400 good records of the last two messages count.
            let deadline = ContinuousClock.now + .seconds(120)
            var records: Int64 = -1
            while ContinuousClock.now < deadline {
                let r = try Self.spate(["totals", "--server", address, "--range", "30m"])
                records = r.json?["totals"]?["records"]?.int64Value ?? -1
                if records == 400 { break }
                try await Task.sleep(for: .seconds(2))
            }
            #expect(records == 400, "\(bed.nodeLogs())")
            let totals = try Self.spate(["totals", "--server", address, "--range", "30m"])
            let bytesUp: Int64 = totals.json?["totals"]?["bytes_up"]?.int64Value ?? -1
            #expect(bytesUp == Int64(400_000), "\(totals.output)")
            #expect(a.isRunning && b.isRunning, "\(bed.nodeLogs())")

            let letters = try IngestExactlyOnceTests().readDeadLetters(bed, expected: poison.count * 2)
            let reasons = letters.map { String($0.reason.prefix { $0 != ":" }) }.sorted()
            #expect(reasons == (poison.map(\.0) + poison.map(\.0)).sorted(), "\(letters.map(\.reason))")
            #expect(letters.allSatisfy { $0.reason.contains("record 1: ") }, "\(letters.map(\.reason))")
            #expect(a.isRunning && b.isRunning)
        }
    }

    @Test("sums past 2^53 are exact in totals, series and top; past 2^64 a clear error, and the node stays up")
    func exactBeyondDoubles() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), partitions: 4, name: "exact") { bed in
            try await Self.exactBeyondDoubles(bed)
        }
    }

    /// The body of `exactBeyondDoubles` (a function of its own: Swift 6.3's region checker
    /// crashes on it as a closure).
    static func exactBeyondDoubles(_ bed: NodeTestBed) async throws {
        bed.views = "  - {name: app_1m, bucket: 1m, dimensions: [application, probe], flush_interval: 1s}"
        let (node, address) = try await Self.startNode(bed, "a")
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let m0 = now - now % 60_000 - 10 * 60_000
        // "big53": 3 minutes × 100 records of ~2^46 bytes down: ~2^54.6 in all.
        var expected53 = [UInt64](repeating: 0, count: 3)
        var messages: [(partition: Int32, batch: RecordBatch)] = []
        for minute in 0..<3 {
            var batch = RecordBatch(probeID: 1, sequence: UInt64(minute), createdMs: now, records: [])
            for k in 0..<100 {
                let down = RecordLimits.maxBytes - UInt64(k * 7919 + minute)
                batch.records.append(Self.record(m0 + UInt64(minute) * 60_000 + UInt64(k), app: "big53", bytesUp: 1, bytesDown: down))
                expected53[minute] += down
            }
            messages.append((Int32(minute % 4), batch))
        }
        // "big64": 4 minutes × 4 partitions × 18,000 records of 2^46 bytes up: 288,000 × 2^46 > 2^64.
        for minute in 3..<7 {
            for partition in Int32(0)..<4 {
                for chunk in 0..<3 {
                    var batch = RecordBatch(probeID: 2, sequence: UInt64(minute * 100 + Int(partition) * 10 + chunk), createdMs: now, records: [])
                    for k in 0..<6000 {
                        batch.records.append(Self.record(m0 + UInt64(minute) * 60_000 + UInt64(k % 60_000), app: "big64", bytesUp: RecordLimits.maxBytes, bytesDown: 0))
                    }
                    messages.append((partition, batch))
                }
            }
        }
        try Self.produce(bed, messages)
        let window = ["--server", address, "--from", String(m0), "--to", String(m0 + 7 * 60_000)]
        let total53 = expected53.reduce(0, +)
        #expect(total53 > 1 << 53)
        var answer: JSONValue?
        let deadline = ContinuousClock.now + .seconds(180)
        while ContinuousClock.now < deadline {
            let r = try Self.spate(["totals", "--filter", "application=big53"] + window)
            answer = r.json?["totals"]
            let series64 = try Self.spate(["series", "--metric", "records", "--step", "1m", "--filter", "application=big64"] + window)
            let records64 = (series64.json?["series"]?[0]?["points"]?.arrayValue ?? []).compactMap { $0["value"]?.int64Value }.reduce(0, +)
            if answer?["records"]?.int64Value == 300 && records64 == 288_000 { break }
            try await Task.sleep(for: .seconds(2))
        }
        #expect(answer?["bytes_down"].flatMap { $0.int64Value }.map(UInt64.init) == total53, "\(String(describing: answer))\n\(bed.nodeLogs())")

        let series = try Self.spate(["series", "--metric", "bytes_down", "--step", "1m", "--filter", "application=big53"] + window)
        let points = (series.json?["series"]?[0]?["points"]?.arrayValue ?? []).filter { ($0["value"]?.int64Value ?? 0) > 0 }
        #expect(points.map { UInt64($0["value"]?.int64Value ?? 0) } == expected53, "\(series.output)")

        let top = try Self.spate(["top", "application", "--metric", "bytes_down", "--limit", "5", "--filter", "application=big53"] + window)
        let row = top.json?["rows"]?.arrayValue?.first { $0["value"]?.stringValue == "big53" }
        #expect(row?["metric"]?.int64Value.map(UInt64.init) == total53, "\(top.output)")

        // Per minute, big64 is 72,000 × 2^46 (exact); over the whole range it passes 2^64.
        let perMinute = try Self.spate(["series", "--metric", "bytes_up", "--step", "1m", "--filter", "application=big64"] + window)
        let values = (perMinute.json?["series"]?[0]?["points"]?.arrayValue ?? []).compactMap { $0["value"]?.int64Value }.filter { $0 > 0 }
        #expect(values.map(UInt64.init) == Array(repeating: 72_000 * RecordLimits.maxBytes, count: 4), "\(perMinute.output)")
        let over = try Self.spate(["totals", "--filter", "application=big64"] + window)
        #expect(over.status != 0)
        #expect(over.output.contains("exceeds 2^64 - 1"), "\(over.output)")
        #expect(node.isRunning, "\(bed.nodeLogs())")
        let after = try Self.spate(["totals", "--filter", "application=big53"] + window)
        #expect(after.status == 0 && node.isRunning)
    }

    @Test("a store refusing writes (403 write block, 401, 413) pauses and warns; nothing is dead-lettered; totals exact after")
    func storeRefusals() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), partitions: 2, name: "refuse") { bed in
            bed.views = NodeTestBed.applicationViews
            let (proxy, port, modeFile) = try await Self.startRefusalProxy(bed, mode: "none")
            defer {
                proxy.signal(SIGKILL)
                proxy.wait(timeout: .seconds(5))
            }
            let portFile = bed.directory + "/proxy.port"
            let (node, address) = try await Self.startNode(bed, "a", elasticURL: "http://127.0.0.1:\(port)")
            var warnings: [String: Bool] = [:]
            for mode in ["item-403", "401", "413"] {
                try mode.write(toFile: modeFile, atomically: true, encoding: .utf8)
                let (_, manifestPath) = try bed.startProbe(
                    ["--probes", "4", "--subscribers", "100", "--start", "now-5m", "--speedup", "10", "--count", "3000", "--rate", "0", "--seed", String(mode.count)],
                    name: "probe-\(mode)")
                _ = manifestPath
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline {
                    if mode == "413" {
                        // The writer halves a refused bulk at once: the refusal is over before a
                        // status could show it; the proxy's count shows it happened.
                        let stats = (try? String(contentsOfFile: portFile + ".stats", encoding: .utf8)) ?? ""
                        if stats.contains("\"413\"") {
                            warnings[mode] = true
                            break
                        }
                    } else if try Self.spate(["status", "--server", address]).output.contains("store refusing writes") {
                        warnings[mode] = true
                        break
                    }
                    try await Task.sleep(for: .seconds(1))
                }
                try await Task.sleep(for: .seconds(3))
            }
            try "none".write(toFile: modeFile, atomically: true, encoding: .utf8)
            #expect(warnings == ["item-403": true, "401": true, "413": true], "\(bed.nodeLogs())")
            var manifests: [Manifest] = []
            for mode in ["item-403", "401", "413"] {
                manifests.append(try Manifest.load(path: bed.directory + "/probe-\(mode)-manifest.json"))
            }
            let expected = manifests.reduce(UInt64(0)) { $0 + $1.totals.records }
            let client = try bed.elastic()
            defer { client.shutdown() }
            let deadline = ContinuousClock.now + .seconds(180)
            var stored: UInt64 = 0
            while ContinuousClock.now < deadline {
                stored = try await bed.minuteTotals(by: "application", client: client).values.reduce(0) { $0 + $1.records }
                if stored == expected { break }
                try await Task.sleep(for: .seconds(2))
            }
            #expect(stored == expected, "\(bed.nodeLogs())")
            let stats = try String(contentsOfFile: portFile + ".stats", encoding: .utf8)
            #expect(stats.contains("\"413\""), "\(stats)")
            let letters = try IngestExactlyOnceTests().readDeadLetters(bed, expected: 0)
            #expect(letters.isEmpty, "\(letters.map(\.reason))")
            let status = try Self.spate(["status", "--server", address])
            #expect(!status.output.contains("store refusing writes"), "\(status.output)")
            #expect(node.isRunning)
        }
    }

    @Test("a dead letter larger than a Kafka message arrives in pieces that reassemble to the exact bytes")
    func oversizedDeadLetter() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), partitions: 1, name: "bigdlq") { bed in
            bed.views = NodeTestBed.applicationViews
            bed.kafkaProperties = ["message.max.bytes": "20000"]
            _ = try await Self.startNode(bed, "a")
            var rng = SplitMix64(seed: 77)
            let value: [UInt8] = [0xFF, 0xFF] + (0..<100_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let producer = try KafkaProducer(
                properties: ["bootstrap.servers": bed.services.kafkaBootstrap, "message.max.bytes": "10000000"], logger: Logger(label: "big")
            ) { _ in }
            try value.withUnsafeBytes { try producer.send(topic: bed.topic, partition: 0, value: $0, token: 0) }
            try producer.flush(timeout: .seconds(30))
            producer.close(timeout: .seconds(5))

            let consumer = try KafkaConsumer(
                properties: ["bootstrap.servers": bed.services.kafkaBootstrap, "group.id": uniqueName("big-reader"), "auto.offset.reset": "earliest"],
                logger: Logger(label: "big-reader"))
            try consumer.subscribe([bed.deadLetterTopic])
            var whole = [UInt8](repeating: 0, count: value.count)
            var covered = 0
            var pieces = 0
            var reasons: Set<String> = []
            let deadline = ContinuousClock.now + .seconds(90)
            while ContinuousClock.now < deadline && covered < value.count {
                try consumer.poll(timeoutMs: 200) { m in
                    func text(_ h: String) -> String { m.header(h).map { String(decoding: $0, as: UTF8.self) } ?? "" }
                    guard let offset = Int(text("spate-piece-offset")), Int(text("spate-total-bytes")) == value.count,
                        offset + m.value.count <= whole.count
                    else { return }
                    for (i, b) in m.value.enumerated() { whole[offset + i] = b }
                    covered += m.value.count
                    pieces += 1
                    reasons.insert(String(text("spate-reason").prefix { $0 != ":" }))
                }
            }
            try consumer.close()
            #expect(covered == value.count, "\(bed.nodeLogs())")
            #expect(whole == value)
            #expect(pieces >= 5)
            #expect(reasons == ["malformed-protobuf"])
        }
    }

    @Test("SIGTERM while the store refuses writes: the node exits 1 within its grace and dead-letters nothing")
    func shutdownDuringRefusal() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), partitions: 2, name: "stop-refuse") { bed in
            bed.views = NodeTestBed.applicationViews
            let (proxy, port, _) = try await Self.startRefusalProxy(bed, mode: "401")
            defer {
                proxy.signal(SIGKILL)
                proxy.wait(timeout: .seconds(5))
            }
            let node = try bed.startNode("a", elasticURL: "http://127.0.0.1:\(port)", ingest: ["shutdown_grace": "5s"])
            _ = try bed.runProbe(["--probes", "4", "--subscribers", "50", "--start", "now-3m", "--speedup", "10", "--count", "2000", "--rate", "0"])
            // Wait until the refusals are seen, then stop the node.
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline && !node.output.contains("store refusal") {
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(node.output.contains("store refusal"), "\(bed.nodeLogs())")
            let stopped = ContinuousClock.now
            node.signal(SIGTERM)
            let status = node.wait(timeout: .seconds(30))
            let took = ContinuousClock.now - stopped
            #expect(status == 1, "exit \(String(describing: status))\n\(bed.nodeLogs())")
            #expect(took < .seconds(15), "stopping took \(took) with a 5 s grace")
            #expect(!node.output.contains("dead letter"), "\(bed.nodeLogs())")
            #expect(!node.output.contains("rejected for its content"), "\(bed.nodeLogs())")
            let letters = try IngestExactlyOnceTests().readDeadLetters(bed, expected: 0)
            #expect(letters.isEmpty, "\(letters.map(\.reason))")
        }
    }

    @Test("a probe that goes quiet: an idle marker closes its last top-K bucket, so top subscriber shows it")
    func quietProbe() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), partitions: 1, name: "quiet") { bed in
            bed.views = "  - {name: subscriber_5m, bucket: 5m, dimensions: [subscriber, application], flush_interval: 1s, top_k: 10}"
            let port = try freePort()
            bed.query = ["listen": "127.0.0.1:\(port)"]
            let node = try bed.startNode("a", ingest: ["allowed_lateness": "5s", "idle_marker_after": "2s"], workers: 1)
            let now = UInt64(Date().timeIntervalSince1970 * 1000)
            let boundary = now - now % 300_000  // the last 5-minute bucket ends here
            var batch = RecordBatch(probeID: 4, sequence: 1, createdMs: now, records: [])
            for k in 0..<30 {
                var r = Self.record(boundary - 30_000 + UInt64(k) * 1000, app: "quiet-app")
                r.subscriberID = "quiet-\(k % 3)"
                batch.records.append(r)
            }
            try Self.produce(bed, [(0, batch)])
            let window = ["--server", "127.0.0.1:\(port)", "--from", String(boundary - 300_000), "--to", String(boundary)]
            var rows: [JSONValue] = []
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                rows = try Self.spate(["top", "subscriber", "--metric", "records", "--limit", "5"] + window).json?["rows"]?.arrayValue ?? []
                if rows.count == 3 { break }
                try await Task.sleep(for: .seconds(1))
            }
            #expect(rows.compactMap { $0["value"]?.stringValue }.sorted() == ["quiet-0", "quiet-1", "quiet-2"], "\(bed.nodeLogs())")
            #expect(rows.compactMap { $0["metric"]?.int64Value } == [10, 10, 10])
            #expect(node.isRunning)
        }
    }
}
