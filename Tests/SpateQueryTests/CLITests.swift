import Foundation
import SpateJSON
import SpateTestSupport
import Testing

/// Runs the real `spate` binary; nil status when it did not exit within `limit` (a hang).
func runSpate(_ arguments: [String], limit: Duration = .seconds(120)) throws -> (status: Int32?, output: String) {
    let log = NSTemporaryDirectory() + "/\(uniqueName("spate-cli")).log"
    defer { unlink(log) }
    let child = try ChildProcess(try Binaries.path("spate"), arguments, logPath: log)
    let status = child.wait(timeout: limit)
    if status == nil {
        child.signal(SIGKILL)
        child.wait(timeout: .seconds(10))
    }
    return (status, child.output)
}

/// What an operator sees from the CLI without a node: invalid input exits 2 naming the option,
/// big numbers are refused (never a crash), and nothing waits past --timeout.
@Suite("spate CLI: exit codes, numbers, deadlines", .timeLimit(.minutes(5)))
struct CLIInputTests {
    /// Against a port where nothing listens: input the CLI wrongly accepted would exit 1.
    static let nowhere = ["--server", "127.0.0.1:1"]

    @Test(
        "invalid input exits 2 and names the option",
        arguments: [
            (["totals", "--range", "1e30d"], "--range"),
            (["totals", "--range", "nan"], "--range"),
            (["watch", "totals", "--refresh", "50d"], "--refresh"),
            (["watch", "totals", "--seconds", "1e30"], "--seconds"),
            (["totals", "--timeout", "1e30"], "--timeout"),
            (["totals", "--timeout", "0"], "--timeout"),
            (["top", "application", "--limit", "0"], "--limit"),
            (["watch", "top", "application", "--limit", "99999999"], "--limit"),
            (["series", "--step", "1e30d"], "--step"),
            (["series", "--split-limit", "3"], "--split-limit"),
            (["series", "--split-by", "application", "--split-limit", "100000"], "--split-limit"),
            (["totals", "--from", "1900-01-01T00:00:00Z"], "--from"),
            (["totals", "--to", "now+1e30d"], "--to"),
            (["totals", "--from", "now-3h", "--to", "now-1h", "--range", "1h"], "--range"),
            (["totals", "--filter", "application~a\\"], "--filter"),
            (["totals", "--filter", "nosuch=1"], "unknown dimension 'nosuch'"),
            (["top", "nosuchdimension"], "unknown dimension"),
            (["watch", "totals", "--metric", "records"], "--metric"),
            (["watch", "--dashboard", "cluster/dashboards/traffic.yaml", "--range", "1h"], "--range"),
            (["watch", "--dashboard", "cluster/dashboards/traffic.yaml", "--format", "csv"], "csv"),
            (["totals", "--nosuch"], "--nosuch"),
        ])
    func invalidInput(arguments: [String], mention: String) throws {
        let args = arguments.map { $0.hasPrefix("cluster/") ? Repository.root + "/" + $0 : $0 }
        let run = try runSpate(args + Self.nowhere)
        #expect(run.status == 2, "\(arguments): \(run.output)")
        #expect(run.output.contains(mention), "\(arguments): \(run.output)")
        #expect(!run.output.contains("Fatal error") && !run.output.contains("backtrace"), "\(run.output)")
    }

