import Foundation
public import SpateModel
public import SpateWire
import Synchronization

/// Shares refresh loops between watchers: every watcher of the same query and refresh
/// interval is served by one loop, so a dashboard costs the store the same for one viewer or
/// fifty. A loop stops when its last watcher leaves.
public final class WatchHub: Sendable {
    public typealias Update = Result<QueryResult, RPCError>

    private struct Key: Hashable {
        var query: Query
        var refreshMs: UInt32
    }

    private final class Loop: Sendable {
        let watchers = Mutex<[UInt64: AsyncStream<Update>.Continuation]>([:])
        let last = Mutex<Update?>(nil)
        let task = Mutex<Task<Void, Never>?>(nil)
    }

    private let engine: QueryEngine
    private let loops = Mutex<[Key: Loop]>([:])
    private let nextID = Atomic<UInt64>(0)
    /// The shortest refresh interval accepted.
    public let minimumRefreshMs: UInt32

    public init(engine: QueryEngine, minimumRefreshMs: UInt32 = 1000) {
        self.engine = engine
        self.minimumRefreshMs = minimumRefreshMs
    }

    /// Refresh loops running now.
    public var activeLoops: Int { loops.withLock { $0.count } }

    /// Starts watching; the stream yields a result (or error) per refresh until `cancel` is
    /// called with the returned token.
    public func watch(_ query: Query, refreshMs: UInt32) -> (token: UInt64, updates: AsyncStream<Update>) {
        let key = Key(query: query, refreshMs: max(refreshMs, minimumRefreshMs))
        let id = nextID.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream<Update>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let engine = engine
        // Joining, starting the loop and leaving all happen under `loops`, so a watcher never
        // joins a loop its last watcher just stopped.
        _ = loops.withLock { loops -> Loop in
            if let l = loops[key] {
                // The last answer first, taken with the watcher list held so a newer one the
                // loop is about to send cannot be overtaken by it.
                l.watchers.withLock { w in
                    w[id] = continuation
                    if let last = l.last.withLock({ $0 }) { continuation.yield(last) }
                }
                return l
            }
            let l = Loop()
            l.watchers.withLock { $0[id] = continuation }
            loops[key] = l
            let task = Task {
                while !Task.isCancelled {
                    let started = ContinuousClock.now
                    let update: Update
                    do { update = .success(try await engine.run(key.query)) } catch let e as RPCError {
                        update = .failure(e)
                    } catch {
                        update = .failure(RPCError(.internal, "\(error)"))
                    }
                    l.last.withLock { $0 = update }
                    for c in l.watchers.withLock({ Array($0.values) }) { c.yield(update) }
                    // One refresh per interval, however long the store took (at least 10% rest).
                    let interval = Duration.milliseconds(Int64(key.refreshMs))
                    let rest = max(interval - (ContinuousClock.now - started), interval / 10)
                    try? await Task.sleep(for: rest)
                }
            }
            l.task.withLock { $0 = task }
            return l
        }
        continuation.onTermination = { [weak self] _ in self?.leave(key: key, id: id) }
        return (id, stream)
    }

    private func leave(key: Key, id: UInt64) {
        loops.withLock { loops in
            guard let loop = loops[key] else { return }
            let empty = loop.watchers.withLock { w in
                w[id] = nil
                return w.isEmpty
            }
            if empty {
                loop.task.withLock { $0?.cancel() }
                loops[key] = nil
            }
        }
    }
}
