// swift-tools-version: 6.1
// libFuzzer targets for the query protocol's decoders (docs/PROTOCOL.md, "Fuzzing"), for a
// Kafka message through decode and fold, and for every decoder of store answers.
// Built and run by cluster/fuzz, never by the root package: it needs -sanitize=fuzzer,address
// and -parse-as-library (libFuzzer provides main), which the root build must not get.
import PackageDescription

let package = Package(
    name: "SpateFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Spate", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // libFuzzer's driver entry point, declared for Swift.
        .target(name: "CLibFuzzer"),
        // The entry point, seeds, dictionary and failure checks shared by both targets.
        .target(
            name: "FuzzSupport",
            dependencies: ["CLibFuzzer", .product(name: "SpateWire", package: "Spate")]),
        .executableTarget(
            name: "fuzz-frame",
            dependencies: ["FuzzSupport", .product(name: "SpateWire", package: "Spate"), .product(name: "NIOCore", package: "swift-nio")]),
        // The node's QueryPlanner, compiled from Sources/SpateQuery/QueryPlanner.swift (a
        // symlink): it is pure and needs only SpateModel and SpateWire, while the SpateQuery
        // module would bring the Elasticsearch client. The server plans every query it decodes.
        .target(
            name: "QueryPlanning",
            dependencies: [.product(name: "SpateWire", package: "Spate")],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("InternalImportsByDefault")]),
        // The server's decoder and connection state machine (Sources/SpateServer).
        .executableTarget(
            name: "fuzz-connection",
            dependencies: [
                "FuzzSupport", .product(name: "SpateServer", package: "Spate"), .product(name: "SpateWire", package: "Spate"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        .executableTarget(
            name: "fuzz-request",
            dependencies: ["FuzzSupport", "QueryPlanning", .product(name: "SpateWire", package: "Spate")]),
        .executableTarget(
            name: "fuzz-ingest",
            dependencies: [
                "FuzzSupport", .product(name: "SpateCodec", package: "Spate"), .product(name: "SpateIngest", package: "Spate"),
                .product(name: "SpateSchema", package: "Spate"), .product(name: "SpateModel", package: "Spate"),
            ]),
        .executableTarget(
            name: "fuzz-store",
            dependencies: [
                "FuzzSupport", .product(name: "SpateCodec", package: "Spate"), .product(name: "SpateIngest", package: "Spate"), .product(name: "SpateSchema", package: "Spate"),
                .product(name: "SpateModel", package: "Spate"),
                .product(name: "SpateJSON", package: "Spate"), .product(name: "SpateElastic", package: "Spate"),
                .product(name: "SpateQuery", package: "Spate"), .product(name: "SpateWire", package: "Spate"),
            ]),
    ]
)
