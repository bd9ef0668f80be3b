import ArgumentParser
import Foundation
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
            Configuration comes from --config (YAML), then SPATE_<SECTION>_<KEY> environment variables
            (e.g. SPATE_KAFKA_BOOTSTRAP, SPATE_ES_URL, SPATE_INGEST_FLUSH_INTERVAL), then -X librdkafka
            properties. Secrets only from files or the environment (SPATE_ES_PASSWORD, SPATE_ES_API_KEY).
            SIGTERM/SIGINT: flush, checkpoint, commit, leave the group, exit 0.
            """)

    @Option(help: "YAML configuration file.")
    var config: String?
    @Option(name: .customShort("X"), help: ArgumentHelp("librdkafka property key=value (repeatable).", valueName: "key=value"))
    var properties: [String] = []
    @Flag(help: "Print the effective configuration (secrets masked) and exit.")
    var printConfig = false

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
        logger.info("spate-node starting with librdkafka \(KafkaLibrary.versionString)")
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
        } catch {
            logger.critical("stopped with an error: \(error)")
            throw ExitCode(1)
        }
        if ingest.incompleteShutdown.load(ordering: .relaxed) { throw ExitCode(1) }
        logger.info("spate-node stopped cleanly")
    }
}
