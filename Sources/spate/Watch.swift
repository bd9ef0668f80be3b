import ArgumentParser
import Foundation
import SpateClient
import SpateJSON
import SpateModel
import SpateWire
import SpateYAML
import Yams

/// One panel of a dashboard.
struct Widget: Sendable {
    var title: String
    var query: Query
}

/// A dashboard: widgets, columns and a refresh interval, from a YAML file or the command line.
struct Dashboard: Sendable {
    var title: String
    var columns: Int
    var refreshMs: UInt32
    var widgets: [Widget]

    /// Reads a dashboard file:
    /// ```yaml
    /// title: Traffic
    /// refresh: 5s
    /// columns: 2
    /// widgets:
    ///   - {title: Top applications, top: {dimension: application, metric: bytes, limit: 10}, range: 15m}
    ///   - {title: Traffic, series: {metric: bytes, split_by: application, split_limit: 5}, range: 1h}
    ///   - {title: Totals, totals: {}, range: 15m, filters: ["country=FR"]}
    /// ```
    static func load(path: String) throws -> Dashboard {
        let text: String
        do { text = try BoundedYAML.read(path: path) } catch { throw ValidationError("--dashboard: \(error)") }
        let composed: Yams.Node?
        do { composed = try BoundedYAML.compose(text) } catch { throw ValidationError("--dashboard: \(path): \(error)") }
        guard let root = composed?.any as? [String: Any] else { throw ValidationError("--dashboard: \(path) is not a YAML mapping") }
        func duration(_ v: Any?, _ key: String, _ d: UInt64, max: UInt64 = TimeParsing.maxDurationMs) throws -> UInt64 {
            guard let v else { return d }
            guard let ms = TimeParsing.durationMs("\(v)"), ms > 0, ms <= max else {
                throw ValidationError("--dashboard: \(key): cannot read '\(v)' (a duration such as 15m; more than 0 and at most \(Format.duration(ms: max)))")
            }
            return ms
        }
        func integer(_ v: Any?, _ key: String, _ d: Int, _ range: ClosedRange<Int>) throws -> Int {
            guard let v else { return d }
            guard let n = Int("\(v)"), range.contains(n) else {
                throw ValidationError("--dashboard: \(key): '\(v)' must be a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            return n
        }
        let refresh = try duration(root["refresh"], "refresh", 5000, max: Watch.maxRefreshMs)
        guard let list = root["widgets"] as? [[String: Any]], !list.isEmpty else { throw ValidationError("--dashboard: widgets: a non-empty list is needed") }
        let widgets = try list.enumerated().map { i, w -> Widget in
            let at = "widgets[\(i)]"
            let range = QueryRange.last(ms: try duration(w["range"], "\(at).range", 900_000))
            let filters = try ((w["filters"] as? [Any]) ?? []).map { try QueryOptions.parseFilter("\($0)") }
            let kind: QueryKind
            if let t = w["top"] as? [String: Any] {
                guard let d = t["dimension"] else { throw ValidationError("--dashboard: \(at).top.dimension is missing") }
                kind = .top(
                    dimension: try parseDimension("\(d)", option: "\(at).top.dimension"), metric: try parseMetric("\(t["metric"] ?? "bytes")"),
                    limit: try integer(t["limit"], "\(at).top.limit", 10, Watch.limitRange))
            } else if let s = w["series"] as? [String: Any] {
                kind = .series(
                    metric: try parseMetric("\(s["metric"] ?? "bytes")"), stepMs: try s["step"].map { try duration($0, "\(at).series.step", 0) } ?? 0,
                    splitBy: try s["split_by"].map { try parseDimension("\($0)", option: "\(at).series.split_by") },
                    splitLimit: try integer(s["split_limit"], "\(at).series.split_limit", 5, Series.splitLimitRange))
            } else if w["totals"] != nil {
                kind = .totals
            } else if w["distinct"] != nil {
                kind = .distinctSubscribers
            } else if let q = w["quantiles"] as? [String: Any] {
                let given = (q["q"] as? [Any]) ?? [0.5, 0.99]
                let values = given.compactMap { Double("\($0)") }
                guard !values.isEmpty, values.count == given.count, values.allSatisfy({ (0...1).contains($0) }) else {
                    throw ValidationError("--dashboard: \(at).quantiles.q: give quantiles in [0, 1], e.g. [0.5, 0.99]")
                }
                kind = .rttQuantiles(values)
            } else {
                throw ValidationError("--dashboard: \(at) needs one of top, series, totals, distinct, quantiles")
            }
            return Widget(title: "\(w["title"] ?? "widget \(i + 1)")", query: Query(range: range, filters: filters, view: w["view"] as? String, kind: kind))
        }
        return Dashboard(
            title: "\(root["title"] ?? "Spate")", columns: try integer(root["columns"], "columns", 2, 1...4), refreshMs: UInt32(refresh), widgets: widgets)
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A live, full-screen dashboard; redraws at every refresh, shows staleness and errors, Ctrl-C restores the terminal.",
        discussion: """
            Either --dashboard FILE (see docs/OPERATIONS.md for the format) or one inline widget:
              spate watch top application --metric bytes --range 15m
              spate watch series --split-by application --range 1h
              spate watch totals
            Every viewer of the same widget shares one refresh loop on the node. With --once the command ends when \
            every widget has answered, or at --timeout; like --seconds, it exits 0 only when every widget answered, \
            2 when the node refused a widget's query (INVALID_ARGUMENT, NOT_FOUND), 1 otherwise. \
            --format csv needs a single widget (one CSV table); json and csv print once, at the end.
            """)

    /// The longest refresh interval: a day (refreshes travel as 32-bit milliseconds).
    static let maxRefreshMs: UInt64 = 86_400_000
    /// Rows of a top widget.
    static let limitRange = 1...10_000

    @Argument(help: "Inline widget: top, series, totals, distinct or quantiles.") var widget: String?
    @Argument(help: "For top: the dimension.") var dimension: String?
    @Option(help: "Dashboard YAML file.") var dashboard: String?
    @Option(help: "Metric for top/series (default bytes).") var metric: String?
    @Option(help: "Rows for top (default 10, at most 10000).") var limit: Int?
    @Option(help: "Split dimension for series.") var splitBy: String?
    @Option(help: "Refresh interval (e.g. 5s, at most 24h); overrides the dashboard's.") var refresh: String?
    @Option(help: "Stop after this many seconds (non-interactive use).") var seconds: Double?
    @Flag(help: "Print the dashboard once as text (after the first answers, at most --timeout) and exit.") var once = false
    @OptionGroup var query: QueryOptions
    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        if dashboard == nil && widget == nil { throw ValidationError("give --dashboard FILE or an inline widget (top, series, totals, distinct, quantiles)") }
        if let refresh {
            guard let ms = TimeParsing.durationMs(refresh), ms > 0, ms <= Self.maxRefreshMs else {
                throw ValidationError("--refresh: cannot read '\(refresh)' (a duration such as 5s; more than 0 and at most 24h)")
            }
        }
        if let seconds {
            guard seconds > 0, seconds <= Double(TimeParsing.maxDurationMs / 1000) else {
                throw ValidationError("--seconds must be more than 0 and at most \(TimeParsing.maxDurationMs / 1000)")
            }
        }
        if let limit, !Self.limitRange.contains(limit) { throw ValidationError("--limit must be 1...10000") }
        let d = try makeDashboard()
        if connection.format == .csv && d.widgets.count != 1 {
            throw ValidationError("--format csv: a dashboard of \(d.widgets.count) widgets is not one CSV table; use --format json, or one widget")
        }
    }

    func makeDashboard() throws -> Dashboard {
        var d: Dashboard
        if let dashboard {
            let inline = [widget.map { _ in "a widget argument" }, metric.map { _ in "--metric" }, limit.map { _ in "--limit" }, splitBy.map { _ in "--split-by" }]
                .compactMap { $0 }
            if let first = inline.first { throw ValidationError("\(first) is for inline widgets; the dashboard file \(dashboard) sets its widgets") }
            if query.isGiven { throw ValidationError("--range, --from, --to, --filter and --view are for inline widgets; the dashboard file sets each widget's") }
            d = try Dashboard.load(path: dashboard)
        } else {
            let (range, filters) = try query.build()
            let name = widget ?? ""
            let used: [String: Set<String>] = ["top": ["dimension", "--metric", "--limit"], "series": ["--metric", "--split-by"]]
            let given = [dimension.map { _ in "dimension" }, metric.map { _ in "--metric" }, limit.map { _ in "--limit" }, splitBy.map { _ in "--split-by" }]
                .compactMap { $0 }
            if let unused = given.first(where: { !(used[name] ?? []).contains($0) }), ["top", "series", "totals", "distinct", "quantiles"].contains(name) {
                throw ValidationError("\(unused == "dimension" ? "a dimension argument" : unused) does not apply to a \(name) widget")
            }
            let kind: QueryKind
            switch name {
            case "top":
                guard let dimension else { throw ValidationError("top needs a dimension: spate watch top application") }
                kind = .top(dimension: try parseDimension(dimension, option: "dimension"), metric: try parseMetric(metric ?? "bytes"), limit: limit ?? 10)
            case "series":
                kind = .series(metric: try parseMetric(metric ?? "bytes"), stepMs: 0, splitBy: try splitBy.map { try parseDimension($0, option: "--split-by") }, splitLimit: 5)
            case "totals": kind = .totals
            case "distinct": kind = .distinctSubscribers
            case "quantiles": kind = .rttQuantiles([0.5, 0.9, 0.99])
            default: throw ValidationError("unknown widget '\(name)' (top, series, totals, distinct, quantiles)")
            }
            d = Dashboard(title: "spate watch \(name)", columns: 1, refreshMs: 5000, widgets: [Widget(title: name, query: Query(range: range, filters: filters, view: query.view, kind: kind))])
        }
        if let refresh, let ms = TimeParsing.durationMs(refresh), ms > 0, ms <= Self.maxRefreshMs { d.refreshMs = UInt32(ms) }
        return d
    }

    func run() async throws {
        let dashboard = try makeDashboard()
        let screen = Screen(dashboard: dashboard, interactive: !once && isatty(STDOUT_FILENO) == 1 && connection.format == .table)
        // --once is a call like any other: bounded by --timeout from the start of the command.
        let ends = [seconds.map { ContinuousClock.now + .milliseconds(Int64($0 * 1000)) }, once ? connection.deadlineInstant : nil].compactMap { $0 }.min()
        let once = self.once
        let format = connection.format
        let reconnect: ClientConfiguration
        do { reconnect = try connection.clientConfiguration(connectTimeout: .seconds(5)) } catch let e as RPCError { throw reportFailure(e) }
        try await withClient(connection, boundedCall: false) { first in
            screen.begin()
            defer { screen.end() }
            let stop = SignalStop()
            let connection = WatchConnection(first, configuration: reconnect)
            await withTaskGroup(of: Void.self) { group in
                for (i, w) in dashboard.widgets.enumerated() {
                    group.addTask {
                        while !Task.isCancelled {
                            do {
                                let client = try await connection.client()
                                for try await r in client.watch(w.query, refreshMs: dashboard.refreshMs) { screen.update(i, .success(r)) }
                                screen.update(i, .failure(RPCError(.unavailable, "the watch ended")))
                            } catch let e as RPCError {
                                screen.update(i, .failure(e))
                                if Screen.isFinal(e) {
                                    screen.markFinal(i)
                                    return
                                }
                            } catch {
                                screen.update(i, .failure(RPCError(.unavailable, "\(error)")))
                            }
                            try? await Task.sleep(for: .seconds(1))
                        }
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        if stop.requested { break }
                        if let ends, ContinuousClock.now >= ends { break }
                        if once && screen.allSettled { break }
                        screen.redraw()
                        try? await Task.sleep(for: .milliseconds(250))
                    }
                }
                await group.next()
                // What the watches report while being torn down is not news.
                screen.freeze()
                group.cancelAll()
            }
            await connection.closeReplacements()
            if !screen.interactive { screen.printOnce(format: format) }
        }
        // The exit code tells whether every widget answered (not after Ctrl-C of a live screen).
        if !screen.interactive || once, let failure = screen.worstFailure() {
            throw reportFailure(failure)
        }
    }
}

/// A watch's connection to the node: when the node closed it (a restart, a rolling
/// upgrade), the next widget to ask opens a new one, so a live dashboard recovers by itself.
actor WatchConnection {
    private var current: SpateClient
    private var connecting: Task<SpateClient, any Error>?
    private var replacements: [SpateClient] = []
    private let configuration: ClientConfiguration

    init(_ client: SpateClient, configuration: ClientConfiguration) {
        current = client
        self.configuration = configuration
    }

    /// The open connection, reconnecting (once, shared by every widget) when it was closed.
    func client() async throws -> SpateClient {
        if current.isConnected { return current }
        if let connecting { return try await connecting.value }
        let configuration = self.configuration
        let task = Task { try await SpateClient.connect(configuration) }
        connecting = task
        defer { connecting = nil }
        let fresh = try await task.value
        current = fresh
        replacements.append(fresh)
        return fresh
    }

    /// Closes the connections opened here (the first one belongs to the caller).
    func closeReplacements() async {
        for c in replacements { await c.close() }
        replacements = []
    }
}

/// The dashboard's last answers and how it is drawn.
final class Screen: @unchecked Sendable {
    let dashboard: Dashboard
    let interactive: Bool
    private let lock = NSLock()
    private var answers: [Int: (result: Result<QueryResult, RPCError>, at: Date, lastGood: QueryResult?)] = [:]
    private var frozen = false

