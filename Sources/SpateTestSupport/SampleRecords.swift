public import SpateModel

/// Deterministic, varied records for codec and transport tests: IPv4 and IPv6, empty and
/// non-ASCII strings, zero and maximal integers — maximal within the ingest boundary rules
/// (`RecordLimits`: 2^46 bytes, 2^40 packets, 2^24 flows per record), so every sample is a
/// valid record.
public enum SampleRecords {
    /// The per-record ceilings of the ingest boundary (`RecordLimits` in SpateCodec).
    public static let maxBytes: UInt64 = 1 << 46
    public static let maxPackets: UInt64 = 1 << 40
    public static let maxFlows: UInt32 = 1 << 24

    public static func make(count: Int, seed: UInt64 = 1, probeID: UInt32 = 7) -> [FlowRecord] {
        var rng = SplitMix64(seed: seed)
        let apps = ["youtube", "netflix", "dns", "whatsapp", "zoom", "ssh", "unknown", "tiktok-live", "bänk-app", "微信"]
        return (0..<count).map { i in
            let extreme = i % 97 == 0
            let v6 = i % 3 == 0
            let start = 1_700_000_000_000 + UInt64(i) * 37
            return FlowRecord(
                startTimeMs: start,
                endTimeMs: extreme ? start + 3_600_000 : start + rng.next() % 60_000,
                probeID: extreme ? UInt32.max : probeID,
                interfaceIndex: UInt32(truncatingIfNeeded: rng.next() % 8),
                clientIP: v6 ? .v6(0x2001_0db8_0000_0000 | rng.next() % 0xffff, rng.next()) : .v4(UInt32(truncatingIfNeeded: rng.next())),
                serverIP: v6 ? .v6(rng.next(), rng.next()) : .v4(UInt32(truncatingIfNeeded: rng.next())),
                clientPort: extreme ? UInt16.max : UInt16(truncatingIfNeeded: rng.next()),
                serverPort: extreme ? 0 : 443,
                l4Protocol: extreme ? UInt8.max : (i % 5 == 0 ? 17 : 6),
                application: apps[Int(rng.next() % UInt64(apps.count))],
                applicationCategory: i % 4 == 0 ? "" : "video",
                host: i % 2 == 0 ? "" : "edge-\(i).example.com",
                subscriberID: "sub-\(rng.next() % 1000)",
                deviceType: i % 7 == 0 ? "" : "android",
                country: i % 11 == 0 ? "" : "FR",
                bytesUp: extreme ? Self.maxBytes : rng.next() % 1_000_000,
                bytesDown: extreme ? Self.maxBytes - 1 : rng.next() % 10_000_000,
                packetsUp: extreme ? Self.maxPackets : rng.next() % 1000,
                packetsDown: rng.next() % 10_000,
                flows: extreme ? Self.maxFlows : UInt32(i % 3),
                rttMicros: extreme ? UInt32.max : UInt32(truncatingIfNeeded: rng.next() % 200_000),
                retransmissions: extreme ? UInt32.max : UInt32(truncatingIfNeeded: rng.next() % 5))
        }
    }
}

/// A tiny deterministic generator for tests (SplitMix64).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
