import SpateModel

/// One daily index of a view, as the store lists it.
public struct DailyIndex: Sendable, Hashable {
    public var name: String
    public var view: String
    /// Days since the Unix epoch (UTC) of the index's day.
    public var day: Int64
    public var bytes: Int64
    public var documents: Int64

    public init(name: String, view: String, day: Int64, bytes: Int64, documents: Int64) {
        self.name = name
        self.view = view
        self.day = day
        self.bytes = bytes
        self.documents = documents
    }

    /// "YYYY.MM.DD".
    public var dayText: String { IndexNaming.day(UInt64(day) * 86_400_000) }
}

/// What retention will delete, and why. Pure: the same inputs always give the same plan, so
/// a run that died half way is finished by the next one.
public struct RetentionPlan: Sendable, Hashable {
    public struct Deletion: Sendable, Hashable {
        public var index: DailyIndex
        /// "age" (older than the view keeps) or "size" (over the total cap).
        public var reason: String
    }

    public var deletions: [Deletion]
    /// Set when today's indices alone are over the cap (they are never deleted).
    public var overCapWithTodayOnly: Bool
    /// Bytes of the indices that stay.
    public var remainingBytes: Int64

    /// - Parameters:
    ///   - maxAgeDays: days each view keeps, today included (3 keeps today and the 2 days before).
    ///   - bucketMs: each view's resolution; within one day finer views go first.
    ///   - today: today's day number (UTC).
    public init(indices: [DailyIndex], maxAgeDays: [String: UInt32], bucketMs: [String: UInt64], today: Int64, maxTotalBytes: Int64) {
        var deletions: [Deletion] = []
        var kept: [DailyIndex] = []
        for i in indices {
            let keep = Int64(maxAgeDays[i.view] ?? 10)
            if i.day < today - (keep - 1) && i.day < today {
                deletions.append(Deletion(index: i, reason: "age"))
            } else {
                kept.append(i)
            }
        }
        // Oldest day first; within a day, finest resolution first; then by name for a total order.
        kept.sort { a, b in
            if a.day != b.day { return a.day < b.day }
            let (ra, rb) = (bucketMs[a.view] ?? 60_000, bucketMs[b.view] ?? 60_000)
            if ra != rb { return ra < rb }
            return a.name < b.name
        }
        // Exact whatever the sizes: 128 bits hold any sum of Int64 sizes.
        var total = kept.reduce(Int128(0)) { $0 + Int128($1.bytes) }
        var overCap = false
        var remaining: [DailyIndex] = []
        for i in kept {
            if total > Int128(maxTotalBytes) && i.day < today {
                deletions.append(Deletion(index: i, reason: "size"))
                total -= Int128(i.bytes)
            } else {
                remaining.append(i)
            }
        }
        if total > Int128(maxTotalBytes) { overCap = true }
        self.deletions = deletions
        overCapWithTodayOnly = overCap
        remainingBytes = Int64(clamping: total)
    }

    /// Parses `<prefix>-<view>-YYYY.MM.DD` for the known views; nil for anything else.
    public static func parse(_ name: String, prefix: String, views: [String]) -> (view: String, day: Int64)? {
        for v in views.sorted(by: { $0.count > $1.count }) {
            let head = "\(prefix)-\(v)-"
            guard name.hasPrefix(head) else { continue }
            let date = name.dropFirst(head.count).split(separator: ".")
            // Spate writes days from 2000 to 2099 only (event times are checked against that
            // range): another year is not one of its daily indices.
            guard date.count == 3, let y = Int64(date[0]), let m = Int64(date[1]), let d = Int64(date[2]),
                (2000...2099).contains(y), (1...12).contains(m), (1...31).contains(d), date[0].count == 4, date[1].count == 2,
                date[2].count == 2
            else { return nil }
            return (v, IndexNaming.days(year: y, month: m, day: d))
        }
        return nil
    }
}
