import Foundation
import SpateNode
import SpateTestSupport
import Testing

/// Bad configuration fails at start, naming the key and the reason; secrets come only from
/// files or the environment.
@Suite("spate-node configuration")
struct ConfigurationTests {
    static func load(_ yaml: String, environment: [String: String] = [:], kafka: [String: String] = [:]) throws -> NodeConfiguration {
        let path = NSTemporaryDirectory() + "/spate-config-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        return try NodeConfiguration.load(path: path, environment: environment, kafkaOverrides: kafka)
    }

    static func failure(_ yaml: String, environment: [String: String] = [:], kafka: [String: String] = [:]) -> ConfigurationError? {
        do {
            _ = try load(yaml, environment: environment, kafka: kafka)
            return nil
        } catch let e as ConfigurationError {
            return e
        } catch {
            return nil
        }
    }

    @Test("a configuration that expands without bound (nested YAML aliases) or is over 1 MiB is refused before any key is read")
    func yamlBombs() {
        // 24 levels of aN: &aN [*aN-1, *aN-1] took gigabytes before "x0: unknown key" was reached.
        var bomb = "node: {id: a}\nx0: &a0 [\"\(String(repeating: "x", count: 40))\"]\n"
        for n in 1..<24 { bomb += "x\(n): &a\(n) [*a\(n - 1), *a\(n - 1)]\n" }
        let e = Self.failure(bomb)
        #expect(e?.key == "(file)" && "\(e.map { "\($0)" } ?? "")".contains("more than 100000 YAML nodes"), "\(String(describing: e))")
        let huge = Self.failure("node: {id: a}\n# " + String(repeating: "x", count: 2 << 20) + "\n")
        #expect(huge?.key == "--config" && "\(huge.map { "\($0)" } ?? "")".contains("larger than 1048576 bytes"), "\(String(describing: huge))")
        // A small alias is expanded and read like the text it repeats.
        #expect((try? Self.load("node: {id: &n alpha}\nkafka: {group: *n}\n"))?.kafka.group == "alpha")
    }