    init(dashboard: Dashboard, interactive: Bool) {
        self.dashboard = dashboard
        self.interactive = interactive
    }

    private var final: Set<Int> = []

    /// Errors that retrying cannot cure: the node refused the query or the client.
    static func isFinal(_ e: RPCError) -> Bool { e.code == .invalidArgument || e.code == .notFound || e.code == .unauthenticated }

    /// Widget `i` failed for good and will not be retried.
    func markFinal(_ i: Int) { lock.withLock { _ = final.insert(i) } }

    /// Whether every widget has answered or failed for good (`--once` is done).
    var allSettled: Bool {
        lock.withLock { (0..<dashboard.widgets.count).allSatisfy { answers[$0]?.lastGood != nil || final.contains($0) } }
    }

    /// For the exit code: the error of a widget that never answered (a refusal of its query
    /// first), or a deadline error when a widget got no answer at all; nil when all answered.
    func worstFailure() -> RPCError? {
        lock.withLock {
            var failures: [RPCError] = []
            for i in dashboard.widgets.indices where answers[i]?.lastGood == nil {
                if case .failure(let e)? = answers[i]?.result {
                    failures.append(e)
                } else {
                    failures.append(RPCError(.deadlineExceeded, "\(dashboard.widgets[i].title): no answer before the end (--timeout with --once, or --seconds)"))
                }
            }
            return failures.first { $0.code == .invalidArgument || $0.code == .notFound } ?? failures.first
        }
    }

