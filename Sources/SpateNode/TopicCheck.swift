import Dispatch
import Logging
import ServiceLifecycle
import SpateKafka
import Synchronization

/// Checks every `interval` that the input topic exists, so that a missing topic is a warning
/// in `spate status` (and a log line when it changes), not one log line at start. The check
/// is blocking librdkafka work: it runs on its own queue, never awaited, so it can neither
/// hold up the cooperative pool nor delay shutdown.
final class TopicCheck: Service, Sendable {
    private let configuration: NodeConfiguration
    private let logger: Logger
    private let interval: Duration
    private let queue = DispatchQueue(label: "spate.topic-check")
    private let current = Mutex<String?>(nil)
    private let running = Atomic<Bool>(false)
    /// The topic's partitions at the last check (0: unknown or missing); the live tier skips
    /// the store when every one of them is accounted for.
    let partitionCount = Atomic<Int>(0)

    init(configuration: NodeConfiguration, logger: Logger, interval: Duration = .seconds(30)) {
        self.configuration = configuration
        self.logger = logger
        self.interval = interval
    }

    /// The warning to show, nil when the topic exists (or was not checked yet).
    var warning: String? { current.withLock { $0 } }

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            startCheck()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
    }

    private func startCheck() {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        queue.async { [self] in
            defer { running.store(false, ordering: .releasing) }
            let warning = check()
            let changed = current.withLock { old -> Bool in
                defer { old = warning }
                return old != warning
            }
            if changed {
                if let warning { logger.warning("\(warning)") } else { logger.info("kafka: topic \(configuration.kafka.topic) is there") }
            }
        }
    }

    private func check() -> String? {
        let k = configuration.kafka
        var properties = k.properties
        properties["bootstrap.servers"] = k.bootstrap
        properties["client.id"] = "spate-node/\(configuration.node.id)/topic-check"
        do {
            let topics = try KafkaMetadata.topics(properties: properties, timeout: .seconds(5), logger: logger)
            partitionCount.store(topics[k.topic] ?? 0, ordering: .relaxed)
            return topics[k.topic] == nil ? "kafka: topic \(k.topic) does not exist on \(k.bootstrap); nothing is ingested until it is created" : nil
        } catch {
            return "kafka: cannot read the topic list from \(k.bootstrap): \(error)"
        }
    }
}
