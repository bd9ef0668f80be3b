import Foundation

/// xoshiro256** — fast, deterministic for a given seed on every platform.
struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var sm = seed
        func splitmix() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    @inline(__always)
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in 0..<n.
    @inline(__always)
    mutating func below(_ n: Int) -> Int { Int(((next() >> 32) &* UInt64(n)) >> 32) }
}

/// Walker/Vose alias table: O(1) sampling from a fixed discrete distribution.
struct AliasTable: Sendable {
    private let probability: [Double]
    private let alias: [Int32]

    init(weights: [Double]) {
        let n = weights.count
        precondition(n > 0 && n < Int(Int32.max))
        let total = weights.reduce(0, +)
        var scaled = weights.map { $0 * Double(n) / total }
        var small: [Int] = []
        var large: [Int] = []
        for (i, p) in scaled.enumerated() { if p < 1 { small.append(i) } else { large.append(i) } }
        var prob = [Double](repeating: 1, count: n)
        var al = [Int32](repeating: 0, count: n)
        for i in 0..<n { al[i] = Int32(i) }
        while let s = small.popLast(), let l = large.last {
            prob[s] = scaled[s]
            al[s] = Int32(l)
            scaled[l] -= 1 - scaled[s]
            if scaled[l] < 1 {
                large.removeLast()
                small.append(l)
            }
        }
        probability = prob
        alias = al
    }

    /// Zipf weights 1/rank^exponent for ranks 1...n.
    static func zipf(count n: Int, exponent: Double) -> AliasTable {
        AliasTable(weights: (1...n).map { 1 / pow(Double($0), exponent) })
    }

    @inline(__always)
    func sample(_ rng: inout Xoshiro256) -> Int {
        let i = rng.below(probability.count)
        return rng.unit() < probability[i] ? i : Int(alias[i])
    }
}

/// Standard normal samples from a quantile table (±3.7σ), cheaper than Box–Muller.
struct NormalTable: Sendable {
    private static let size = 1 << 14
    private let values: [Double]

    init() {
        values = (0..<Self.size).map { i in Self.quantile((Double(i) + 0.5) / Double(Self.size)) }
    }

    @inline(__always)
    func sample(_ rng: inout Xoshiro256) -> Double { values[Int(rng.next() >> 50)] }

    /// Acklam's rational approximation of the inverse normal CDF (relative error < 1.2e-9).
    static func quantile(_ p: Double) -> Double {
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let low = 0.02425
        if p < low {
            let q = (-2 * log(p)).squareRoot()
            return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        if p > 1 - low {
            let q = (-2 * log(1 - p)).squareRoot()
            return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        let q = p - 0.5
        let r = q * q
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    }
}

/// A 64-bit mix (SplitMix64's finalizer) for deterministic per-item decisions.
@inline(__always)
func mix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