    @Test("a dashboard that expands without bound (nested YAML aliases), a huge one, or not a file: exit 2 at once")
    func dashboardBombs() throws {
        let dir = NSTemporaryDirectory() + "/spate-dash-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // 30 levels of aN: &aN [*aN-1, *aN-1]: 1 KB of text, 2^30 nodes once expanded.
        var bomb = "a0: &a0 [\"\(String(repeating: "x", count: 40))\"]\n"
        for n in 1..<30 { bomb += "a\(n): &a\(n) [*a\(n - 1), *a\(n - 1)]\n" }
        bomb += "title: *a29\nwidgets:\n  - {title: T, totals: {}, range: 15m}\n"
        let huge = "title: T\nwidgets:\n  - {title: T, totals: {}, range: 15m}\n# " + String(repeating: "x", count: 2 << 20) + "\n"
        for (name, text, mention) in [("bomb", bomb, "more than 100000 YAML nodes"), ("huge", huge, "larger than 1048576 bytes")] {
            try text.write(toFile: "\(dir)/\(name).yaml", atomically: true, encoding: .utf8)
            let started = ContinuousClock.now
            let run = try runSpate(["watch", "--dashboard", "\(dir)/\(name).yaml", "--once"] + Self.nowhere, limit: .seconds(60))
            #expect(run.status == 2 && run.output.contains(mention), "\(name): \(run.output)")
            #expect(ContinuousClock.now - started < .seconds(20), "\(name) took \(ContinuousClock.now - started)")
        }
        let device = try runSpate(["watch", "--dashboard", "/dev/zero", "--once"] + Self.nowhere, limit: .seconds(60))
        #expect(device.status == 2 && device.output.contains("not a regular file"), "\(device.output)")
    }

    @Test("the help text states the exit codes the CLI uses")
    func helpStatesExitCodes() throws {
        let help = try runSpate(["--help"])
        #expect(help.status == 0)
        let text = help.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(text.contains("Exit codes: 0 ok; 1 server or connection error"), "\(help.output)")
        #expect(text.contains("2 invalid input"), "\(help.output)")
    }

    @Test("a port that accepts TCP but never answers: status, totals and watch --once end at --timeout with exit 1")
    func silentServer() throws {
        let hole = try BlackHoleServer()
        defer { hole.close() }
        let server = ["--server", "127.0.0.1:\(hole.port)", "--timeout", "2"]
        for command in [["status"], ["totals"], ["watch", "totals", "--once"]] {
            let run = try runSpate(command + server, limit: .seconds(60))
            #expect(run.status == 1, "\(command): \(run.output)")
            #expect(run.output.contains("within 2"), "\(command): \(run.output)")
        }
    }

    @Test("nothing listening: exit 1 with UNAVAILABLE")
    func refused() throws {
        let run = try runSpate(["views"] + Self.nowhere)
        #expect(run.status == 1 && run.output.contains("UNAVAILABLE"), "\(run.output)")
    }
}

