import Foundation
import Synchronization

/// Tansu and osmem-server started through `cluster/dev-services`, for integration tests.
///
/// Every instance has its own run folder under `.run/tests/`; `stop()` ends only its own
/// processes. `TestServices.shared()` gives one instance per test process (or the one named by
/// `SPATE_TEST_KAFKA_BOOTSTRAP`/`SPATE_TEST_ES_URL` when cluster/check started it); tests that
/// disturb the services (SIGSTOP, kill) start a private one with `start()`.
public final class DevServices: Sendable {
    public let kafkaBootstrap: String
    public let elasticURL: String
    /// Process ids, for fault injection (SIGSTOP/SIGCONT); nil when not started by us.
    public let tansuPID: Int32?
    public let osmemPID: Int32?
    public let runDirectory: String?

    init(kafkaBootstrap: String, elasticURL: String, tansuPID: Int32?, osmemPID: Int32?, runDirectory: String?) {
        self.kafkaBootstrap = kafkaBootstrap
        self.elasticURL = elasticURL
        self.tansuPID = tansuPID
        self.osmemPID = osmemPID
        self.runDirectory = runDirectory
    }

    /// Starts a private Tansu + osmem-server pair on free loopback ports.
    public static func start() throws -> DevServices {
        let dir = Repository.root + "/.run/tests/" + UUID().uuidString.prefix(8).lowercased()
        let out = try Shell.run(
            Repository.root + "/cluster/dev-services",
            ["start", "--run-dir", dir, "--topic", "spate.bootstrap", "--partitions", "1"])
        guard out.status == 0 else { throw TestSupportError("dev-services start failed: \(out.output)") }
        let env = try String(contentsOfFile: dir + "/env", encoding: .utf8)
        var values: [String: String] = [:]
        for line in env.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        guard let k = values["SPATE_KAFKA_BOOTSTRAP"], let e = values["SPATE_ES_URL"] else {
            throw TestSupportError("dev-services env file lacks addresses: \(env)")
        }
        return DevServices(
            kafkaBootstrap: k, elasticURL: e, tansuPID: values["SPATE_TANSU_PID"].flatMap { Int32($0) },
            osmemPID: values["SPATE_OSMEM_PID"].flatMap { Int32($0) }, runDirectory: dir)
    }

    /// Stops the processes this instance started and removes its run folder.
    public func stop() {
        guard let dir = runDirectory else { return }
        _ = try? Shell.run(Repository.root + "/cluster/dev-services", ["stop", "--run-dir", dir])
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Creates a topic on this Tansu with `.tools/bin/tansu topic create`.
    public func createTopic(_ name: String, partitions: Int) throws {
        let out = try Shell.run(
            Repository.root + "/.tools/bin/tansu",
            ["topic", "create", name, "--partitions", String(partitions), "--broker", "tcp://" + kafkaBootstrap])
        guard out.status == 0 else { throw TestSupportError("creating topic \(name) failed: \(out.output)") }
    }

    /// Deletes a topic (cleanup); errors are ignored.
    public func deleteTopic(_ name: String) {
        _ = try? Shell.run(
            Repository.root + "/.tools/bin/tansu", ["topic", "delete", name, "--broker", "tcp://" + kafkaBootstrap])
    }
}

/// The services shared by all tests of one process.
public enum TestServices {
    private static let instance = Mutex<DevServices?>(nil)

    /// The shared services: those named in the environment, or a pair started on first use
    /// and stopped when the test process exits.
    public static func shared() throws -> DevServices {
        try instance.withLock { current in
            if let current { return current }
            let env = ProcessInfo.processInfo.environment
            let services: DevServices
            if let k = env["SPATE_TEST_KAFKA_BOOTSTRAP"], let e = env["SPATE_TEST_ES_URL"] {
                services = DevServices(kafkaBootstrap: k, elasticURL: e, tansuPID: nil, osmemPID: nil, runDirectory: nil)
            } else {
                services = try DevServices.start()
                atexit { TestServices.stopShared() }
            }
            current = services
            return services
        }
    }

    private static func stopShared() {
        instance.withLock { $0?.stop() }
    }
}

/// A short random suffix for topic, group and index names, so tests never share state.
public func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// A test-support failure with a message.
public struct TestSupportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Where the repository is, found from this file's path.
public enum Repository {
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
}

/// The project's executables, built next to the test bundle by `swift build --build-tests`.
public enum Binaries {
    /// Where the executables are: `SPATE_BIN_DIR` (cluster/check points it at a release
    /// build), else the build products folder of the test bundle.
    public static let directory: String = ProcessInfo.processInfo.environment["SPATE_BIN_DIR"] ?? testBundleDirectory

    /// The build products folder (where the test bundle itself lives).
    public static let testBundleDirectory: String = {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        url.deleteLastPathComponent()
        // The xctest bundle is a directory on some platforms; walk up to the products folder.
        while url.path.contains(".xctest") { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The path of executable `name` (e.g. "spate-probe").
    public static func path(_ name: String) throws -> String {
        let p = directory + "/" + name
        guard FileManager.default.isExecutableFile(atPath: p) else {
            throw TestSupportError("\(p) is missing: run `swift build --build-tests` first")
        }
        return p
    }
}
