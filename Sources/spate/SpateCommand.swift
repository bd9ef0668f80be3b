import ArgumentParser
import Foundation
import SpateClient
import SpateJSON
import SpateModel
import SpateWire

@main
struct SpateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spate",
        abstract: "Query a Spate cluster: status, views, top-N, time series, totals, distinct, quantiles, live dashboards.",
        discussion: """
            Talks to any node's query port (--server or $SPATE_SERVER, default 127.0.0.1:7400). A token comes from \
            --token-file or $SPATE_TOKEN, never the command line. Every call, from connecting to the last byte, ends \
            within --timeout seconds (default 30).
            Exit codes: 0 ok; 1 server or connection error (unreachable, DEADLINE_EXCEEDED, UNAUTHENTICATED, \
            UNAVAILABLE, INTERNAL); 2 invalid input, whether the CLI refuses it (options, ranges, filters, numbers out \
            of range) or the node does (INVALID_ARGUMENT, NOT_FOUND: unknown view, dimension, metric or range).
            """,
        subcommands: [Status.self, Views.self, Top.self, Series.self, Totals.self, Distinct.self, Quantiles.self, Watch.self, Storage.self])

    /// Like ArgumentParser's, except that invalid input exits 2 (as documented) instead of 64.
    static func main() async {
        _ = CommandClock.start  // --timeout counts from here
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
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The cluster as one node sees it: members, partitions, lag, rates, store health.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let timeout = connection.deadline
        let s = try await withClient(connection) { try await $0.status(timeout: timeout) }
        switch connection.format {
        case .json:
            let data = try JSONEncoder.spate.encode(s)
            print(String(decoding: data, as: UTF8.self))
        case .csv:
            print(Format.csv(
                ["node", "query_address", "partitions", "lag", "records_per_second", "records_total"],
                s.cluster.map { n in
                    [n.nodeID, n.queryAddress, n.partitions.map { String($0.partition) }.joined(separator: " "),
                     String(Self.lag(n)), String(UInt64(clamping: n.recordsPerSecond)), String(n.recordsTotal)]
                }))
        case .table:
            print("\(Format.bold("cluster")) group \(s.group), topic \(s.topic), store \(s.storeHealth), answered by \(s.nodeID) (\(s.version))")
            print(Format.table(
                ["node", "address", "partitions", "lag", "records/s", "docs/s", "records", "late", "malformed", "rss"],
                s.cluster.map { n in
                    [n.nodeID + (n.reachable ? "" : " (unreachable)"), n.queryAddress, n.partitions.map { String($0.partition) }.joined(separator: ","),
                     Format.count(Self.lag(n)), Format.count(UInt64(clamping: n.recordsPerSecond)),
                     Format.count(UInt64(clamping: n.documentsPerSecond)), Format.count(n.recordsTotal), Format.count(n.lateTotal),
                     Format.count(n.malformedTotal), Format.bytes(n.residentBytes)]
                }))
            for w in s.warnings { print(Format.paint("warning: \(w)", "33")) }
        }
    }

    /// A node's lag over its partitions (unknown lags, < 0, left out), saturating: the numbers
    /// come from the node's answer.
    static func lag(_ n: NodeStatus) -> UInt64 {
        n.partitions.map(\.lag).filter { $0 >= 0 }.map { UInt64($0) }.saturatingSum()
    }
}

struct Views: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The rollup views: dimensions, resolution, sketches, retention.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let timeout = connection.deadline
        let views = try await withClient(connection) { try await $0.views(timeout: timeout) }
        switch connection.format {
        case .json: print(String(decoding: try JSONEncoder.spate.encode(views), as: UTF8.self))
        case .csv: print(Format.csv(["view", "bucket_ms", "dimensions", "sketches", "retention_days"], views.map { [$0.name, String($0.bucketMs), $0.dimensions.joined(separator: " "), $0.sketches.joined(separator: " "), String($0.retentionDays)] }))
        case .table:
            print(Format.table(
                ["view", "bucket", "dimensions", "sketches", "kept"],
                views.map { [$0.name, Format.duration(ms: $0.bucketMs), $0.dimensions.joined(separator: ", "), $0.sketches.joined(separator: ", "), "\($0.retentionDays)d"] }))
        }
    }
}