/// Input the CLI must honour, against a real node.
@Suite("spate CLI against a node: every input honoured", .serialized, .timeLimit(.minutes(5)))
struct CLINodeTests {
    @Test("--to with --range ends the range at --to; filter values keep every character; watch --once exits by the rule; CSV is CSV")
    func honoured() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "cli-input") { bed in
            let (_, address) = try await startQueryNode(bed)
            let server = ["--server", address, "--timeout", "20"]

            let now = Date().timeIntervalSince1970 * 1000
            let ranged = try runSpate(["totals", "--range", "1h", "--to", "now-2h", "--format", "json"] + server)
            #expect(ranged.status == 0, "\(ranged.output)")
            let json = try JSONParser.parse(Array(ranged.output.utf8))
            let end = json["end_ms"]?.doubleValue ?? 0
            let start = json["start_ms"]?.doubleValue ?? 0
            #expect(end < now - 7_000_000 && end > now - 7_600_000, "end \(end), now \(now): \(ranged.output)")
            #expect(end - start <= 3_700_000 && end - start >= 3_500_000, "\(ranged.output)")

            for filter in ["application=Skype~Teams", "application!=a=b", "application^=x,y", "application~Skype~Teams,a\\,b"] {
                let run = try runSpate(["totals", "--filter", filter] + server)
                #expect(run.status == 0, "\(filter): \(run.output)")
            }

            let nosuch = try runSpate(["watch", "totals", "--view", "nosuch", "--once"] + server)
            #expect(nosuch.status == 2 && nosuch.output.contains("NOT_FOUND"), "\(nosuch.output)")
            let csv = try runSpate(["watch", "totals", "--once", "--format", "csv"] + server)
            #expect(csv.status == 0, "\(csv.output)")
            #expect(csv.output.hasPrefix("records,flows,bytes_up,bytes_down,packets_up,packets_down,rtt_count,rtt_sum_us\n"), "\(csv.output)")
            let once = try runSpate(["watch", "totals", "--once"] + server)
            #expect(once.status == 0, "\(once.output)")
        }
    }
    @Test("a live watch reconnects after the node restarts and shows answers again, not the lost connection")
    func watchReconnects() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "cli-reconnect") { bed in
            let (node, address) = try await startQueryNode(bed)
            let log = bed.directory + "/watch.log"
            let watch = try ChildProcess(try Binaries.path("spate"), ["watch", "totals", "--format", "json", "--refresh", "1s", "--server", address], logPath: log)
            defer { if watch.isRunning { watch.signal(SIGKILL) } }
            try await Task.sleep(for: .seconds(3))
            node.signal(SIGTERM)
            #expect(node.wait(timeout: .seconds(60)) != nil)
            try await Task.sleep(for: .seconds(2))
            // The same configuration, so the same query port.
            let restarted = try bed.startNode("q", workers: 1)
            for _ in 0..<200 where (try? RawConnection(address: address)) == nil { try await Task.sleep(for: .milliseconds(100)) }
            #expect(restarted.isRunning, "\(restarted.output)")
            try await Task.sleep(for: .seconds(5))
            watch.signal(SIGINT)
            #expect(watch.wait(timeout: .seconds(30)) == 0, "\(watch.output)")
            let json = try JSONParser.parse(Array(watch.output.utf8))
            let widget = json["widgets"]?[0]
            #expect(widget?["result"] != nil && widget?["error"] == nil, "\(watch.output)")
        }
    }

    @Test("a topic that does not exist is a warning in spate status")
    func missingTopic() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "cli-topic") { bed in
            let port = try freePort()
            bed.query = ["listen": "127.0.0.1:\(port)"]
            let missing = uniqueName("missing") + ".flows"
            let yaml = bed.configuration(node: "t", workers: 1).replacingOccurrences(of: "topic: \(bed.topic)", with: "topic: \(missing)")
            let path = bed.directory + "/t.yaml"
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            let node = try ChildProcess(try Binaries.path("spate-node"), ["--config", path], logPath: bed.directory + "/t.log")
            defer {
                node.signal(SIGKILL)
                node.wait(timeout: .seconds(10))
            }
            var last = ""
            for _ in 0..<60 {
                let run = try runSpate(["status", "--server", "127.0.0.1:\(port)", "--timeout", "10"])
                last = run.output
                if run.status == 0 && run.output.contains("does not exist") { break }
                try await Task.sleep(for: .seconds(1))
            }
            #expect(last.contains("warning: kafka: topic \(missing) does not exist"), "\(last)\n\(node.output)")
        }
    }
}

/// With the store stopped (SIGSTOP), status answers at once from what the node knows, and the
/// calls that need the store end at --timeout with exit 1.
@Suite("spate CLI during a store outage", .serialized, .timeLimit(.minutes(5)))
struct CLIOutageTests {
    @Test("osmem-server stopped: status answers with the store unreachable; totals and watch --once end at --timeout with exit 1")
    func storeStopped() async throws {
        let services = try DevServices.start()
        defer { services.stop() }
        let osmem = try #require(services.osmemPID)
        try await NodeTestBed.with(services: services, partitions: 1, name: "cli-outage") { bed in
            let (_, address) = try await startQueryNode(bed)
            kill(osmem, SIGSTOP)
            defer { kill(osmem, SIGCONT) }
            // Status answers from what the node knows, the store marked unreachable.
            let status = try runSpate(["status", "--server", address, "--timeout", "10"], limit: .seconds(60))
            #expect(status.status == 0, "status: \(status.output)")
            #expect(status.output.contains("unreachable"), "status: \(status.output)")
            for command in [["totals"], ["watch", "totals", "--once"]] {
                let run = try runSpate(command + ["--server", address, "--timeout", "3"], limit: .seconds(60))
                #expect(run.status == 1, "\(command): \(run.output)")
                #expect(run.output.contains("DEADLINE_EXCEEDED"), "\(command): \(run.output)")
            }
        }
    }
}
