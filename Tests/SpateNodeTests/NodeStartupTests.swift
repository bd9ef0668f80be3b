import Foundation
import SpateTestSupport
import Testing

/// The real spate-node binary refusing bad configuration: exit 2 (the systemd unit does not
/// restart on 2) and a message naming the key, the variable or the property; never a crash.
@Suite("spate-node start-up refusals", .timeLimit(.minutes(3)))
struct NodeStartupTests {
    /// Runs spate-node with `yaml` as its file; nil status when it did not exit in time.
    static func node(_ yaml: String, _ arguments: [String] = [], environment: [String: String] = [:]) throws -> (status: Int32?, output: String) {
        let dir = NSTemporaryDirectory() + "/\(uniqueName("node-start"))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try yaml.write(toFile: dir + "/node.yaml", atomically: true, encoding: .utf8)
        let child = try ChildProcess(
            try Binaries.path("spate-node"), ["--config", dir + "/node.yaml"] + arguments, environment: environment, logPath: dir + "/node.log")
        let status = child.wait(timeout: .seconds(60))
        if status == nil {
            child.signal(SIGKILL)
            child.wait(timeout: .seconds(10))
        }
        return (status, child.output)
    }

    @Test(
        "configuration errors exit 2 naming the key",
        arguments: [
            ("retention: {max_total_bytes: 1e30TB}", [], [:], "retention.max_total_bytes"),
            ("ingest: {shutdown_grace: 1e30d}", [], [:], "ingest.shutdown_grace"),
            ("kafka: {session_timeout: 2h}", [], [:], "kafka.session_timeout"),
            ("query: {min_refresh: 50d}", [], [:], "query.min_refresh"),
            ("", ["-X", "linger.msec=5"], [:], "linger.msec"),
            ("kafka: {properties: {fetch.max.bytes: lots}}", [], [:], "kafka.properties.fetch.max.bytes"),
            ("", [], ["SPATE_INGEST_ALOWED_LATENESS": "1m"], "SPATE_INGEST_ALOWED_LATENESS"),
            ("", [], ["SPATE_ES_URI": "http://x:9200"], "SPATE_ES_URI"),
            ("", ["--no-such-option"], [:], "--no-such-option"),
        ] as [(String, [String], [String: String], String)])
    func refused(yaml: String, arguments: [String], environment: [String: String], key: String) throws {
        let run = try Self.node(yaml, arguments + ["--print-config"], environment: environment)
        #expect(run.status == 2, "\(run.output)")
        #expect(run.output.contains(key), "\(run.output)")
        #expect(!run.output.contains("Fatal error"), "\(run.output)")
    }

