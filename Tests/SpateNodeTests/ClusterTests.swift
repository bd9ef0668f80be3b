import Foundation
import SpateModel
import SpateProbe
import SpateTestSupport
import Testing

/// The operator's entry points (cluster/demo, up, status, down) and the node's Prometheus
/// endpoint, run for real: scripts, Tansu, osmem-server and spate-nodes.
@Suite("cluster scripts and /metrics", .serialized, .timeLimit(.minutes(10)))
struct ClusterTests {
    static func runDirectory(_ name: String) -> String {
        let dir = Repository.root + "/.run/tests/\(name)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func script(_ name: String, _ arguments: [String], log: String) throws -> ChildProcess {
        try ChildProcess(Repository.root + "/cluster/" + name, arguments, environment: ["SPATE_BIN_DIR": Binaries.directory], logPath: log)
    }

    /// Pids the run started (cluster/up and demo record them) that still exist.
    static func survivors(_ dir: String) -> [Int32] {
        let text = (try? String(contentsOfFile: dir + "/started.pids", encoding: .utf8)) ?? ""
        let pids = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        return pids.filter { pid in
            guard kill(pid, 0) == 0 else { return false }
            // A zombie is gone for every purpose but its parent's bookkeeping.
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            return !stat.contains(") Z ")
        }
    }

