import Foundation
import SpateCodec
import SpateModel

/// Maps a record's global index to its event time: `start + index × 1000 × speedup / eventRate`
/// milliseconds. Event time never reads the wall clock, so a seed fully determines the bytes.
public struct EventClock: Sendable {
    public var startMs: UInt64
    /// Records per second of wall time the event time assumes.
    public var eventRate: Double
    public var speedup: Double

    public init(startMs: UInt64, eventRate: Double, speedup: Double) {
        self.startMs = startMs
        self.eventRate = eventRate
        self.speedup = speedup
    }

    /// Saturates at `TimeParsing.maxInstantMs` (year 9999) rather than trapping on overflow.
    @inline(__always)
    public func timeMs(ofRecord index: UInt64) -> UInt64 {
        let offset = Double(index) * 1000 * speedup / eventRate
        guard offset.isFinite, offset < Double(TimeParsing.maxInstantMs) else { return TimeParsing.maxInstantMs }
        return min(TimeParsing.maxInstantMs, startMs &+ UInt64(offset))
    }
}

/// What one Kafka message adds to the manifest once acknowledged.
struct MessageContribution: Sendable {
    var records: UInt64 = 0
    /// Key: minute index << 20 | application index.
    var byMinuteApplication: [(key: UInt64, totals: FlowTotals)] = []
    /// Key: minute index << 20 | probe id.
    var byMinuteProbe: [(key: UInt64, totals: FlowTotals)] = []
    var firstEventMs: UInt64 = .max
    var lastEventMs: UInt64 = 0
    /// Non-nil for an injected malformed message: its kind.
    var malformedKind: String?
}

/// Generates realistic DPI flow records into a `RecordBatchBuilder`.
///
/// Applications follow a Zipf popularity over the catalog; each probe sees its own subscriber
/// population with heavy hitters (Zipf); addresses mix IPv4 and IPv6; server ports fit the
/// application; volumes and durations are log-normal per application profile; RTT depends on
/// the server country; retransmissions scale with packets on TCP.
final class TrafficGenerator {
    let builder: RecordBatchBuilder
    private var rngState: Xoshiro256
    private let normal = NormalTable()
    private let appTable: AliasTable
    private let countryTable: AliasTable
    private let subscriberTable: AliasTable
    /// Which of a subscriber's 12 favourite applications a record uses.
    private let favoriteTable = AliasTable.zipf(count: 12, exponent: 1.2)
    private let apps: [ApplicationSpec]
    private let appNames: [InternedString]
    private let appCategories: [InternedString]
    /// Per app: "edge<n>.<domain>" hosts (empty when the app has no domain).
    private let appHosts: [[InternedString]]
    private let appServerPrefix: [UInt32]
    private let countries: [InternedString]
    private let countryRTT: [Double]
    private let subscriberIDs: [InternedString]
    /// Each subscriber keeps one device type.
    private let subscriberDevices: [InternedString]
    private let empty: InternedString
    let probes: Int
    let subscribersPerProbe: Int
    /// Scratch per-application totals of the minute being generated, and which are non-zero.
    private var appTotals: [FlowTotals]
    private var touched: [Int] = []

    /// Application names, by catalog index (for the manifest).
    var applicationNames: [String] { apps.map(\.name) }

    init(seed: UInt64, probes: Int, subscribers: Int) {
        let builder = RecordBatchBuilder()
        self.builder = builder
        rngState = Xoshiro256(seed: seed)
        self.probes = probes
        apps = Catalog.applications
        appTotals = Array(repeating: FlowTotals(), count: Catalog.applications.count)
        appTable = AliasTable.zipf(count: apps.count, exponent: 1.05)
        countryTable = AliasTable(weights: Catalog.countries.map(\.weight))
        subscribersPerProbe = max(1, subscribers / probes)
        // Heavy hitters: a steep head over each probe's local ranks.
        subscriberTable = AliasTable.zipf(count: subscribersPerProbe, exponent: 0.9)
        empty = builder.intern("")
        appNames = apps.map { builder.intern($0.name) }
        appCategories = apps.map { builder.intern($0.category) }
        appHosts = apps.map { spec in
            spec.domain.isEmpty ? [] : (0..<12).map { builder.intern("edge\($0).\(spec.domain)") } + [builder.intern(spec.domain)]
        }
        appServerPrefix = apps.indices.map { i in
            // 8 consecutive /24s per application in public-looking space.
            let h = mix64(UInt64(i) &+ 0x5EED)
            return UInt32(truncatingIfNeeded: (h % 200 + 20) << 24 | (h >> 8 & 0xff) << 16 | (h >> 16 & 0xf8) << 8)
        }
        countries = Catalog.countries.map { builder.intern($0.code) }
        countryRTT = Catalog.countries.map(\.rttMicros)
        let deviceNames = Catalog.deviceTypes.map { builder.intern($0.name) }
        let deviceTable = AliasTable(weights: Catalog.deviceTypes.map(\.weight))
        var deviceRNG = Xoshiro256(seed: seed ^ 0xDE71CE)
        let total = subscribersPerProbe * probes
        subscriberIDs = (0..<total).map { builder.intern(String(format: "sub-%07d", $0)) }
        subscriberDevices = (0..<total).map { _ in deviceNames[deviceTable.sample(&deviceRNG)] }
    }

