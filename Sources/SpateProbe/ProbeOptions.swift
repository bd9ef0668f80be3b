import SpateKafka

/// Everything a spate-probe run needs, validated by the command line layer.
public struct ProbeOptions: Sendable {
    /// How progress is shown.
    public enum ProgressStyle: Sendable { case auto, quiet }

    public var bootstrap: String
    public var topic: String
    /// Records per second of wall time; 0 sends as fast as the broker takes them.
    public var rate: Double
    /// Stop after this many good records (nil: run for `duration`, or until interrupted).
    public var count: UInt64?
    public var duration: Duration?
    public var probes: Int
    /// Records per RecordBatch message.
    public var batch: Int
    public var seed: UInt64
    /// Event time of the first record, Unix ms.
    public var startMs: UInt64
    /// Event time runs this many times faster than wall time.
    public var speedup: Double
    /// Records per wall second that event time assumes when `rate` is 0.
    public var eventRate: Double
    public var subscribers: Int
    public var manifestPath: String?
    /// librdkafka properties; `-X` pass-through wins over Spate's defaults.
    public var kafkaProperties: [String: String]
    public var compression: String
    /// Share of messages replaced by malformed ones, in [0, 1).
    public var malformedFraction: Double
    public var progress: ProgressStyle

    public init(
        bootstrap: String, topic: String, rate: Double = 0, count: UInt64? = nil, duration: Duration? = nil,
        probes: Int = 8, batch: Int = 200, seed: UInt64 = 1, startMs: UInt64, speedup: Double = 1,
        eventRate: Double = 100_000, subscribers: Int = 20_000, manifestPath: String? = nil,
        kafkaProperties: [String: String] = [:], compression: String = "lz4", malformedFraction: Double = 0,
        progress: ProgressStyle = .auto
    ) {
        self.bootstrap = bootstrap
        self.topic = topic
        self.rate = rate
        self.count = count
        self.duration = duration
        self.probes = probes
        self.batch = batch
        self.seed = seed
        self.startMs = startMs
        self.speedup = speedup
        self.eventRate = eventRate
        self.subscribers = subscribers
        self.manifestPath = manifestPath
        self.kafkaProperties = kafkaProperties
        self.compression = compression
        self.malformedFraction = malformedFraction
        self.progress = progress
    }

    /// The event clock: event time follows the target rate, or `eventRate` when unpaced.
    public var eventClock: EventClock {
        EventClock(startMs: startMs, eventRate: rate > 0 ? rate : eventRate, speedup: speedup)
    }

    /// The producer's librdkafka properties: idempotent, batched, long retry window.
    public var producerProperties: [String: String] {
        var p: [String: String] = [
            "bootstrap.servers": bootstrap,
            "client.id": "spate-probe",
            "enable.idempotence": "true",
            "compression.type": compression,
            "linger.ms": "10",
            "batch.size": "1000000",
            "message.timeout.ms": "600000",
            "queue.buffering.max.kbytes": "262144",
        ]
        p.merge(kafkaProperties) { _, new in new }
        return p
    }
}

extension ProbeOptions {
    /// Why librdkafka refuses the `-X` property `key=value`, or nil when it accepts it: bad
    /// properties are invalid input, refused before anything is sent.
    public static func kafkaPropertyProblem(_ key: String, _ value: String) -> String? {
        KafkaLibrary.propertyProblem(key, value)
    }
}
