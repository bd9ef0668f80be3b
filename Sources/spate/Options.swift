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
    @Option(help: "Deadline in seconds for the whole call, from connecting to the last byte (at most 86400; watch --once: until every widget answered).")
    var timeout: Double = 30

    /// The longest --timeout accepted: a day.
    static let maxTimeout = 86_400.0

    func validate() throws {
        if let f = tokenFile, !FileManager.default.isReadableFile(atPath: f) { throw ValidationError("--token-file: \(f) is not readable") }
        if let f = caFile, !FileManager.default.isReadableFile(atPath: f) { throw ValidationError("--ca-file: \(f) is not readable") }
        guard timeout > 0, timeout <= Self.maxTimeout else { throw ValidationError("--timeout must be more than 0 and at most \(Int(Self.maxTimeout)) seconds") }
    }

    var address: String { server ?? ProcessInfo.processInfo.environment["SPATE_SERVER"] ?? "127.0.0.1:7400" }

    func token() throws -> String? {
        if let f = tokenFile {
            let t = try String(contentsOfFile: f, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            return t.isEmpty ? nil : t
        }
        return ProcessInfo.processInfo.environment["SPATE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The client configuration; connecting may take at most `connectTimeout`.
    func clientConfiguration(connectTimeout: Duration) throws -> ClientConfiguration {
        try ClientConfiguration(address: address, token: try token(), tls: tls || caFile != nil, caFile: caFile, connectTimeout: connectTimeout)
    }

    /// --timeout as a duration (validated to be within 0...86400 s).
    var deadline: Duration { .milliseconds(Int64(timeout * 1000)) }

    /// The instant the whole command must be done by: --timeout after the command started.
    var deadlineInstant: ContinuousClock.Instant { CommandClock.start + deadline }
}

/// When the command started: --timeout counts from here.
enum CommandClock {
    static let start = ContinuousClock.now

    /// What is left until `deadline` (zero when passed).
    static func remaining(until deadline: ContinuousClock.Instant) -> Duration { max(.zero, deadline - .now) }
}

/// What data a query covers.
struct QueryOptions: ParsableArguments {
    @Option(help: "Length of the range: 15m, 1h, 2d (default 15m, at most 36500d). Ends at --to (default now), or starts at --from.")
    var range: String?
    @Option(help: "Start: ISO-8601 (2026-11-20T10:00:00Z), Unix ms, or now-1h. With --to: exactly that range.")
    var from: String?
    @Option(help: "End (default now): same forms as --from.")
    var to: String?
    @Option(
        name: .customLong("filter"),
        help: ArgumentHelp(
            "dimension=value, dimension!=value, dimension^=prefix or dimension~a,b,c (repeatable). The value is everything after the operator, verbatim; in a ~ list write \\, for a comma and \\\\ for a backslash.",
            valueName: "condition"))
    var filters: [String] = []
    @Option(help: "Use this view instead of letting the server choose.")
    var view: String?

    func validate() throws {
        _ = try build()
    }

    /// Whether any option of the group was given (dashboards from a file refuse them).
    var isGiven: Bool { range != nil || from != nil || to != nil || !filters.isEmpty || view != nil }

    /// The range and filters as protocol values. Any two of --from, --to and --range fix the
    /// range; all three are refused. --range alone ends now; --to alone takes 15m before it.
    func build() throws -> (QueryRange, [QueryFilter]) {
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        func instant(_ text: String, _ option: String) throws -> UInt64 {
            guard let ms = TimeParsing.instantMs(text, nowMs: now) else {
                throw ValidationError("\(option): cannot read '\(text)' (use 2026-11-20T10:00:00Z, Unix ms or now-1h; between 1970 and 9999)")
            }
            return ms
        }
        var length: UInt64?
        if let range {
            guard let ms = TimeParsing.durationMs(range), ms > 0 else {
                throw ValidationError("--range: cannot read '\(range)' (use e.g. 15m, 1h, 2d; more than 0 and at most \(TimeParsing.maxDurationText))")
            }
            length = ms
        }
        let timeRange: QueryRange
        let start = try from.map { try instant($0, "--from") }
        let end = try to.map { try instant($0, "--to") }
        switch (start, end) {
        case (let start?, let end?):
            guard length == nil else { throw ValidationError("--range cannot be combined with both --from and --to") }
            guard start < end else { throw ValidationError("--from must be before --to") }
            timeRange = .absolute(startMs: start, endMs: end)
        case (let start?, nil):
            let end = length.map { start.addingReportingOverflow($0).partialValue } ?? now
            guard start < end, end <= TimeParsing.maxInstantMs else { throw ValidationError("--from must be before the end of the range (now, or --from + --range)") }
            timeRange = .absolute(startMs: start, endMs: end)
        case (nil, let end?):
            let ms = length ?? 900_000
            guard end > ms else { throw ValidationError("--to minus --range is before 1970") }
            timeRange = .absolute(startMs: end - ms, endMs: end)
        case (nil, nil):
            timeRange = .last(ms: length ?? 900_000)
        }
        let parsed = try filters.map(Self.parseFilter)
        return (timeRange, parsed)
    }

    /// Parses `dimension<op>value`. The dimension is the leading run of letters, digits and
    /// underscores; the operator follows it (`!=`, `^=`, `~`, `=`); the value is the rest,
    /// verbatim (any characters, `=`, `~` and `,` included). In a `~` list, values are separated
    /// by commas; `\,` is a comma inside a value and `\\` a backslash.
    static func parseFilter(_ text: String) throws -> QueryFilter {
        let nameEnd = text.firstIndex { !($0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_")) } ?? text.endIndex
        let name = String(text[..<nameEnd])
        let rest = text[nameEnd...].drop { $0 == " " }
        let ops: [(String, QueryFilter.Op)] = [("!=", .notEq), ("^=", .prefix), ("~", .in), ("=", .eq)]
        guard let (token, op) = ops.first(where: { rest.hasPrefix($0.0) }) else {
            throw ValidationError("--filter '\(text)': expected dimension=value, !=, ^= or ~ (one of a list)")
        }
        guard let d = SpateModel.Dimension(rawValue: name) else {
            throw ValidationError("--filter '\(text)': unknown dimension '\(name)' (known: \(SpateModel.Dimension.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let value = String(rest.dropFirst(token.count))
        let values = op == .in ? try splitList(value, filter: text) : [value]
        guard !values.isEmpty, !values.contains(where: \.isEmpty) else { throw ValidationError("--filter '\(text)': missing value") }
        return QueryFilter(dimension: d, op: op, values: values)
    }

    /// Splits a `~` list at unescaped commas; `\,` and `\\` stand for `,` and `\`.
    static func splitList(_ text: String, filter: String) throws -> [String] {
        var values: [String] = []
        var current = ""
        var escaped = false
        for c in text {
            if escaped {
                guard c == "," || c == "\\" else { throw ValidationError("--filter '\(filter)': '\\\(c)' is not an escape (use \\, or \\\\)") }
                current.append(c)
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "," {
                values.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        guard !escaped else { throw ValidationError("--filter '\(filter)': a trailing backslash escapes nothing (use \\\\)") }
        values.append(current)
        return values
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

/// Runs `body` with a connected client, the whole of it bounded by --timeout. Server errors
/// become a message and an exit code: 2 when the server refused the input (INVALID_ARGUMENT,
/// NOT_FOUND), 1 for every other failure (connection, deadline, authentication, server).
/// `boundedCall: false` (live watches) bounds only the connection set-up.
func withClient<T: Sendable>(
    _ options: ConnectionOptions, boundedCall: Bool = true, _ body: @escaping @Sendable (SpateClient) async throws -> T
) async throws -> T {
    let deadline = options.deadlineInstant
    let address = options.address
    let seconds = options.timeout
    do {
        let configuration = try options.clientConfiguration(connectTimeout: CommandClock.remaining(until: deadline))
        let client = try await withDeadline(
            deadline, error: RPCError(.unavailable, "cannot connect to \(address): no answer within \(seconds)s (is it a Spate node's query port, with TLS on both sides or neither?)")
        ) { try await SpateClient.connect(configuration) }
        do {
            let r = boundedCall
                ? try await withDeadline(deadline, error: RPCError(.deadlineExceeded, "no complete answer from \(address) within \(seconds)s (--timeout)")) {
                    try await body(client)
                }
                : try await body(client)
            await client.close()
            return r
        } catch {
            await client.close()
            throw error
        }
    } catch let e as RPCError {
        throw reportFailure(e)
    }
}

/// Prints `e` and returns the exit code for it (the rule in `spate --help`).
func reportFailure(_ e: RPCError) -> ExitCode {
    FileHandle.standardError.write(Data("spate: \(e.code): \(e.message)\n".utf8))
    return ExitCode(e.code == .invalidArgument || e.code == .notFound ? 2 : 1)
}