    /// Fills the builder's current batch with `count` records of `probe` (1-based), the first
    /// with global index `firstIndex`, and accumulates their manifest contribution.
    func generate(probe: UInt32, firstIndex: UInt64, count: Int, clock: EventClock, into contribution: inout MessageContribution) {
        // A local copy: class-property access in the loop would cost an exclusivity check per draw.
        var rng = rngState
        defer { rngState = rng }
        var currentMinute = clock.timeMs(ofRecord: firstIndex) / 60_000
        var fields = RecordFields(empty: empty)
        fields.probeID = probe
        for k in 0..<count {
            let end = clock.timeMs(ofRecord: firstIndex + UInt64(k))
            let localSubscriber = subscriberTable.sample(&rng)
            let s = localSubscriber * probes + Int(probe - 1)
            let sHash = mix64(UInt64(s))
            // People use a handful of applications: 90% of a subscriber's records come from
            // their own favourites (drawn once from the global popularity), 10% from anywhere.
            let a: Int
            if rng.unit() < 0.9 {
                var personal = Xoshiro256(seed: sHash ^ UInt64(favoriteTable.sample(&rng)) &* 0x9E37_79B9)
                a = appTable.sample(&personal)
            } else {
                a = appTable.sample(&rng)
            }
            let spec = apps[a]

            fields.endTimeMs = end
            fields.application = appNames[a]
            fields.applicationCategory = appCategories[a]
            fields.subscriberID = subscriberIDs[s]
            fields.deviceType = subscriberDevices[s]
            fields.interfaceIndex = UInt32(sHash >> 40 & 3)

            let p = spec.protocols.count == 1 || rng.unit() < 0.7 ? spec.protocols[0] : spec.protocols[1 + rng.below(spec.protocols.count - 1)]
            fields.l4Protocol = p
            fields.serverPort = spec.ports.count == 1 || rng.unit() < 0.8 ? spec.ports[0] : spec.ports[rng.below(spec.ports.count)]
            fields.clientPort = p == 1 ? 0 : UInt16(1024 + rng.below(64_511))

            let useV6 = sHash & 1 == 0 && rng.unit() < 0.6
            if useV6 {
                fields.clientIP = .v6(0x2001_0db8_0000_0000 | (sHash >> 16 & 0xffff_ffff), rng.next())
                fields.serverIP = .v6(0x2a00_1450_0000_0000 | UInt64(a) << 16 | UInt64(rng.below(8)), UInt64(rng.below(4096)) + 1)
            } else {
                fields.clientIP = .v4(0x6440_0000 | UInt32(truncatingIfNeeded: s) & 0x003f_ffff)
                fields.serverIP = .v4(appServerPrefix[a] | UInt32(rng.below(8)) << 8 | UInt32(1 + rng.below(254)))
            }

            let hosts = appHosts[a]
            fields.host = hosts.isEmpty || rng.unit() < 0.12 ? empty : hosts[rng.below(hosts.count)]
            let c = countryTable.sample(&rng)
            fields.country = countries[c]

            let prof = spec.profile
            let down = max(60, exp(prof.downMu + prof.downSigma * normal.sample(&rng)))
            let up = max(40, down * prof.upRatio * exp(0.6 * normal.sample(&rng)))
            fields.bytesDown = UInt64(min(down, 5e10))
            fields.bytesUp = UInt64(min(up, 5e10))
            fields.packetsDown = 1 + fields.bytesDown / UInt64(prof.downPacket)
            fields.packetsUp = 1 + fields.bytesUp / UInt64(prof.upPacket)
            if prof.foldedFlows > 1 {
                fields.flows = 1 + UInt32(rng.below(Int(prof.foldedFlows)))
            } else {
                fields.flows = rng.unit() < prof.interimShare ? 0 : 1
            }
            let measured = p == 6 || (p == 17 && fields.serverPort == 443)
            fields.rttMicros = measured ? UInt32(min(countryRTT[c] * exp(0.35 * normal.sample(&rng)), 4e6)) : 0
            if p == 6 {
                let loss = 0.002 * exp(normal.sample(&rng))
                fields.retransmissions = UInt32(min(Double(fields.packetsDown + fields.packetsUp) * loss, 1e6))
            } else {
                fields.retransmissions = 0
            }
            let durationMs = UInt64(min(exp(prof.durationMu + normal.sample(&rng)) * 1000, 3_600_000))
            fields.startTimeMs = end > durationMs ? end - durationMs : 0
            builder.append(fields)

            // Manifest bookkeeping: a batch spans one minute or two, so per-application
            // totals accumulate in a flat array that is folded when the minute changes.
            let minute = end / 60_000
            if minute != currentMinute {
                fold(minute: currentMinute, probe: probe, into: &contribution)
                currentMinute = minute
            }
            if appTotals[a].records == 0 { touched.append(a) }
            appTotals[a].add(flows: fields.flows, bytesUp: fields.bytesUp, bytesDown: fields.bytesDown, packetsUp: fields.packetsUp, packetsDown: fields.packetsDown)
            contribution.firstEventMs = min(contribution.firstEventMs, end)
            contribution.lastEventMs = max(contribution.lastEventMs, end)
        }
        fold(minute: currentMinute, probe: probe, into: &contribution)
        contribution.records = UInt64(count)
    }

    /// Moves the scratch totals of `minute` into the contribution.
    private func fold(minute: UInt64, probe: UInt32, into c: inout MessageContribution) {
        guard !touched.isEmpty else { return }
        var probeTotals = FlowTotals()
        for a in touched {
            c.byMinuteApplication.append((minute << 20 | UInt64(a), appTotals[a]))
            probeTotals.add(appTotals[a])
            appTotals[a] = FlowTotals()
        }
        touched.removeAll(keepingCapacity: true)
        c.byMinuteProbe.append((minute << 20 | UInt64(probe), probeTotals))
    }
}
