import ArgumentParser
import Foundation
#if canImport(Glibc)
import CMalloc
#endif
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import SpateKafka
import SpateNode

@main
struct SpateNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spate-node",
        abstract: "A Spate node: consumes flow records, rolls them up into Elasticsearch, answers queries.",
        discussion: """
            Configuration comes from --config (YAML), then SPATE_<SECTION>_<KEY> environment variables \
            (sections NODE, KAFKA, ES, INGEST, QUERY, RETENTION, METRICS; e.g. SPATE_KAFKA_BOOTSTRAP, SPATE_ES_URL, \
            SPATE_INGEST_ALLOWED_LATENESS), then -X librdkafka properties. A SPATE_<SECTION>_* variable that names \
            no key is refused like an unknown key; other SPATE_* variables belong to other tools and are ignored.
            Secrets only from files or the environment (SPATE_KAFKA_SASL_PASSWORD, SPATE_ES_PASSWORD, \
            SPATE_ES_API_KEY, SPATE_QUERY_TOKEN).
            Exit codes: 0 after a clean SIGTERM/SIGINT (flush, checkpoint, commit, leave the group); 1 when \
            shutdown could not finish or a service failed; 2 for any configuration error (invalid or unknown key, \
            variable, -X property or option, a listen address in use), with the key named.
            """)

    @Option(help: "YAML configuration file.")
    var config: String?
    @Option(name: .customShort("X"), help: ArgumentHelp("librdkafka property key=value (repeatable).", valueName: "key=value"))
    var properties: [String] = []
    @Flag(help: "Print the effective configuration (secrets masked) and exit.")
    var printConfig = false

    /// Like ArgumentParser's, except that invalid options exit 2 (a configuration error, which
    /// the systemd unit does not restart on) instead of 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand { try await asyncCommand.run() } else { try command.run() }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }

    /// Allocations at or above this size are mapped on their own and returned to the system
    /// when freed (glibc's `M_MMAP_THRESHOLD`).
    static let mmapThreshold: Int32 = 4 << 20

    /// glibc raises its mmap threshold to the size of each large block freed, up to 32 MB, so
    /// after the first bucket tables, snapshots and bulk bodies come and go, blocks of several
    /// megabytes are carved from the heap and stay resident after they are freed. Through
    /// Tansu that left the node's peak RSS at 469–552 MB where a fixed 4 MB threshold gives
    /// 371–374 MB, for about 8% more CPU per record (page faults of fresh mappings; BENCHMARKS,
    /// "Sixth pass"). An operator's `MALLOC_MMAP_THRESHOLD_`, or a glibc tunable naming
    /// `mmap_threshold`, wins. Returns the line to log.
    static func boundMallocRetention(_ environment: [String: String]) -> String {
        if environment["MALLOC_MMAP_THRESHOLD_"] != nil || environment["GLIBC_TUNABLES"]?.contains("mmap_threshold") == true {
            return "malloc: mmap threshold left to the environment (MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES)"
        }
        #if canImport(Glibc)
        guard spate_set_mmap_threshold(mmapThreshold) == 1 else { return "malloc: glibc refused an mmap threshold of 4 MB; left as is" }
        return "malloc: blocks of 4 MB and more are mapped on their own and returned to the system when freed"
        #else
        return "malloc: the system allocator is left as is"
        #endif
    }

    func run() async throws {
        var overrides: [String: String] = [:]
        for p in properties {
            let parts = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                FileHandle.standardError.write(Data("spate-node: -X expects key=value, got '\(p)'\n".utf8))
                throw ExitCode(2)
            }
            overrides[parts[0]] = parts[1]
        }
        let configuration: NodeConfiguration
        do {
            configuration = try NodeConfiguration.load(path: config, environment: ProcessInfo.processInfo.environment, kafkaOverrides: overrides)
            try KafkaLibrary.checkVersion()
        } catch {
            FileHandle.standardError.write(Data("spate-node: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let level = Logger.Level(rawValue: configuration.node.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        var logger = Logger(label: "spate.node")
        logger[metadataKey: "node"] = .string(configuration.node.id)
        if printConfig {
            configuration.printable.forEach { print($0) }
            return
        }
        do { try configuration.checkListeners() } catch {
            FileHandle.standardError.write(Data("spate-node: \(error)\n".utf8))
            throw ExitCode(2)
        }
        logger.info("spate-node starting with librdkafka \(KafkaLibrary.versionString)")
        logger.info("\(Self.boundMallocRetention(ProcessInfo.processInfo.environment))")
        for line in configuration.printable { logger.info("config: \(line)") }

        let node: SpateNodeServices
        do { node = try SpateNodeServices(configuration: configuration, logger: logger) } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(2)
        }
        // swift-metrics users (Spate's own code and libraries) report into the node's registry.
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: node.metrics.registry))
        let ingest = node.ingest
        let group = ServiceGroup(
            configuration: .init(
                services: node.services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch let e as ConfigurationError {
            // A listener that could not bind after the start-up check (a race): still exit 2.
            logger.critical("stopped: \(e)")
            throw ExitCode(2)
        } catch {
            logger.critical("stopped with an error: \(error)")
            throw ExitCode(1)
        }
        if ingest.incompleteShutdown.load(ordering: .relaxed) { throw ExitCode(1) }
        logger.info("spate-node stopped cleanly")
    }
}