    /// Keeps the answers as they are now: later updates are ignored.
    func freeze() { lock.withLock { frozen = true } }

    func update(_ i: Int, _ r: Result<QueryResult, RPCError>) {
        lock.withLock {
            guard !frozen else { return }
            let good: QueryResult? = if case .success(let q) = r { q } else { answers[i]?.lastGood }
            answers[i] = (r, Date(), good)
        }
    }

    func begin() {
        guard interactive else { return }
        // Alternate screen, hidden cursor.
        FileHandle.standardOutput.write(Data("\u{1B}[?1049h\u{1B}[?25l".utf8))
    }

    func end() {
        guard interactive else { return }
        FileHandle.standardOutput.write(Data("\u{1B}[?25h\u{1B}[?1049l".utf8))
    }

    private func panel(_ i: Int, width: Int) -> [String] {
        let w = dashboard.widgets[i]
        let a = lock.withLock { answers[i] }
        var lines = [Format.bold(w.title)]
        guard let a else { return lines + [Format.dim("waiting for the first answer…")] }
        if let good = a.lastGood {
            lines += Render.text(good, query: w.query, width: width).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            // computedAtMs is the node's word: clamped, never trusted to fit.
            let age = Int64(Date().timeIntervalSince1970 * 1000) - Int64(clamping: good.computedAtMs)
            if age > Int64(dashboard.refreshMs) * 3 {
                lines.append(Format.paint("stale: last answer \(age / 1000)s ago", "33"))
            }
        }
        if case .failure(let e) = a.result { lines.append(Format.paint("error: \(e.code): \(e.message)", "31")) }
        return lines
    }

