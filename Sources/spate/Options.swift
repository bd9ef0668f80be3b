import ArgumentParser
import Foundation
import SpateClient
import SpateModel

import SpateWire

/// Output formats.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, csv
}

/// How to reach the node and how to print.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Node query address host:port (default: $SPATE_SERVER or 127.0.0.1:7400).")
    var server: String?
    @Option(help: "File holding the query token (default: $SPATE_TOKEN).")
    var tokenFile: String?
    @Flag(help: "Connect with TLS.")
    var tls = false
    @Option(help: "CA bundle (PEM) to verify the server with; implies --tls.")
    var caFile: String?
    @Option(help: "Output: table, json or csv.")
    var format: OutputFormat = .table
    @Option(help: "Call deadline in seconds.")
    var timeout: Double = 30

    func validate() throws {
        if let f = tokenFile, !FileManager.default.isReadableFile(atPath: f) { throw ValidationError("--token-file: \(f) is not readable") }
        if let f = caFile, !FileManager.default.isReadableFile(atPath: f) { throw ValidationError("--ca-file: \(f) is not readable") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    var address: String { server ?? ProcessInfo.processInfo.environment["SPATE_SERVER"] ?? "127.0.0.1:7400" }

    func token() throws -> String? {
        if let f = tokenFile {
            let t = try String(contentsOfFile: f, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            return t.isEmpty ? nil : t
        }
        return ProcessInfo.processInfo.environment["SPATE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    func connect() async throws -> SpateClient {
        let config = try ClientConfiguration(address: address, token: try token(), tls: tls || caFile != nil, caFile: caFile)
        return try await SpateClient.connect(config)
    }

    var deadline: Duration { .milliseconds(Int64(timeout * 1000)) }
}

/// What data a query covers.
struct QueryOptions: ParsableArguments {
    @Option(help: "How far back from now: 15m, 1h, 2d (default 15m). Ignored with --from.")
    var range: String = "15m"
    @Option(help: "Start: ISO-8601 (2026-11-20T10:00:00Z), Unix ms, or now-1h.")
    var from: String?
    @Option(help: "End (default now): same forms as --from.")
    var to: String?
    @Option(name: .customLong("filter"), help: ArgumentHelp("dimension=value, dimension!=value, dimension^=prefix or dimension~a,b,c (repeatable).", valueName: "condition"))
    var filters: [String] = []
    @Option(help: "Use this view instead of letting the server choose.")
    var view: String?

    func validate() throws {
        _ = try build()
    }

    /// The range and filters as protocol values.
    func build() throws -> (QueryRange, [QueryFilter]) {
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let timeRange: QueryRange
        if let from {
            guard let start = TimeParsing.instantMs(from, nowMs: now) else {
                throw ValidationError("--from: cannot read '\(from)' (use 2026-11-20T10:00:00Z, Unix ms or now-1h)")
            }
            var end = now
            if let to {
                guard let e = TimeParsing.instantMs(to, nowMs: now) else { throw ValidationError("--to: cannot read '\(to)'") }
                end = e
            }
            guard start < end else { throw ValidationError("--from must be before --to") }
            timeRange = .absolute(startMs: start, endMs: end)
        } else {
            guard let ms = TimeParsing.durationMs(range), ms > 0 else { throw ValidationError("--range: cannot read '\(range)' (use e.g. 15m, 1h, 2d)") }
            timeRange = .last(ms: ms)
        }
        let parsed = try filters.map(Self.parseFilter)
        return (timeRange, parsed)
    }

    static func parseFilter(_ text: String) throws -> QueryFilter {
        let ops: [(String, QueryFilter.Op)] = [("!=", .notEq), ("^=", .prefix), ("~", .in), ("=", .eq)]
        for (token, op) in ops {
            guard let r = text.range(of: token) else { continue }
            let name = String(text[..<r.lowerBound]).trimmingCharacters(in: .whitespaces)
            let value = String(text[r.upperBound...])
            guard let d = SpateModel.Dimension(rawValue: name) else {
                throw ValidationError("--filter '\(text)': unknown dimension '\(name)' (known: \(SpateModel.Dimension.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let values = op == .in ? value.split(separator: ",").map(String.init) : [value]
            guard !values.isEmpty, !values.contains(where: \.isEmpty) else { throw ValidationError("--filter '\(text)': missing value") }
            return QueryFilter(dimension: d, op: op, values: values)
        }
        throw ValidationError("--filter '\(text)': expected dimension=value, !=, ^= or ~ (one of a list)")
    }
}

func parseDimension(_ text: String, option: String) throws -> SpateModel.Dimension {
    guard let d = SpateModel.Dimension(rawValue: text) else {
        throw ValidationError("\(option): unknown dimension '\(text)' (known: \(SpateModel.Dimension.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
    return d
}

func parseMetric(_ text: String) throws -> Metric {
    guard let m = Metric(rawValue: text) else {
        throw ValidationError("--metric: unknown metric '\(text)' (known: \(Metric.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
    return m
}

/// Runs `body` with a connected client; protocol errors become a message and exit code 1.
func withClient<T>(_ options: ConnectionOptions, _ body: (SpateClient) async throws -> T) async throws -> T {
    do {
        let client = try await options.connect()
        do {
            let r = try await body(client)
            await client.close()
            return r
        } catch {
            await client.close()
            throw error
        }
    } catch let e as RPCError {
        FileHandle.standardError.write(Data("spate: \(e.code): \(e.message)\n".utf8))
        throw ExitCode(e.code == .invalidArgument || e.code == .notFound ? 2 : 1)
    }
}