    @Test("SPATE_* variables of other tools are left alone; the node's own are applied")
    func otherToolsVariables() throws {
        let run = try Self.node("", ["--print-config"], environment: [
            "SPATE_SERVER": "127.0.0.1:7400", "SPATE_TOKEN": "x", "SPATE_TEST_ES_URL": "http://127.0.0.1:1", "SPATE_BIN_DIR": "/tmp",
            "SPATE_PARTITIONS": "4", "SPATE_TANSU_PID": "1", "SPATE_INGEST_ALLOWED_LATENESS": "90s", "SPATE_TOPIC": "flows.x",
        ])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("ingest.allowed_lateness = 90.0 seconds"), "\(run.output)")
        #expect(run.output.contains("kafka.topic = flows.x"), "\(run.output)")
    }

    @Test("-X properties that librdkafka refuses only together exit 2 once the node creates its clients")
    func conflictingProperties() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "conflict") { bed in
            let config = bed.directory + "/conflict.yaml"
            try bed.configuration(node: "c", elasticURL: nil, ingest: [:], workers: 1, retention: [:], extra: "")
                .write(toFile: config, atomically: true, encoding: .utf8)
            // Each passes alone; the producer refuses message.timeout.ms at or below linger.ms.
            let child = try ChildProcess(
                try Binaries.path("spate-node"), ["--config", config, "-X", "message.timeout.ms=5", "-X", "linger.ms=50"],
                logPath: bed.directory + "/conflict.log")
            let status = child.wait(timeout: .seconds(60))
            if status == nil { child.signal(SIGKILL) }
            #expect(status == 2, "\(child.output)")
            #expect(child.output.contains("kafka.properties") && child.output.contains("linger.ms"), "\(child.output)")
        }
    }

    @Test("a listen port in use exits 2 naming the key", arguments: ["query", "metrics"])
    func portInUse(section: String) throws {
        let taken = try BlackHoleServer()
        defer { taken.close() }
        let other = try freePort()
        let yaml = section == "query"
            ? "query: {listen: \"127.0.0.1:\(taken.port)\"}\nmetrics: {listen: \"127.0.0.1:\(other)\"}"
            : "query: {listen: \"127.0.0.1:\(other)\"}\nmetrics: {listen: \"127.0.0.1:\(taken.port)\"}"
        let run = try Self.node(yaml)
        #expect(run.status == 2, "\(run.output)")
        #expect(run.output.contains("\(section).listen") && run.output.contains("in use"), "\(run.output)")
    }

    @Test(
        "the node fixes glibc's mmap threshold unless the environment sets it, and logs which",
        arguments: [
            ([:], "malloc: blocks of 4 MB and more are mapped on their own"),
            (["MALLOC_MMAP_THRESHOLD_": "1048576"], "malloc: mmap threshold left to the environment"),
            (["GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"], "malloc: mmap threshold left to the environment"),
        ] as [([String: String], String)])
    func mallocThreshold(environment: [String: String], line: String) throws {
        let dir = NSTemporaryDirectory() + "/\(uniqueName("node-malloc"))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Nothing listens at the broker's or the store's address: the node starts, logs, and
        // waits for them until it is stopped.
        let yaml = """
            kafka: {bootstrap: "127.0.0.1:1"}
            elasticsearch: {url: "http://127.0.0.1:1"}
            query: {listen: "127.0.0.1:\(try freePort())"}
            metrics: {listen: "127.0.0.1:\(try freePort())"}
            """
        try yaml.write(toFile: dir + "/node.yaml", atomically: true, encoding: .utf8)
        let child = try ChildProcess(try Binaries.path("spate-node"), ["--config", dir + "/node.yaml"], environment: environment, logPath: dir + "/node.log")
        defer {
            child.signal(SIGKILL)
            child.wait(timeout: .seconds(10))
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while !child.output.contains("malloc:") && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.1) }
        let logged = child.output.split(separator: "\n").filter { $0.contains("malloc:") }
        #expect(logged.count == 1 && logged[0].contains(line), "\(child.output)")
    }

    @Test("--help offers only variables that exist, and states the exit codes")
    func help() throws {
        let log = NSTemporaryDirectory() + "/\(uniqueName("node-help")).log"
        defer { unlink(log) }
        let child = try ChildProcess(try Binaries.path("spate-node"), ["--help"], logPath: log)
        #expect(child.wait(timeout: .seconds(30)) == 0)
        let help = child.output
        let names = Set(help.matches(of: /SPATE_[A-Z_]+[A-Z]/).map { String($0.output) }).subtracting(["SPATE_"])
        #expect(!names.isEmpty)
        // Every variable the help names is accepted (with a value valid for its key).
        let values = ["SPATE_KAFKA_BOOTSTRAP": "127.0.0.1:9092", "SPATE_ES_URL": "http://127.0.0.1:9200", "SPATE_INGEST_ALLOWED_LATENESS": "1m"]
        var environment = ["SPATE_ES_USERNAME": "spate"]  // a password needs a username
        for n in names where !n.hasSuffix("_") { environment[n] = values[n] ?? "x" }
        let run = try Self.node("", ["--print-config"], environment: environment)
        #expect(run.status == 0, "help names \(names.sorted()): \(run.output)")
        #expect(help.split(whereSeparator: \.isWhitespace).joined(separator: " ").contains("2 for any configuration error"), "\(help)")
    }
}