    func redraw() {
        guard interactive else { return }
        let total = Render.terminalWidth()
        let columns = dashboard.columns
        let colWidth = (total - 3 * (columns - 1)) / columns
        var out = "\u{1B}[H\u{1B}[2J" + Format.bold(dashboard.title) + Format.dim("  refresh \(dashboard.refreshMs / 1000)s · \(Format.time(ms: UInt64(Date().timeIntervalSince1970 * 1000))) · Ctrl-C to quit") + "\n\n"
        for rowStart in stride(from: 0, to: dashboard.widgets.count, by: columns) {
            let panels = (rowStart..<min(rowStart + columns, dashboard.widgets.count)).map { panel($0, width: colWidth) }
            let height = panels.map(\.count).max() ?? 0
            for l in 0..<height {
                out += panels.map { p -> String in
                    let cell = l < p.count ? p[l] : ""
                    let visible = Format.visibleLength(cell)
                    let clipped = visible > colWidth ? String(cell.prefix(colWidth)) : cell
                    return clipped + String(repeating: " ", count: max(0, colWidth - Format.visibleLength(clipped)))
                }.joined(separator: "   ") + "\n"
            }
            out += "\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }

    func printOnce(format: OutputFormat) {
        if format == .csv {
            // One widget (validated): its answer as CSV; nothing when it never answered.
            if let i = dashboard.widgets.indices.first, let good = lock.withLock({ answers[i]?.lastGood }) {
                print(Render.csv(good, query: dashboard.widgets[i].query))
            }
            return
        }
        if format == .json {
            let widgets: [JSONValue] = dashboard.widgets.indices.map { i in
                let a = lock.withLock { answers[i] }
                var o = JSONObject()
                o["title"] = .string(dashboard.widgets[i].title)
                if let good = a?.lastGood { o["result"] = Format.json(good) }
                if case .failure(let e)? = a?.result { o["error"] = .string("\(e.code): \(e.message)") }
                return .object(o)
            }
            Format.print(["dashboard": .string(dashboard.title), "widgets": .array(widgets)])
            return
        }
        var out = Format.bold(dashboard.title) + "\n\n"
        for i in dashboard.widgets.indices { out += panel(i, width: 100).joined(separator: "\n") + "\n\n" }
        print(out, terminator: "")
    }
}

/// Turns SIGINT/SIGTERM into a request to stop drawing (the terminal is then restored).
final class SignalStop: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private var sources: [any DispatchSourceSignal] = []

    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in self?.lock.withLock { self?.flag = true } }
            s.resume()
            sources.append(s)
        }
    }

    var requested: Bool { lock.withLock { flag } }
}
