import ArgumentParser
import Foundation
import SpateClient
import SpateJSON
import SpateModel
import SpateWire
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
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { throw ValidationError("--dashboard: cannot read \(path): \(error.localizedDescription)") }
        guard let root = try? Yams.load(yaml: text) as? [String: Any] else { throw ValidationError("--dashboard: \(path) is not a YAML mapping") }
        func duration(_ v: Any?, _ key: String, _ d: UInt64) throws -> UInt64 {
            guard let v else { return d }
            guard let ms = TimeParsing.durationMs("\(v)"), ms > 0 else { throw ValidationError("--dashboard: \(key): cannot read '\(v)'") }
            return ms
        }
        let refresh = try duration(root["refresh"], "refresh", 5000)
        guard let list = root["widgets"] as? [[String: Any]], !list.isEmpty else { throw ValidationError("--dashboard: widgets: a non-empty list is needed") }
        let widgets = try list.enumerated().map { i, w -> Widget in
            let at = "widgets[\(i)]"
            let range = QueryRange.last(ms: try duration(w["range"], "\(at).range", 900_000))
            let filters = try ((w["filters"] as? [Any]) ?? []).map { try QueryOptions.parseFilter("\($0)") }
            let kind: QueryKind
            if let t = w["top"] as? [String: Any] {
                guard let d = t["dimension"] else { throw ValidationError("--dashboard: \(at).top.dimension is missing") }
                kind = .top(dimension: try parseDimension("\(d)", option: "\(at).top.dimension"), metric: try parseMetric("\(t["metric"] ?? "bytes")"), limit: Int("\(t["limit"] ?? 10)") ?? 10)
            } else if let s = w["series"] as? [String: Any] {
                kind = .series(
                    metric: try parseMetric("\(s["metric"] ?? "bytes")"), stepMs: try s["step"].map { try duration($0, "\(at).series.step", 0) } ?? 0,
                    splitBy: try s["split_by"].map { try parseDimension("\($0)", option: "\(at).series.split_by") }, splitLimit: Int("\(s["split_limit"] ?? 5)") ?? 5)
            } else if w["totals"] != nil {
                kind = .totals
            } else if w["distinct"] != nil {
                kind = .distinctSubscribers
            } else if let q = w["quantiles"] as? [String: Any] {
                kind = .rttQuantiles(((q["q"] as? [Any]) ?? [0.5, 0.99]).compactMap { Double("\($0)") })
            } else {
                throw ValidationError("--dashboard: \(at) needs one of top, series, totals, distinct, quantiles")
            }
            return Widget(title: "\(w["title"] ?? "widget \(i + 1)")", query: Query(range: range, filters: filters, view: w["view"] as? String, kind: kind))
        }
        return Dashboard(title: "\(root["title"] ?? "Spate")", columns: max(1, min(4, Int("\(root["columns"] ?? 2)") ?? 2)), refreshMs: UInt32(refresh), widgets: widgets)
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
            Every viewer of the same widget shares one refresh loop on the node.
            """)

    @Argument(help: "Inline widget: top, series, totals, distinct or quantiles.") var widget: String?
    @Argument(help: "For top: the dimension.") var dimension: String?
    @Option(help: "Dashboard YAML file.") var dashboard: String?
    @Option(help: "Metric for top/series.") var metric = "bytes"
    @Option(help: "Rows for top.") var limit = 10
    @Option(help: "Split dimension for series.") var splitBy: String?
    @Option(help: "Refresh interval (e.g. 5s); overrides the dashboard's.") var refresh: String?
    @Option(help: "Stop after this many seconds (non-interactive use).") var seconds: Double?
    @Flag(help: "Print the dashboard once as text (after the first answers) and exit.") var once = false
    @OptionGroup var query: QueryOptions
    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        if dashboard == nil && widget == nil { throw ValidationError("give --dashboard FILE or an inline widget (top, series, totals, distinct, quantiles)") }
        if let refresh, TimeParsing.durationMs(refresh) == nil { throw ValidationError("--refresh: cannot read '\(refresh)'") }
        _ = try makeDashboard()
    }

    func makeDashboard() throws -> Dashboard {
        var d: Dashboard
        if let dashboard {
            d = try Dashboard.load(path: dashboard)
        } else {
            let (range, filters) = try query.build()
            let kind: QueryKind
            switch widget {
            case "top":
                guard let dimension else { throw ValidationError("top needs a dimension: spate watch top application") }
                kind = .top(dimension: try parseDimension(dimension, option: "dimension"), metric: try parseMetric(metric), limit: limit)
            case "series": kind = .series(metric: try parseMetric(metric), stepMs: 0, splitBy: try splitBy.map { try parseDimension($0, option: "--split-by") }, splitLimit: 5)
            case "totals": kind = .totals
            case "distinct": kind = .distinctSubscribers
            case "quantiles": kind = .rttQuantiles([0.5, 0.9, 0.99])
            default: throw ValidationError("unknown widget '\(widget ?? "")' (top, series, totals, distinct, quantiles)")
            }
            d = Dashboard(title: "spate watch \(widget!)", columns: 1, refreshMs: 5000, widgets: [Widget(title: widget!, query: Query(range: range, filters: filters, view: query.view, kind: kind))])
        }
        if let refresh, let ms = TimeParsing.durationMs(refresh) { d.refreshMs = UInt32(ms) }
        return d
    }

    func run() async throws {
        let dashboard = try makeDashboard()
        let screen = Screen(dashboard: dashboard, interactive: !once && isatty(STDOUT_FILENO) == 1 && connection.format == .table)
        try await withClient(connection) { client in
            let deadline = seconds.map { ContinuousClock.now + .milliseconds(Int64($0 * 1000)) }
            screen.begin()
            defer { screen.end() }
            let stop = SignalStop()
            await withTaskGroup(of: Void.self) { group in
                for (i, w) in dashboard.widgets.enumerated() {
                    group.addTask {
                        while !Task.isCancelled {
                            do {
                                for try await r in client.watch(w.query, refreshMs: dashboard.refreshMs) { screen.update(i, .success(r)) }
                                screen.update(i, .failure(RPCError(.unavailable, "the watch ended")))
                            } catch let e as RPCError {
                                screen.update(i, .failure(e))
                                if e.code == .invalidArgument || e.code == .notFound || e.code == .unauthenticated { return }
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
                        if let deadline, ContinuousClock.now >= deadline { break }
                        if once && screen.allAnswered { break }
                        screen.redraw()
                        try? await Task.sleep(for: .milliseconds(250))
                    }
                }
                await group.next()
                // What the watches report while being torn down is not news.
                screen.freeze()
                group.cancelAll()
            }
            if !screen.interactive { screen.printOnce(format: connection.format) }
        }
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

    var allAnswered: Bool { lock.withLock { answers.count == dashboard.widgets.count && answers.values.allSatisfy { $0.lastGood != nil } } }

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
            let age = Int(Date().timeIntervalSince1970 * 1000) - Int(good.computedAtMs)
            if age > Int(dashboard.refreshMs) * 3 { lines.append(Format.paint("stale: last answer \(age / 1000)s ago", "33")) }
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
