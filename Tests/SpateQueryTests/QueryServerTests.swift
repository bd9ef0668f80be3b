import Foundation
import NIOCore
import SpateClient
import SpateElastic
import SpateJSON
import SpateModel
import SpateProbe
import SpateTestSupport
import SpateWire
import Testing

func bytes(_ hex: String) -> [UInt8] { hex.split(separator: " ").map { UInt8($0, radix: 16)! } }

/// Starts a spate-node whose store is `elasticURL` and waits for its query port.
func startQueryNode(_ bed: NodeTestBed, elasticURL: String? = nil, query: [String: String] = [:], ingest: [String: String] = [:], name: String = "q") async throws -> (ChildProcess, String) {
    let port = try freePort()
    var q = ["listen": "127.0.0.1:\(port)"]
    q.merge(query) { _, new in new }
    bed.query = q
    let node = try bed.startNode(name, elasticURL: elasticURL, ingest: ingest, workers: 1)
    let address = "127.0.0.1:\(port)"
    // Generous: with other builds on a 2-core machine a debug node has taken over 20 s.
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline && node.isRunning {
        if (try? RawConnection(port: port)) != nil { return (node, address) }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw TestSupportError("the node's query port \(port) never opened:\n\(node.output)")
}

@Suite("Query server: protocol limits and abuse", .serialized, .timeLimit(.minutes(5)))
struct QueryServerAbuseTests {
    @Test("an oversized frame length gets GOAWAY RESOURCE_EXHAUSTED and the connection closes, without the body being sent")
    func oversized() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "abuse-size") { bed in
            let (_, address) = try await startQueryNode(bed)
            let c = try RawConnection(address: address)
            try c.send(FrameCodec.preface + bytes("01 02 00 00 00 00 00 01 40 00 00 00"))  // 1 GiB announced
            let reply = try c.readUntilClosed(timeout: .seconds(5))
            #expect(Array(reply.prefix(8)) == FrameCodec.preface)
            var buffer = ByteBuffer(bytes: reply.dropFirst(8))
            let frame = try #require(try FrameCodec.decode(&buffer))
            #expect(frame.type == .goAway)
            let (_, error) = try WireMessages.decodeGoAway(frame.payload)
            #expect(error.code == .resourceExhausted)
            #expect(c.closedByPeer)
        }
    }

    @Test("a store claiming more hits than it returns: the sketch query fails INTERNAL at once instead of splitting its range")
    func searchTotalsBeyondHits() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "abuse-total") { bed in
            bed.views = NodeTestBed.applicationViews
            let claim = bed.directory + "/search-total"
            try "".write(toFile: claim, atomically: true, encoding: .utf8)
            let proxy = try CountingProxy(upstream: bed.services.elasticURL, directory: bed.directory, searchTotal: claim)
            defer { proxy.stop() }
            let (_, address) = try await startQueryNode(bed, elasticURL: proxy.url)
            _ = try bed.runProbe(["--probes", "2", "--subscribers", "100", "--start", "now-10m", "--speedup", "20", "--count", "5000", "--rate", "0"])
            let client = try await SpateClient.connect(try ClientConfiguration(address: address))
            let query = Query(range: .last(ms: 86_400_000), kind: .rttQuantiles([0.5]))
            try "1000000000".write(toFile: claim, atomically: true, encoding: .utf8)
            let before = proxy.searches
            let e = await #expect(throws: RPCError.self) { _ = try await client.query(query, timeout: .seconds(30)) }
            // It was split, a search per halving down to one bucket, and then answered
            // RESOURCE_EXHAUSTED ("narrow the filters").
            #expect(e?.code == .internal, "\(String(describing: e)); \(proxy.searches - before) searches")
            await client.close()
        }
    }

    @Test("a missing or wrong token is UNAUTHENTICATED; the right one works")
    func token() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "abuse-token") { bed in
            let tokenFile = bed.directory + "/token"
            try "t0ps3cret\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let (_, address) = try await startQueryNode(bed, query: ["token_file": tokenFile])
            for token in [nil, "wrong"] as [String?] {
                let client = try await SpateClient.connect(try ClientConfiguration(address: address, token: token))
                let e = await #expect(throws: RPCError.self) { _ = try await client.views() }
                #expect(e?.code == .unauthenticated)
                await client.close()
            }
            let client = try await SpateClient.connect(try ClientConfiguration(address: address, token: "t0ps3cret"))
            #expect(try await client.views().map(\.name).contains("app_1m"))
            await client.close()
            // The CLI takes the token from a file and exits non-zero without it.
            let denied = try Shell.run(try Binaries.path("spate"), ["views", "--server", address])
            #expect(denied.status == 1 && denied.output.contains("UNAUTHENTICATED"), "\(denied.output)")
            let allowed = try Shell.run(try Binaries.path("spate"), ["views", "--server", address, "--token-file", tokenFile, "--format", "json"])
            #expect(allowed.status == 0, "\(allowed.output)")
        }
    }

    @Test("TLS: the CLI verifies the server against its CA; a plaintext client and a wrong CA fail cleanly")
    func tls() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "abuse-tls") { bed in
            let dir = bed.directory
            for (name, cn) in [("ca", "Spate Test CA"), ("other-ca", "Other CA")] {
                let r = try Shell.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=\(cn)",
                    "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).pem"])
                #expect(r.status == 0, "\(r.output)")
            }
            try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: "\(dir)/san.ext", atomically: true, encoding: .utf8)
            for args in [
                ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "\(dir)/server.key", "-out", "\(dir)/server.csr"],
                ["x509", "-req", "-in", "\(dir)/server.csr", "-CA", "\(dir)/ca.pem", "-CAkey", "\(dir)/ca.key", "-CAcreateserial", "-days", "2",
                 "-extfile", "\(dir)/san.ext", "-out", "\(dir)/server.pem"],
            ] {
                let r = try Shell.run("/usr/bin/openssl", args)
                #expect(r.status == 0, "\(r.output)")
            }
            let (_, address) = try await startQueryNode(bed, query: ["tls_cert_file": "\(dir)/server.pem", "tls_key_file": "\(dir)/server.key"])
            let port = address.split(separator: ":").last!
            let good = try Shell.run(try Binaries.path("spate"), ["views", "--server", "localhost:\(port)", "--ca-file", "\(dir)/ca.pem"])
            #expect(good.status == 0, "\(good.output)")
            #expect(good.output.contains("app_1m"))
            let wrongCA = try Shell.run(try Binaries.path("spate"), ["views", "--server", "localhost:\(port)", "--ca-file", "\(dir)/other-ca.pem"])
            #expect(wrongCA.status == 1, "\(wrongCA.output)")
            #expect(wrongCA.output.contains("certificate"), "\(wrongCA.output)")
            let plain = try Shell.run(try Binaries.path("spate"), ["views", "--server", address, "--timeout", "5"])
            #expect(plain.status == 1, "\(plain.output)")
            #expect(plain.output.contains("UNAVAILABLE"), "\(plain.output)")
        }
    }

    @Test("an expired deadline is DEADLINE_EXCEEDED and the call's work is cancelled")
    func deadline() async throws {
        let hole = try BlackHoleServer()
        defer { hole.close() }
        try await NodeTestBed.with(services: try TestServices.shared(), name: "abuse-deadline") { bed in
            let (_, address) = try await startQueryNode(bed, elasticURL: "http://127.0.0.1:\(hole.port)")
            let client = try await SpateClient.connect(try ClientConfiguration(address: address))
            let started = ContinuousClock.now
            let e = await #expect(throws: RPCError.self) { _ = try await client.query(Query(range: .last(ms: 3_600_000), kind: .totals), timeout: .milliseconds(300)) }
            #expect(e?.code == .deadlineExceeded)
            #expect(ContinuousClock.now - started < .seconds(5))
            // The connection is still usable.
            #expect(try await client.views().isEmpty == false)
            await client.close()
        }
    }

    @Test("500 idle connections stay open while another client's queries succeed")
    func manyIdleConnections() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "abuse-idle") { bed in
            let (_, address) = try await startQueryNode(bed)
            var idle: [RawConnection] = []
            for _ in 0..<500 {
                let c = try RawConnection(address: address)
                try c.send(FrameCodec.preface)
                idle.append(c)
            }
            let client = try await SpateClient.connect(try ClientConfiguration(address: address))
            for _ in 0..<20 {
                let r = try await client.query(Query(range: .last(ms: 900_000), kind: .totals), timeout: .seconds(10))
                #expect(r.view == "app_1m")
            }
            #expect(try await client.status().node.nodeID == "q")
            await client.close()
            // The idle ones were answered with the preface and are still open.
            #expect(idle.allSatisfy { (try? $0.read(count: 8, timeout: .seconds(5))) == FrameCodec.preface })
            idle.forEach { $0.close() }
        }
    }

    @Test("unknown methods, views and dimensions get clear errors; the CLI exits non-zero")
    func errors() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "abuse-errors") { bed in
            let (_, address) = try await startQueryNode(bed)
            let client = try await SpateClient.connect(try ClientConfiguration(address: address))
            var unknownMethod: RPCError?
            do { for try await _ in client.call("Explode", request: []) {} } catch let e as RPCError { unknownMethod = e }
            #expect(unknownMethod?.code == .unimplemented)
            let badView = await #expect(throws: RPCError.self) { _ = try await client.query(Query(range: .last(ms: 1000), view: "nope", kind: .totals)) }
            #expect(badView?.code == .notFound)
            let noView = await #expect(throws: RPCError.self) {
                _ = try await client.query(Query(range: .last(ms: 1000), kind: .top(dimension: .country, metric: .bytes, limit: 5)))
            }
            #expect(noView?.code == .invalidArgument)
            // Calls started at once from concurrent tasks, 90 per connection (under the
            // 100-stream limit) on 8 connections: stream ids must reach the server in
            // increasing order, or it ends the connection (a client bug once).
            var clients: [SpateClient] = []
            for _ in 0..<8 { clients.append(try await SpateClient.connect(try ClientConfiguration(address: address))) }
            let answered = await withTaskGroup(of: Int.self) { group in
                for c in clients {
                    for _ in 0..<90 { group.addTask { ((try? await c.views()) ?? []).count } }
                }
                return await group.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
            }
            #expect(answered == 720, "only \(answered) of 720 concurrent calls answered")
            for c in clients { await c.close() }
            await client.close()
            let cli = try Shell.run(try Binaries.path("spate"), ["top", "nosuchdimension", "--server", address])
            #expect(cli.status != 0 && cli.output.contains("unknown dimension"), "\(cli.output)")
            let view = try Shell.run(try Binaries.path("spate"), ["totals", "--view", "nope", "--server", address])
            #expect(view.status == 2 && view.output.contains("NOT_FOUND"), "\(view.output)")
            let range = try Shell.run(try Binaries.path("spate"), ["totals", "--range", "yesterday", "--server", address])
            #expect(range.status != 0 && range.output.contains("--range"), "\(range.output)")
        }
    }
}

