public import Foundation
public import SpateElastic
public import SpateSchema
public import SpateModel
public import Synchronization
public import SpateIngest
import SpateWire

/// Plans, caches and coalesces queries. A result is cached per normalized plan (view,
/// bucket-aligned range, step, filters, kind) until the view's next flush is due; identical
/// queries in flight share one store request. The cache holds at most `cacheMaxBytes`
/// (estimated) of answers (`AnswerCache`).
public final class QueryEngine: Sendable {
    public let planner: QueryPlanner
    public let executor: QueryExecutor
    /// Closed slots cached, the store asked only for what can still change (nil: every
    /// answer from the store over its whole range).
    public let incremental: IncrementalExecutor?
    private let clock: @Sendable () -> UInt64
    private let state: Mutex<State>
    /// Store requests made, answers served from cache, and queries that joined one in flight.
    public let storeQueries = Atomic<UInt64>(0)
    public let cacheHits = Atomic<UInt64>(0)
    public let coalesced = Atomic<UInt64>(0)

    /// Bound of the answer cache, in estimated bytes (`query.cache_max_bytes`).
    public let cacheMaxBytes: Int

    private struct State {
        var cache: AnswerCache<QueryPlan, QueryResult>
        var inFlight: [QueryPlan: Task<QueryResult, any Error>] = [:]
    }

    /// An engine over `views`; `cacheMaxBytes` bounds its answer cache, and its closed-slot
    /// cache when `horizons` is given (IncrementalExecutor).
    public init(
        client: ElasticClient, naming: IndexNaming, views: [PlannableView], cacheMaxBytes: Int = 64 << 20,
        horizons: ClosedHorizons? = nil, live: (@Sendable (OpenBucketRequest) async -> LiveAnswer)? = nil, fillIntervalMs: UInt64 = 20_000,
        clock: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }
    ) {
        planner = QueryPlanner(views: views)
        executor = QueryExecutor(client: client, naming: naming)
        incremental = horizons.map {
            IncrementalExecutor(plain: QueryExecutor(client: client, naming: naming), horizons: $0, maxBytes: cacheMaxBytes, live: live, fillIntervalMs: fillIntervalMs,
                clock: clock)
        }
        self.cacheMaxBytes = cacheMaxBytes
        state = Mutex(State(cache: AnswerCache(maxBytes: cacheMaxBytes)))
        self.clock = clock
    }

    /// Answers cached now, and their estimated bytes (tests, metrics).
    public var cacheUsage: (entries: Int, bytes: Int) { state.withLock { ($0.cache.count, $0.cache.bytes) } }

    /// Memory an answer holds, estimated from its parts (strings, rows, points).
    public static func estimatedBytes(_ r: QueryResult) -> Int {
        var n = 256 + r.view.utf8.count + r.quantiles.count * 16
        for row in r.top { n += 96 + row.value.utf8.count }
        for s in r.series { n += 64 + s.label.utf8.count + s.points.count * 16 }
        return n
    }

    /// Memory a cache key's filters hold, estimated (up to 1,024 values of any length).
    static func estimatedBytes(_ filters: [QueryFilter]) -> Int {
        filters.reduce(0) { $0 + 64 + $1.values.reduce(0) { $0 + 16 + $1.utf8.count } }
    }

    /// The plan `query` gets now (for tests and explanations).
    /// - Throws: `RPCError` INVALID_ARGUMENT or NOT_FOUND when the planner refuses the query.
    public func plan(_ query: Query) throws -> QueryPlan { try plan(query, nowMs: clock()) }

    private func plan(_ query: Query, nowMs: UInt64) throws -> QueryPlan {
        do { return try planner.plan(query, nowMs: nowMs) } catch let e as QueryPlanError {
            throw RPCError(e.code == .unknownView ? .notFound : .invalidArgument, e.message)
        }
    }

    /// Answers `query`: from the cache, by joining an identical query in flight, or from the store.
    public func run(_ query: Query) async throws -> QueryResult {
        let now = clock()
        let plan = try plan(query, nowMs: now)
        enum Step { case cached(QueryResult), join(Task<QueryResult, any Error>), start(Task<QueryResult, any Error>) }
        let step: Step = state.withLock { s in
            if let hit = s.cache.value(plan, nowMs: now) { return .cached(hit) }
            if let running = s.inFlight[plan] { return .join(running) }
            let executor = executor
            let incremental = incremental
            let task = Task {
                if let incremental { return try await incremental.execute(plan, nowMs: now) }
                return try await executor.execute(plan, nowMs: now)
            }
            s.inFlight[plan] = task
            return .start(task)
        }
        switch step {
        case .cached(var r):
            cacheHits.add(1, ordering: .relaxed)
            r.cached = true
            return r
        case .join(let task):
            coalesced.add(1, ordering: .relaxed)
            return try await task.value
        case .start(let task):
            storeQueries.add(1, ordering: .relaxed)
            do {
                let r = try await task.value
                // With the live tier an answer is as fresh as the owners' memory: kept 1 s (the
                // shortest refresh), not until the view's next flush.
                let ttl = incremental?.live != nil ? 1000 : max(1000, plan.view.flushIntervalMs)
                state.withLock { s in
                    s.inFlight[plan] = nil
                    // The key is charged too: its filters can hold 1,024 values.
                    s.cache.insert(plan, r, size: Self.estimatedBytes(r) + Self.estimatedBytes(plan.filters), expiresMs: now + ttl, nowMs: now)
                }
                return r
            } catch {
                state.withLock { $0.inFlight[plan] = nil }
                throw error
            }
        }
    }
}
