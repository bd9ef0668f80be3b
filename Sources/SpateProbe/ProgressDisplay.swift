import Foundation
import SpateModel

/// Shows a run's progress on stderr: one redrawn line on a terminal, a plain line every few
/// seconds otherwise, nothing with `--quiet`.
final class ProgressDisplay {
    private let style: ProbeOptions.ProgressStyle
    private let counters: ProbeCounters
    private let target: UInt64?
    private let duration: Duration?
    private let isTerminal: Bool
    private let start = ContinuousClock.now
    private var lastDraw: ContinuousClock.Instant
    private var lastAcked: UInt64 = 0
    private var lastBytes: UInt64 = 0
    private var lastSample: ContinuousClock.Instant

    init(style: ProbeOptions.ProgressStyle, counters: ProbeCounters, target: UInt64?, duration: Duration?) {
        self.style = style
        self.counters = counters
        self.target = target
        self.duration = duration
        isTerminal = isatty(STDERR_FILENO) == 1
        lastDraw = start
        lastSample = start
    }

    private var interval: Duration { isTerminal ? .milliseconds(250) : .seconds(5) }

    func tick(now: ContinuousClock.Instant, flushing: Bool = false) {
        guard style != .quiet, now - lastDraw >= interval else { return }
        draw(now: now, flushing: flushing, final: false)
    }

    func finish(now: ContinuousClock.Instant) {
        guard style != .quiet else { return }
        draw(now: now, flushing: false, final: true)
    }

    private func draw(now: ContinuousClock.Instant, flushing: Bool, final: Bool) {
        let acked = counters.recordsAcked.load(ordering: .relaxed)
        let sent = counters.recordsSent.load(ordering: .relaxed)
        let bytes = counters.bytesSent.load(ordering: .relaxed)
        let failed = counters.messagesFailed.load(ordering: .relaxed)
        let brokerErrors = counters.brokerErrors.load(ordering: .relaxed)
        let elapsed = (now - start).inSeconds
        let window = max((now - lastSample).inSeconds, 1e-3)
        let rate = final ? Double(acked) / max(elapsed, 1e-3) : Double(acked - lastAcked) / window
        let mbps = (final ? Double(bytes) / max(elapsed, 1e-3) : Double(bytes - lastBytes) / window) / 1e6
        lastAcked = acked
        lastBytes = bytes
        lastSample = now
        lastDraw = now

        var eta = ""
        if let target, rate > 0, !final {
            eta = " eta " + clockText(Double(target > sent ? target - sent : 0) / rate)
        } else if let duration, !final {
            eta = " eta " + clockText(max(0, duration.inSeconds - elapsed))
        }
        var line = "\(human(acked)) acked / \(human(sent)) sent  \(human(UInt64(clamping: rate)))/s  \(String(format: "%.1f", mbps)) MB/s  "
            + clockText(elapsed) + eta
        if failed > 0 { line += "  failed msgs \(failed)" }
        if brokerErrors > 0 { line += "  broker errors \(brokerErrors)" }
        if flushing { line += "  (awaiting acks)" }
        if final { line = "done: " + line }
        if isTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line + (final ? "\n" : "")).utf8))
        } else {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    /// `s` seconds as m:ss or h:mm:ss; "∞" from 10^9 s (31 years) on, where a `--count` near
    /// 2^64 puts the estimate (`Int(s)` trapped above Int.max).
    private func clockText(_ s: Double) -> String {
        guard s < 1e9 else { return "∞" }
        let t = Int(max(0, s).rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }

    private func human(_ v: UInt64) -> String {
        switch v {
        case 0..<10_000: return "\(v)"
        case 10_000..<10_000_000: return String(format: "%.1fk", Double(v) / 1e3)
        default: return String(format: "%.2fM", Double(v) / 1e6)
        }
    }
}