@Suite("Query correctness against the manifest", .serialized, .timeLimit(.minutes(8)))
struct QueryCorrectnessTests {
    static func run(_ args: [String]) throws -> JSONValue {
        let r = try Shell.run(try Binaries.path("spate"), args + ["--format", "json"])
        guard r.status == 0 else { throw TestSupportError("spate \(args): \(r.output)") }
        return try JSONParser.parse(r.output)
    }

    @Test("spate top / totals / series (JSON) equal the manifest exactly for the same ranges")
    func matchesManifest() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "q-correct") { bed in
            bed.views = NodeTestBed.applicationViews
            let (_, address) = try await startQueryNode(bed)
            let manifest = try bed.runProbe(["--probes", "6", "--subscribers", "500", "--start", "2026-11-20T10:00:00Z", "--speedup", "150", "--seed", "3", "--count", "150000", "--rate", "0"])
            #expect(try await bed.waitForExactTotals(manifest).isEmpty)
            let minutes = Set(manifest.byMinuteApplication.map(\.minuteMs)).sorted()
            #expect(minutes.count >= 3)
            let from = String(minutes.first!)
            let to = String(minutes.last! + 60_000)
            let base = ["--server", address, "--from", from, "--to", to]

            let totals = try Self.run(["totals"] + base)["totals"]!
            #expect(totals["records"]?.int64Value == Int64(manifest.totals.records))
            #expect(totals["flows"]?.int64Value == Int64(manifest.totals.flows))
            #expect(totals["bytes_up"]?.int64Value == Int64(manifest.totals.bytesUp))
            #expect(totals["bytes_down"]?.int64Value == Int64(manifest.totals.bytesDown))
            #expect(totals["packets"]?.int64Value == Int64(manifest.totals.packets))

            var perApp: [String: FlowTotals] = [:]
            for r in manifest.byMinuteApplication { perApp[r.application, default: FlowTotals()].add(r.totals) }
            let top = try Self.run(["top", "application", "--metric", "bytes", "--limit", "200"] + base)
            let rows = top["rows"]?.arrayValue ?? []
            #expect(rows.count == perApp.count)
            for row in rows {
                let app = row["value"]!.stringValue!
                let t = try #require(perApp[app])
                #expect(row["metric"]?.int64Value == Int64(t.bytesUp + t.bytesDown), "\(app)")
                #expect(row["totals"]?["records"]?.int64Value == Int64(t.records), "\(app)")
                #expect(row["totals"]?["packets"]?.int64Value == Int64(t.packets), "\(app)")
            }
            let metrics = rows.map { $0["metric"]!.int64Value! }
            #expect(metrics == metrics.sorted(by: >), "top-N is ordered by the metric")

            var perMinute: [UInt64: UInt64] = [:]
            for r in manifest.byMinuteApplication { perMinute[r.minuteMs, default: 0] += r.totals.records }
            let series = try Self.run(["series", "--metric", "records", "--step", "1m"] + base)
            let points = series["series"]?[0]?["points"]?.arrayValue ?? []
            #expect(points.count == minutes.count)
            for p in points {
                #expect(UInt64(p["value"]!.int64Value!) == perMinute[UInt64(p["ts_ms"]!.int64Value!)] ?? 0)
            }
            // One application, filtered, per minute.
            let youtube = manifest.byMinuteApplication.filter { $0.application == "youtube" }
            let filtered = try Self.run(["series", "--metric", "bytes_down", "--step", "1m", "--filter", "application=youtube"] + base)
            let fp = filtered["series"]?[0]?["points"]?.arrayValue ?? []
            for p in fp {
                let ts = UInt64(p["ts_ms"]!.int64Value!)
                #expect(UInt64(p["value"]!.int64Value!) == youtube.first { $0.minuteMs == ts }?.totals.bytesDown ?? 0)
            }
        }
    }

    @Test("50 watchers of one dashboard cost the store the same requests per refresh as 1 watcher")
    func sharedWatch() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "q-watch") { bed in
            bed.views = NodeTestBed.applicationViews
            let proxy = try CountingProxy(upstream: bed.services.elasticURL, directory: bed.directory)
            defer { proxy.stop() }
            let (_, address) = try await startQueryNode(bed, elasticURL: proxy.url)
            _ = try bed.runProbe(["--probes", "4", "--subscribers", "200", "--start", "now-10m", "--speedup", "20", "--count", "20000", "--rate", "0"])
            let widgets = [
                Query(range: .last(ms: 900_000), kind: .top(dimension: .application, metric: .bytes, limit: 10)),
                Query(range: .last(ms: 3_600_000), kind: .series(metric: .bytes, stepMs: 0, splitBy: .application, splitLimit: 5)),
                Query(range: .last(ms: 900_000), kind: .totals),
            ]
            /// Store searches made while `viewers` clients watch every widget for `seconds`.
            func searches(viewers: Int, seconds: Int) async throws -> Int {
                var clients: [SpateClient] = []
                for _ in 0..<viewers { clients.append(try await SpateClient.connect(try ClientConfiguration(address: address))) }
                let ready = Counter()
                let tasks = clients.flatMap { client in
                    widgets.map { w in
                        Task {
                            var first = true
                            for try await _ in client.watch(w, refreshMs: 1000) where first {
                                first = false
                                ready.add()
                            }
                        }
                    }
                }
                while ready.value < viewers * widgets.count { try await Task.sleep(for: .milliseconds(50)) }
                let before = proxy.searches
                try await Task.sleep(for: .seconds(seconds))
                let count = proxy.searches - before
                tasks.forEach { $0.cancel() }
                for c in clients { await c.close() }
                try await Task.sleep(for: .seconds(2))  // loops stop when their watchers leave
                return count
            }
            // Warm: the first watch of a query fills its closed slots and reads the checkpoints;
            // those caches outlive the loops, so both measurements start from the same state.
            _ = try await searches(viewers: 1, seconds: 4)
            let one = try await searches(viewers: 1, seconds: 8)
            let fifty = try await searches(viewers: 50, seconds: 8)
            #expect(one > 0)
            // Same refresh loops, same caches: 50 viewers cost no more than one refresh cycle of
            // the 3 widgets above what 1 viewer costs.
            #expect(fifty <= one + widgets.count, "1 viewer: \(one) searches, 50 viewers: \(fifty)")
        }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}
