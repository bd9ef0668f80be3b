// swift-tools-version: 6.1
// Spate: network-traffic analytics over Kafka and Elasticsearch. See README.md.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Spate",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SpateKafka", targets: ["SpateKafka"]),
        .library(name: "SpateElastic", targets: ["SpateElastic"]),
        .executable(name: "spate-probe", targets: ["spate-probe"]),
        .executable(name: "spate-node", targets: ["spate-node"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
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

        .target(name: "SpateJSON", swiftSettings: strict),
        .target(name: "SpateModel", swiftSettings: strict),
        .target(name: "SpateCodec", dependencies: ["SpateProtos", "SpateModel"], swiftSettings: strict),
        .target(
            name: "SpateKafka",
            dependencies: ["CRdKafka", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "SpateElastic",
            dependencies: ["CCurl", "SpateJSON", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),

        .target(
            name: "SpateIngest",
            dependencies: ["SpateCodec", "SpateModel", "SpateElastic", "SpateJSON"],
            swiftSettings: strict),
        .target(
            name: "SpateNode",
            dependencies: [
                "SpateIngest", "SpateKafka", "SpateElastic", "SpateCodec", "SpateModel", "SpateJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "spate-node",
            dependencies: [
                "SpateNode", "SpateKafka", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        .target(
            name: "SpateProbe",
            dependencies: ["SpateCodec", "SpateKafka", "SpateModel", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .executableTarget(
            name: "spate-probe",
            dependencies: [
                "SpateProbe", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "spate-bench",
            dependencies: ["SpateProbe", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),

        .target(
            name: "SpateTestSupport",
            dependencies: ["SpateKafka", "SpateElastic", "SpateModel"],
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
            dependencies: ["SpateIngest", "SpateCodec", "SpateModel", "SpateTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SpateProbeTests",
            dependencies: ["SpateProbe", "SpateCodec", "SpateKafka", "SpateModel", "SpateTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "ProjectTests",
            dependencies: ["SpateTestSupport"],
            swiftSettings: strict),
    ]
)
