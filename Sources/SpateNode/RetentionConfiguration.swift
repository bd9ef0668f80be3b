import Foundation
public import SpateModel

/// Index lifecycle settings (`retention:` section).
public struct RetentionConfiguration: Sendable {
    /// Days of data kept per view; views not named use `defaultDays(for:)`.
    public var maxAgeDays: [String: UInt32]
    /// The cap on all Spate indices together; the oldest daily indices go first.
    public var maxTotalBytes: Int64
    public var checkInterval: Duration
    /// How long a retention lease lives without renewal (a dead node's lease expires).
    public var lease: Duration
    /// Whether this node takes part in retention at all.
    public var enabled: Bool

    /// 10 days for views finer than an hour, 90 days for coarser ones.
    public static func defaultDays(for view: ViewDefinition) -> UInt32 { view.bucketMs < 3_600_000 ? 10 : 90 }
}

extension NodeConfiguration {
    /// Days of data kept for `view`.
    public func retentionDays(for view: ViewDefinition) -> UInt32 {
        retention.maxAgeDays[view.name] ?? RetentionConfiguration.defaultDays(for: view)
    }

    static let retentionKeys = ["max_total_bytes", "check_interval", "lease", "enabled"]

    static func buildRetention(_ t: ConfigTree, views: [ViewDefinition]) throws -> RetentionConfiguration {
        var ages: [String: UInt32] = [:]
        if let node = t.node("retention.max_age") {
            guard case .map(let pairs) = node else { throw ConfigurationError("retention.max_age", "expected a mapping of view name to age (e.g. app_1m: 10d)") }
            for (view, v) in pairs {
                let key = "retention.max_age.\(view)"
                guard views.contains(where: { $0.name == view }) else {
                    throw ConfigurationError(key, "no view is called '\(view)' (views: \(views.map(\.name).joined(separator: ", ")))")
                }
                guard case .scalar(let text) = v else { throw ConfigurationError(key, "expected an age such as 10d") }
                let d = try ConfigValue.duration(text, key: key)
                let days = d.components.seconds / 86_400
                guard days >= 1, d.components.seconds % 86_400 == 0 else { throw ConfigurationError(key, "'\(text)' must be whole days, at least 1d") }
                ages[view] = UInt32(days)
            }
            t.markSubtree("retention.max_age")
        }
        func scalar(_ k: String) throws -> String? { try t.scalar("retention.\(k)") }
        let enabledText = try scalar("enabled") ?? "true"
        guard ["true", "false"].contains(enabledText) else { throw ConfigurationError("retention.enabled", "'\(enabledText)' must be true or false") }
        let lease = try scalar("lease").map { try ConfigValue.duration($0, key: "retention.lease") } ?? .seconds(60)
        guard lease >= .seconds(2) else { throw ConfigurationError("retention.lease", "must be at least 2s") }
        let interval = try scalar("check_interval").map { try ConfigValue.duration($0, key: "retention.check_interval") } ?? .seconds(300)
        guard interval >= .milliseconds(500) else { throw ConfigurationError("retention.check_interval", "must be at least 500ms") }
        let cap = try scalar("max_total_bytes").map { try ConfigValue.bytes($0, key: "retention.max_total_bytes") } ?? 5_000_000_000_000
        guard cap > 0 else { throw ConfigurationError("retention.max_total_bytes", "must be positive") }
        return RetentionConfiguration(maxAgeDays: ages, maxTotalBytes: cap, checkInterval: interval, lease: lease, enabled: enabledText == "true")
    }
}