struct Top: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The values of a dimension with the most traffic.")
    @Argument(help: "Dimension: application, subscriber, server_prefix, country, …") var dimension: String
    @Option(help: "records, flows, bytes, bytes_up, bytes_down, packets, packets_up, packets_down.") var metric = "bytes"
    @Option(help: "Rows.") var limit = 10
    @OptionGroup var query: QueryOptions
    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        _ = try parseDimension(dimension, option: "dimension")
        _ = try parseMetric(metric)
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be 1...10000") }
    }

    func run() async throws {
        try await runQuery(
            .top(dimension: try parseDimension(dimension, option: "dimension"), metric: try parseMetric(metric), limit: limit), query, connection)
    }
}

struct Series: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A metric over time, optionally one series per top value of a dimension.")
    @Option(help: "The metric.") var metric = "bytes"
    @Option(help: "Step (1m, 5m, 1h); default: about 60 points at the view's resolution.") var step: String?
    @Option(help: "One series per top value of this dimension.") var splitBy: String?
    @Option(help: "How many split values (default 5, at most 100; needs --split-by).") var splitLimit: Int?
    @OptionGroup var query: QueryOptions
    @OptionGroup var connection: ConnectionOptions

    /// Series per split.
    static let splitLimitRange = 1...100

    func validate() throws {
        _ = try parseMetric(metric)
        if let step, (TimeParsing.durationMs(step) ?? 0) == 0 {
            throw ValidationError("--step: cannot read '\(step)' (a duration such as 5m; more than 0 and at most \(TimeParsing.maxDurationText))")
        }
        if let splitBy { _ = try parseDimension(splitBy, option: "--split-by") }
        if let splitLimit {
            guard splitBy != nil else { throw ValidationError("--split-limit needs --split-by") }
            guard Self.splitLimitRange.contains(splitLimit) else { throw ValidationError("--split-limit must be 1...100") }
        }
    }

    func run() async throws {
        try await runQuery(
            .series(
                metric: try parseMetric(metric), stepMs: step.flatMap(TimeParsing.durationMs) ?? 0,
                splitBy: try splitBy.map { try parseDimension($0, option: "--split-by") }, splitLimit: splitLimit ?? 5),
            query, connection)
    }
}

struct Totals: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every summed metric over the range.")
    @OptionGroup var query: QueryOptions
    @OptionGroup var connection: ConnectionOptions

    func run() async throws { try await runQuery(.totals, query, connection) }
}

struct Distinct: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Distinct subscribers (merged HyperLogLogs, ±1% at the hour view).")
    @OptionGroup var query: QueryOptions
    @OptionGroup var connection: ConnectionOptions

    func run() async throws { try await runQuery(.distinctSubscribers, query, connection) }
}

struct Quantiles: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "RTT quantiles (merged sketches, within 1%).")
    @Option(help: "Comma-separated quantiles in [0, 1].") var q = "0.5,0.9,0.99"
    @OptionGroup var query: QueryOptions
    @OptionGroup var connection: ConnectionOptions

    var quantiles: [Double] { q.split(separator: ",").compactMap { Double($0) } }

    func validate() throws {
        guard !quantiles.isEmpty, quantiles.count == q.split(separator: ",").count, quantiles.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {
            throw ValidationError("--q: give quantiles in [0, 1], e.g. 0.5,0.99")
        }
    }

    func run() async throws { try await runQuery(.rttQuantiles(quantiles), query, connection) }
}

/// Runs one query of `kind` over the range, filters and view of `options` and prints the answer.
func runQuery(_ kind: QueryKind, _ options: QueryOptions, _ connection: ConnectionOptions) async throws {
    let (range, filters) = try options.build()
    let q = Query(range: range, filters: filters, view: options.view, kind: kind)
    let timeout = connection.deadline
    let r = try await withClient(connection) { try await $0.query(q, timeout: timeout) }
    Render.result(r, query: q, format: connection.format)
}

extension JSONEncoder {
    static var spate: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
