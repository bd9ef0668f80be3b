import SpateModel
import SpateQuery
import SpateWire
import Testing

@Suite("Query planner")
struct QueryPlannerTests {
    static let views = ViewDefinition.defaults.map { PlannableView(definition: $0, retentionDays: $0.bucketMs < 3_600_000 ? 10 : 90) }
    let planner = QueryPlanner(views: views)
    let now: UInt64 = 1_795_000_000_000 - 1_795_000_000_000 % 3_600_000 + 600_000  // 10 minutes past an hour

    @Test("the coarsest view that answers within the rounding tolerance", arguments: [
        (UInt64(900_000), "app_1m"),  // 15 minutes: hours would double the range
        (6 * 3_600_000, "app_1m"),  // 6 h ending 10 min past the hour: hour buckets add 50 min (14%)
        (48 * 3_600_000, "app_1h"),  // 2 days: hour rounding adds under 2%
        (20 * 86_400_000, "app_1h"),  // beyond the minute view's 10 days
    ] as [(UInt64, String)])
    func coarsest(lastMs: UInt64, view: String) throws {
        let plan = try planner.plan(Query(range: .last(ms: lastMs), kind: .totals), nowMs: now)
        #expect(plan.view.name == view)
        #expect(plan.startMs % plan.view.bucketMs == 0 && plan.endMs % plan.view.bucketMs == 0)
        #expect(plan.startMs <= now - lastMs && plan.endMs >= now)
    }

    @Test("dimensions and sketches decide which views can answer")
    func dimensions() throws {
        let sub = try planner.plan(Query(range: .last(ms: 86_400_000), kind: .top(dimension: .subscriber, metric: .bytes, limit: 5)), nowMs: now)
        #expect(sub.view.name == "subscriber_5m")
        let server = try planner.plan(Query(range: .last(ms: 3_600_000), filters: [QueryFilter(dimension: .serverPort, op: .eq, values: ["443"])], kind: .totals), nowMs: now)
        #expect(server.view.name == "server_1m")
        let distinct = try planner.plan(Query(range: .last(ms: 7 * 86_400_000), kind: .distinctSubscribers), nowMs: now)
        #expect(distinct.view.name == "app_1h")
        let e = #expect(throws: QueryPlanError.self) { _ = try planner.plan(Query(range: .last(ms: 60_000), kind: .top(dimension: .country, metric: .bytes, limit: 3)), nowMs: now) }
        #expect(e?.code == .invalidQuery)
    }

    @Test("series steps: about 60 points, multiples of the view's bucket")
    func steps() throws {
        let day = try planner.plan(Query(range: .last(ms: 86_400_000), kind: .series(metric: .bytes, stepMs: 0, splitBy: nil, splitLimit: 5)), nowMs: now)
        #expect(day.stepMs == 1_800_000)
        #expect(day.stepMs % day.view.bucketMs == 0)
        let hour = try planner.plan(Query(range: .last(ms: 3_600_000), kind: .series(metric: .bytes, stepMs: 0, splitBy: nil, splitLimit: 5)), nowMs: now)
        #expect(hour.stepMs == 60_000 && hour.view.name == "app_1m")
        let odd = #expect(throws: QueryPlanError.self) {
            _ = try planner.plan(Query(range: .last(ms: 3_600_000), kind: .series(metric: .bytes, stepMs: 90_000_001, splitBy: nil, splitLimit: 5)), nowMs: now)
        }
        #expect(odd?.code == .invalidQuery)
    }

    @Test("query cost: a daily series over 27 years split by application, too many filters or values are refused before the store")
    func cost() throws {
        let years = Query(
            range: .absolute(startMs: 946_684_800_000, endMs: 946_684_800_000 + 27 * 365 * 86_400_000),
            kind: .series(metric: .bytes, stepMs: 86_400_000, splitBy: .application, splitLimit: 5))
        let split = #expect(throws: QueryPlanError.self) { _ = try planner.plan(years, nowMs: now) }
        #expect(split?.code == .invalidQuery)
        #expect(split?.message.contains("65535 buckets") == true)
        // The same range unsplit, or split over a day in 5-minute steps, is fine.
        _ = try planner.plan(Query(range: years.range, kind: .series(metric: .bytes, stepMs: 86_400_000, splitBy: nil, splitLimit: 5)), nowMs: now)
        _ = try planner.plan(Query(range: .last(ms: 86_400_000), kind: .series(metric: .bytes, stepMs: 300_000, splitBy: .application, splitLimit: 5)), nowMs: now)
        let filter = QueryFilter(dimension: .application, op: .eq, values: ["a"])
        let many = #expect(throws: QueryPlanError.self) {
            _ = try planner.plan(Query(range: .last(ms: 60_000), filters: Array(repeating: filter, count: 33), kind: .totals), nowMs: now)
        }
        #expect(many?.code == .invalidQuery)
        let values = QueryFilter(dimension: .application, op: .in, values: (0..<1025).map(String.init))
        #expect(throws: QueryPlanError.self) { _ = try planner.plan(Query(range: .last(ms: 60_000), filters: [values], kind: .totals), nowMs: now) }
        #expect(throws: QueryPlanError.self) {
            _ = try planner.plan(Query(range: .last(ms: 60_000), kind: .rttQuantiles(Array(repeating: 0.5, count: 101))), nowMs: now)
        }
        _ = try planner.plan(Query(range: .last(ms: 60_000), kind: .rttQuantiles(Array(repeating: 0.5, count: 100))), nowMs: now)
    }
}