    @Test("a configuration file reached through a symbolic link is read (ConfigMap mounts are links)")
    func symlinkedFile() throws {
        let dir = NSTemporaryDirectory() + "/spate-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "node: {id: linked}\n".write(toFile: dir + "/real.yaml", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/node.yaml", withDestinationPath: dir + "/real.yaml")
        #expect(try NodeConfiguration.load(path: dir + "/node.yaml", environment: [:]).node.id == "linked")
        #expect(mkfifo(dir + "/fifo.yaml", 0o600) == 0)
        #expect(throws: ConfigurationError.self) { _ = try NodeConfiguration.load(path: dir + "/fifo.yaml", environment: [:]) }
    }

    @Test(
        "invalid settings name the key and the reason",
        arguments: [
            ("ingest: {allowed_lateness: soon}", "ingest.allowed_lateness"),
            ("node: {workers: 0}", "node.workers"),
            ("query: {listen: nowhere}", "query.listen"),
            ("metrics: {listen: \"127.0.0.1:99999\"}", "metrics.listen"),
            ("node: {heartbeat: 10ms}", "node.heartbeat"),
            ("kafka: {topic: \"\"}", "kafka.topic"),
            ("ingest: {max_memory: 1GB, max_pending_bytes: 900MB}", "ingest.max_pending_bytes"),
            ("elasticsearch: {password: hunter2}", "elasticsearch.password"),
            ("kafka: {properties: {sasl.password: hunter2}}", "kafka.properties.sasl.password"),
            ("ingset: {allowed_lateness: 1m}", "ingset"),
            ("views: [{name: v, bucket: 0s, dimensions: [application]}]", "views[0] (v).bucket"),
            ("views: [{name: v, bucket: 400d, dimensions: [application]}]", "views[0] (v).bucket"),
            ("ingest: {max_event_age: 0s}", "ingest.max_event_age"),
            ("ingest: {max_event_lead: never}", "ingest.max_event_lead"),
            ("retention: {max_total_bytes: 1e30TB}", "retention.max_total_bytes"),
            ("ingest: {shutdown_grace: 1e30d}", "ingest.shutdown_grace"),
            ("ingest: {max_memory: 1e300GB}", "ingest.max_memory"),
            ("ingest: {fetch_queue_bytes: 3GB}", "ingest.fetch_queue_bytes"),
            ("kafka: {session_timeout: 2h}", "kafka.session_timeout"),
            ("query: {min_refresh: 50d}", "query.min_refresh"),
            ("query: {idle_timeout: 1e300s}", "query.idle_timeout"),
            ("node: {workers: 99999999999999999999999}", "node.workers"),
            ("retention: {max_age: {app_1m: 1e30d}}", "retention.max_age.app_1m"),
            ("kafka: {properties: {linger.msec: 5}}", "kafka.properties.linger.msec"),
        ])
    func invalid(yaml: String, key: String) throws {
        let e = try #require(Self.failure(yaml), "accepted: \(yaml)")
        #expect(e.key == key, "\(e)")
        #expect(!e.reason.isEmpty)
    }

    @Test("a SASL password on the command line (-X) is refused too")
    func saslOnArgv() throws {
        let e = try #require(Self.failure("", kafka: ["sasl.password": "hunter2"]))
        #expect(e.key == "kafka.properties.sasl.password")
    }

    @Test("secrets come from files or the environment and are masked when printed")
    func secrets() throws {
        let file = NSTemporaryDirectory() + "/spate-secret-\(UUID().uuidString)"
        try "s3cret\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { unlink(file) }
        let c = try Self.load(
            "kafka: {sasl_password_file: \(file)}\nelasticsearch: {username: spate, password_file: \(file)}",
            environment: ["SPATE_QUERY_TOKEN": "t0ken"])
        #expect(c.kafka.properties["sasl.password"] == "s3cret")
        #expect(c.elasticsearch.password == "s3cret")
        #expect(c.query.token == "t0ken")
        let printed = c.printable.joined(separator: "\n")
        #expect(!printed.contains("s3cret") && !printed.contains("t0ken"), "\(printed)")
        let env = try Self.load("", environment: ["SPATE_KAFKA_SASL_PASSWORD": "fromenv"])
        #expect(env.kafka.properties["sasl.password"] == "fromenv")
    }

    @Test("an unknown SPATE_<SECTION>_ variable is refused by name; other tools' SPATE_ variables are not")
    func environmentNames() throws {
        let e = try #require(Self.failure("", environment: ["SPATE_INGEST_ALOWED_LATENESS": "1m"]))
        #expect(e.key == "SPATE_INGEST_ALOWED_LATENESS", "\(e)")
        #expect(e.reason.contains("SPATE_INGEST_ALLOWED_LATENESS"), "\(e)")
        let others = ["SPATE_SERVER": "a:1", "SPATE_TOKEN": "t", "SPATE_TEST_KAFKA_BOOTSTRAP": "b:1", "SPATE_BIN_DIR": "/", "SPATE_TOPIC": "t.flows"]
        #expect(try Self.load("", environment: others).kafka.topic == "t.flows")
    }

    @Test("an invalid -X librdkafka property names the -X key")
    func badProperty() throws {
        let e = try #require(Self.failure("", kafka: ["linger.msec": "5"]))
        #expect(e.key == "-X linger.msec", "\(e)")
    }

    @Test("environment variables override the file; metrics and heartbeat settings")
    func overrides() throws {
        let c = try Self.load(
            "node: {id: a, heartbeat: 5s}\nmetrics: {listen: \"127.0.0.1:9464\"}",
            environment: ["SPATE_NODE_ID": "b", "SPATE_METRICS_LISTEN": "0.0.0.0:9500"])
        #expect(c.node.id == "b")
        #expect(c.node.heartbeat == .seconds(5))
        #expect(c.metrics.listen == "0.0.0.0:9500")
        #expect(try Self.load("").metrics.listen == nil)
    }
    @Test("every default docs/OPERATIONS.md states is the value --print-config prints")
    func documentedDefaults() throws {
        let doc = try String(contentsOfFile: Repository.root + "/docs/OPERATIONS.md", encoding: .utf8)
        var printed: [String: String] = [:]
        for line in try Self.load("").printable {
            let parts = line.components(separatedBy: " = ")
            if parts.count == 2 { printed[parts[0]] = parts[1] }
        }
        /// The documented value as --print-config writes it: durations as Duration, sizes in bytes.
        func normalized(_ text: String, key: String) -> String {
            if let last = text.last, last.isLetter, let d = try? ConfigValue.duration(text, key: key) { return "\(d)" }
            if text.hasSuffix("B"), let b = try? ConfigValue.bytes(text, key: key) { return String(b) }
            return text.replacingOccurrences(of: ",", with: "")
        }
        var checked: [String] = []
        for line in doc.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3 else { continue }
            let names = cells[1].matches(of: /`([a-z_.]+)`/).map { String($0.1) }
            let defaults = cells[2].components(separatedBy: ", ")
            guard let first = names.first, names.count == defaults.count, first.contains(".") else { continue }
            let section = String(first.split(separator: ".")[0])
            for (name, value) in zip(names, defaults) {
                // Defaults computed from something else (cores, <host>-<pid>, max_memory/4, = listen) are described, not literal.
                if value.isEmpty || ["<", "(", "= ", "max_memory", "cores"].contains(where: { value.contains($0) }) { continue }
                let key = name.contains(".") ? name : "\(section).\(name)"
                let actual = try #require(printed[key], "OPERATIONS.md documents \(key), which --print-config does not print")
                #expect(normalized(value, key: key) == actual, "\(key): documented \(value), the code has \(actual)")
                checked.append(key)
            }
        }
        #expect(checked.contains("retention.check_interval") && checked.count >= 25, "checked only \(checked)")
    }

    @Test("a worker's consumer refetches 10 ms after its queue was full, sized by fetch_queue_bytes; kafka.properties and -X win")
    func consumerProperties() throws {
        let defaults = try Self.load("node: {id: n1}\ningest: {fetch_queue_bytes: 8MB}").consumerProperties(worker: 1)
        #expect(defaults["fetch.queue.backoff.ms"] == "10")
        #expect(defaults["queued.max.messages.kbytes"] == "7812")
        #expect(defaults["client.id"] == "spate-node/n1/w1")
        #expect(defaults["enable.auto.commit"] == "false")
        let file = try Self.load("kafka: {properties: {fetch.queue.backoff.ms: 250}}").consumerProperties(worker: 0)
        #expect(file["fetch.queue.backoff.ms"] == "250")
        let flag = try Self.load("", kafka: ["fetch.queue.backoff.ms": "40"]).consumerProperties(worker: 0)
        #expect(flag["fetch.queue.backoff.ms"] == "40")
    }
}
