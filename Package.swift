// swift-tools-version: 6.1
// Spate: network-traffic analytics over Kafka and Elasticsearch. See README.md.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// The ingest hot path mutates rollup cells held by classes; Swift's dynamic exclusivity
/// checks cost ~15% of a node's CPU there (measured with perf, docs/BENCHMARKS.md). Release
/// builds of the hot modules skip them; debug builds and tests keep them.
let hotPath: [SwiftSetting] = strict + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Spate",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SpateKafka", targets: ["SpateKafka"]),
        .library(name: "SpateElastic", targets: ["SpateElastic"]),
        .library(name: "SpateWire", targets: ["SpateWire"]),
        // For the fuzz package (Tests/Fuzz), which can depend on products only.
        .library(name: "SpateModel", targets: ["SpateModel"]),
        .library(name: "SpateCodec", targets: ["SpateCodec"]),
        .library(name: "SpateIngest", targets: ["SpateIngest"]),
        .library(name: "SpateSchema", targets: ["SpateSchema"]),
        .library(name: "SpateJSON", targets: ["SpateJSON"]),
        .library(name: "SpateQuery", targets: ["SpateQuery"]),
        .library(name: "SpateServer", targets: ["SpateServer"]),
        .executable(name: "spate-probe", targets: ["spate-probe"]),
        .executable(name: "spate-node", targets: ["spate-node"]),
        .executable(name: "spate", targets: ["spate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // C libraries from Debian, through pkg-config; each is imported by exactly one module.
        .systemLibrary(
            name: "CRdKafka", pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(
            name: "CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),
        // Generated protobuf-c code (cluster/gen-protos) and its arena allocator.
        .target(
            name: "SpateProtos",
            linkerSettings: [.linkedLibrary("protobuf-c")]),

        // A prefetch hint for the ingest fold's read-ahead passes (Swift has none).
        .target(name: "CPrefetch"),
        // glibc's mmap threshold, set by spate-node at start (Swift's Glibc lacks <malloc.h>).
        .target(name: "CMalloc"),
        .target(name: "SpateJSON", swiftSettings: strict),
        .target(name: "SpateModel", swiftSettings: hotPath),
        .target(name: "SpateCodec", dependencies: ["SpateProtos", "SpateModel"], swiftSettings: hotPath),
        .target(
            name: "SpateKafka",
            dependencies: ["CRdKafka", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "SpateElastic",
            dependencies: ["CCurl", "SpateJSON", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),

        .target(
            name: "SpateWire",
            dependencies: ["SpateProtos", "SpateModel", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict),
        .target(
            name: "SpateServer",
            dependencies: [
                "SpateWire", .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "SpateQuery",
            dependencies: ["SpateModel", "SpateElastic", "SpateSchema", "SpateJSON", "SpateWire", "SpateIngest"],
            swiftSettings: strict),
        .target(
            name: "SpateClient",
            dependencies: [
                "SpateWire", "SpateModel", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "spate",
            dependencies: [
                "SpateClient", "SpateWire", "SpateModel", "SpateJSON", "SpateYAML", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict),
        // YAML from files (configuration, dashboards), their size and node count bounded (aliases expanded and counted).
        .target(
            name: "SpateYAML",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: strict),
        .target(
            name: "SpateIngest",
            dependencies: ["SpateCodec", "SpateModel", "CPrefetch"],
            swiftSettings: hotPath),
        // The store's side of a rollup: document shape and ids, index naming and templates,
        // checkpoints, the retention plan. Read by ingest's writer and by queries alike.
        .target(
            name: "SpateSchema",
            dependencies: ["SpateIngest", "SpateModel", "SpateElastic", "SpateJSON"],
            swiftSettings: strict),
        .target(
            name: "SpateNode",
            dependencies: [
                "SpateIngest", "SpateSchema", "SpateKafka", "SpateElastic", "SpateCodec", "SpateModel", "SpateJSON", "SpateWire", "SpateQuery", "SpateServer", "SpateClient", "SpateYAML",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "spate-node",
            dependencies: [
                "SpateNode", "SpateKafka", "CMalloc", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict),
        .target(
            name: "SpateProbe",
            dependencies: ["SpateCodec", "SpateKafka", "SpateModel", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .executableTarget(
            name: "spate-probe",
            dependencies: [
                "SpateProbe", "SpateKafka", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "spate-bench",
            dependencies: [
                "SpateProbe", "SpateKafka", "SpateCodec", "SpateClient", "SpateIngest", "SpateSchema", "SpateModel", "SpateTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        .target(
            name: "SpateTestSupport",
            dependencies: [
                "SpateKafka", "SpateElastic", "SpateModel", "SpateProbe", "SpateJSON",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "SpateCodecTests",
            dependencies: ["SpateCodec", "SpateModel", "SpateTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SpateKafkaTests",
            dependencies: ["SpateKafka", "SpateCodec", "SpateModel", "SpateTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SpateElasticTests",
            dependencies: ["SpateElastic", "SpateTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SpateIngestTests",
            dependencies: ["SpateIngest", "SpateSchema", "SpateElastic", "SpateCodec", "SpateModel", "SpateTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SpateProbeTests",
            dependencies: ["SpateProbe", "SpateCodec", "SpateKafka", "SpateModel", "SpateTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SpateNodeTests",
            dependencies: ["SpateNode", "SpateProbe", "SpateElastic", "SpateModel", "SpateJSON", "SpateKafka", "SpateCodec", "SpateTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SpateWireTests",
            dependencies: ["SpateWire", "SpateModel", "SpateTestSupport", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict),
        .testTarget(
            name: "SpateServerTests",
            dependencies: [
                "SpateServer", "SpateWire", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "SpateQueryTests",
            dependencies: [
                "SpateClient", "SpateWire", "SpateModel", "SpateJSON", "SpateElastic", "SpateProbe", "SpateQuery", "SpateSchema", "SpateTestSupport",
                "SpateServer", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "SpateRetentionTests",
            dependencies: ["SpateIngest", "SpateSchema", "SpateElastic", "SpateModel", "SpateProbe", "SpateTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "ProjectTests",
            dependencies: ["SpateTestSupport"],
            swiftSettings: strict),
    ]
)