    static func json(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test("cluster/demo --for 60: data visible, 3 nodes own disjoint partitions covering the topic, nothing left running")
    func demo() throws {
        let dir = Self.runDirectory("demo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let demo = try Self.script("demo", ["--for", "60", "--run-dir", dir], log: dir + "/demo.out")
        var status = demo.wait(timeout: .seconds(540))
        if status == nil {
            // Too slow: its Ctrl-C path must still stop everything.
            demo.signal(SIGINT)
            status = demo.wait(timeout: .seconds(120))
            Issue.record("cluster/demo --for 60 did not finish within 540 s")
        }
        let nodeLogs = (1...3).map { (try? String(contentsOfFile: dir + "/nodes/node\($0)/node.log", encoding: .utf8))?.suffix(3000) ?? "" }
        let output = demo.output + "\n" + nodeLogs.joined(separator: "\n")
        #expect(status == 0, "cluster/demo failed:\n\(output)")
        #expect(output.contains("Top applications by bytes") && output.contains("Totals, last 15 min"), "\(output)")

        // Through `spate status --format json`, saved by the demo before it stopped.
        let cluster = try #require(try Self.json(dir + "/status.json")["cluster"] as? [[String: Any]])
        let owned = cluster.map { node in Set(((node["partitions"] as? [[String: Any]]) ?? []).compactMap { $0["partition"] as? Int }) }
        #expect(cluster.count == 3, "nodes listed: \(cluster.map { $0["node_id"] ?? "?" })")
        #expect(Set(cluster.compactMap { $0["node_id"] as? String }) == ["node1", "node2", "node3"])
        #expect(owned.reduce(0) { $0 + $1.count } == 12 && owned.reduce(Set<Int>()) { $0.union($1) } == Set(0..<12), "partitions \(owned)")
        #expect(cluster.allSatisfy { ($0["query_address"] as? String)?.hasPrefix("127.0.0.1:") == true })
        // Through `spate totals --format json`: the probes' records are there.
        let totals = try Self.json(dir + "/totals.json")
        let records = ((totals["totals"] as? [String: Any])?["records"] as? Int) ?? (totals["records"] as? Int) ?? 0
        #expect(records > 10_000, "totals: \(totals)")

        #expect(Self.survivors(dir).isEmpty, "still running after cluster/demo: \(Self.survivors(dir))")
    }

    @Test("cluster/up, status and down: two nodes come up and list each other; down leaves nothing running")
    func upStatusDown() throws {
        let dir = Self.runDirectory("up")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let up = try Self.script("up", ["--nodes", "2", "--partitions", "4", "--run-dir", dir], log: dir + "/up.out")
        let upStatus = up.wait(timeout: .seconds(240))
        #expect(upStatus == 0, "cluster/up failed:\n\(up.output)")
        let status = try Self.script("status", ["--run-dir", dir], log: dir + "/status.out")
        #expect(status.wait(timeout: .seconds(60)) == 0, "\(status.output)")
        for node in ["node1", "node2"] { #expect(status.output.contains("\(node): running"), "\(status.output)") }
        #expect(status.output.contains("tansu: running") && status.output.contains("osmem: running"))
        // README: `. DIR/cluster.env; spate status` (the child starts with no SPATE_* variable).
        let readme = try Shell.run("/bin/sh", ["-c", ". '\(dir)/cluster.env'; '\(try Binaries.path("spate"))' status --timeout 20"])
        #expect(readme.status == 0, "\(readme.output)")
        for node in ["node1", "node2"] { #expect(readme.output.contains(node), "\(readme.output)") }

        let down = try Self.script("down", ["--run-dir", dir], log: dir + "/down.out")
        #expect(down.wait(timeout: .seconds(120)) == 0, "\(down.output)")
        #expect(Self.survivors(dir).isEmpty, "still running after cluster/down: \(Self.survivors(dir))\n\(down.output)")
        let after = try Self.script("status", ["--run-dir", dir], log: dir + "/status-after.out")
        #expect(after.wait(timeout: .seconds(60)) == 3, "cluster/status after down: \(after.output)")
    }

    @Test("/metrics parses as Prometheus text exposition; its ingest counter equals the manifest's record count")
    func metrics() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "metrics") { bed in
            bed.views = NodeTestBed.applicationViews
            let port = try freePort()
            let node = try bed.startNode("a", extra: "metrics:\n  listen: \"127.0.0.1:\(port)\"\n")
            let manifest = try bed.runProbe(IngestExactlyOnceTests.probeBase + ["--count", "120000", "--rate", "0"])
            let problems = try await bed.waitForExactTotals(manifest)
            #expect(problems.isEmpty, "\(problems)\n\(bed.nodeLogs())")

            let scrape = try Shell.run("/usr/bin/curl", ["-sS", "-D", "-", "--max-time", "10", "http://127.0.0.1:\(port)/metrics"])
            #expect(scrape.status == 0, "\(scrape.output)")
            let parts = scrape.output.components(separatedBy: "\r\n\r\n")
            let (head, body) = (parts.first ?? "", parts.dropFirst().joined(separator: "\r\n\r\n"))
            #expect(head.hasPrefix("HTTP/1.1 200") && head.lowercased().contains("content-type: text/plain; version=0.0.4"), "\(head)")
            let samples = try PrometheusText.parse(body)
            #expect(samples["spate_ingest_records_total"] == Double(manifest.totals.records), "\(body)")
            #expect(samples["spate_ingest_messages_malformed_total"] == 0)
            #expect((samples["spate_store_documents_written_total"] ?? 0) > 0)
            #expect((samples["spate_store_bulk_duration_seconds_count"] ?? 0) > 0)
            #expect(samples.keys.contains { $0.hasPrefix("spate_partition_lag_records{partition=") })
            let missing = try Shell.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/nope"])
            #expect(missing.output.hasSuffix("404"))

            // A client that pipelines scrapes and never reads the answers is closed once 1 MiB
            // of them waits unsent; before, every answer (tens of KB) stayed in the node.
            let before = ChildProcess.residentBytes(pid: node.pid) ?? 0
            let flood = try RawConnection(port: port)
            let request = Array("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
            for _ in 0..<200 { try? flood.send(Array(repeating: request, count: 100).flatMap { $0 }) }
            try await Task.sleep(for: .seconds(2))
            let grown = (ChildProcess.residentBytes(pid: node.pid) ?? 0) - before
            let answered = try flood.readUntilClosed(timeout: .seconds(30))
            #expect(flood.closedByPeer, "\(answered.count) bytes answered, connection still open")
            #expect(grown < 64 << 20, "the node grew by \(grown) bytes")

            // At most 64 connections at once: the next ones are closed as they arrive.
            var held: [RawConnection] = []
            for _ in 0..<70 { held.append(try RawConnection(port: port)) }
            var served = 0
            for c in held {
                try? c.send(Array("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
                if let head = try? c.read(count: 12, timeout: .seconds(5)), head == Array("HTTP/1.1 200".utf8) { served += 1 }
            }
            #expect(served == 64)
            for c in held { c.close() }
            held.removeAll()
            try await Task.sleep(for: .milliseconds(500))
            let again = try Shell.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "http://127.0.0.1:\(port)/healthz"])
            #expect(again.output.hasSuffix("200"), "\(again.output)")
            _ = node
        }
    }
}

/// A strict reader of the Prometheus text exposition format (0.0.4): `# HELP`/`# TYPE` lines
/// with known types, samples `name{label="value",…} number`; anything else is an error.
enum PrometheusText {
    struct Malformed: Error, CustomStringConvertible {
        var line: String
        var description: String { "not Prometheus text exposition: \(line)" }
    }

    /// Samples keyed by `name` or `name{labels}` as written.
    static func parse(_ text: String) throws -> [String: Double] {
        var out: [String: Double] = [:]
        var typed: Set<String> = []
        let name = #/[a-zA-Z_:][a-zA-Z0-9_:]*/#
        let sample = #/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? ([-+0-9.eE]+|NaN|[+-]Inf)$/#
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# TYPE ") {
                let f = line.split(separator: " ")
                guard f.count == 4, f[2].wholeMatch(of: name) != nil, ["counter", "gauge", "histogram", "summary", "untyped"].contains(String(f[3])),
                    typed.insert(String(f[2])).inserted
                else { throw Malformed(line: String(line)) }
            } else if line.hasPrefix("# HELP ") || line.hasPrefix("#") {
                continue
            } else {
                guard let m = line.wholeMatch(of: sample), let v = Double(m.3.replacingOccurrences(of: "Inf", with: "inf")) else {
                    throw Malformed(line: String(line))
                }
                out[String(m.1) + String(m.2 ?? "")] = v
            }
        }
        guard !out.isEmpty else { throw Malformed(line: "(no samples)") }
        return out
    }
}
