import Foundation
import Logging
import SpateElastic
import SpateIngest
import SpateJSON
import Synchronization

/// One partition's flush: rollup documents, the dead letters they depend on, and the
/// checkpoint that becomes true once all of them are stored.
final class FlushTicket: Sendable {
    enum Outcome: Sendable { case stored, abandoned }

    let partition: Int32
    let body: BulkBody
    let resume: ResumeState
    /// Dead letters of this partition sent before the snapshot; all must settle first.
    let deadLetters: UInt64
    let bytes: Int
    let created = ContinuousClock.now
    private let outcome = Mutex<Outcome?>(nil)
    private let signal = DispatchSemaphore(value: 0)

    init(partition: Int32, body: BulkBody, resume: ResumeState, deadLetters: UInt64) {
        self.partition = partition
        self.body = body
        self.resume = resume
        self.deadLetters = deadLetters
        bytes = body.bytes.count
    }

    var result: Outcome? { outcome.withLock { $0 } }

    func finish(_ o: Outcome) {
        guard outcome.withLock({ old in
            if old != nil { return false }
            old = o
            return true
        }) else { return }
        signal.signal()
    }

    /// Blocks the calling (worker) thread until finished or `timeout`; nil on timeout.
    func wait(timeout: Duration) -> Outcome? {
        if let r = result { return r }
        let ms = Int(timeout.wholeMilliseconds)
        guard signal.wait(timeout: .now() + .milliseconds(ms)) == .success else { return nil }
        signal.signal()
        return result
    }
}

/// Limits concurrent work to `limit` holders, FIFO.
actor AsyncLimiter {
    private let limit: Int
    private var inUse = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = limit }

    func acquire() async {
        if inUse < limit {
            inUse += 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            inUse -= 1
        } else {
            waiters.removeFirst().resume()
        }
    }
}

/// Writes flush tickets to Elasticsearch: bounded concurrent bulks; 409 version conflicts
/// count as stored (a newer or equal version is there); 429, 5xx, timeouts and transport
/// errors are retried — only the failed items — with jittered exponential backoff, without
/// limit (an outage pauses ingest through the pending bounds instead); mapping errors and
/// other permanent item failures go to the dead-letter topic. The checkpoint is written last.
final class BulkWriter: Sendable {
    private let client: ElasticClient
    private let configuration: NodeConfiguration
    private let naming: IndexNaming
    private let counters: NodeCounters
    private let deadLetters: DeadLetterQueue
    private let logger: Logger
    private let limiter: AsyncLimiter
    private let stopping = Atomic<Bool>(false)
    private let metrics: NodeMetrics?
    /// Consecutive failed attempts across the node: > 0 means the store is failing now.
    let failingSince = Mutex<ContinuousClock.Instant?>(nil)

    init(
        client: ElasticClient, configuration: NodeConfiguration, counters: NodeCounters, deadLetters: DeadLetterQueue, metrics: NodeMetrics?,
        logger: Logger
    ) {
        self.client = client
        self.metrics = metrics
        self.configuration = configuration
        naming = IndexNaming(prefix: configuration.elasticsearch.indexPrefix)
        self.counters = counters
        self.deadLetters = deadLetters
        self.logger = logger
        limiter = AsyncLimiter(limit: configuration.elasticsearch.maxConcurrentBulks)
    }

    /// Gives up on tickets still retrying (shutdown past its grace).
    func stop() { stopping.store(true, ordering: .releasing) }

    /// Starts writing `ticket`; its outcome is set when done.
    func submit(_ ticket: FlushTicket) {
        counters.pendingDocuments.add(ticket.body.count, ordering: .relaxed)
        counters.pendingBytes.add(ticket.bytes, ordering: .relaxed)
        Task {
            let stored = await self.write(ticket)
            counters.pendingDocuments.subtract(ticket.body.count, ordering: .relaxed)
            counters.pendingBytes.subtract(ticket.bytes, ordering: .relaxed)
            ticket.finish(stored ? .stored : .abandoned)
        }
    }

    private func write(_ ticket: FlushTicket) async -> Bool {
        let chunks = split(ticket.body)
        let ok = await withTaskGroup(of: Bool.self) { group in
            for chunk in chunks { group.addTask { await self.writeChunk(chunk, partition: ticket.partition) } }
            var all = true
            for await r in group { all = all && r }
            return all
        }
        guard ok else { return false }
        await deadLetters.waitSettled(partition: ticket.partition, count: ticket.deadLetters)
        return await writeCheckpoint(ticket)
    }

    private func split(_ body: BulkBody) -> [BulkBody] {
        let maxDocs = configuration.elasticsearch.bulkMaxDocuments
        let maxBytes = configuration.elasticsearch.bulkMaxBytes
        if body.count <= maxDocs && body.bytes.count <= maxBytes { return body.count == 0 ? [] : [body] }
        var out: [BulkBody] = []
        var current: [Int] = []
        var bytes = 0
        for i in 0..<body.count {
            let n = body.item(i).count
            if !current.isEmpty && (current.count >= maxDocs || bytes + n > maxBytes) {
                out.append(body.subset(current))
                current = []
                bytes = 0
            }
            current.append(i)
            bytes += n
        }
        if !current.isEmpty { out.append(body.subset(current)) }
        return out
    }

    /// Writes one bulk until every item is stored, conflicted or dead-lettered.
    private func writeChunk(_ body: BulkBody, partition: Int32) async -> Bool {
        var pending = body
        var attempt = 0
        while true {
            if stopping.load(ordering: .acquiring) { return false }
            await limiter.acquire()
            let result: Result<BulkResponse, any Error>
            let started = ContinuousClock.now
            do { result = .success(try await client.bulk(pending)) } catch { result = .failure(error) }
            metrics?.bulkDuration.record(ContinuousClock.now - started)
            await limiter.release()
            counters.bulkRequests.add(1, ordering: .relaxed)
            switch result {
            case .failure(let error):
                let retriable = (error as? ElasticError)?.isRetriable ?? true
                if !retriable {
                    // The whole request was refused (e.g. 400 for a malformed body): nothing
                    // will change on retry; dead-letter every item.
                    logger.error("bulk of \(pending.count) documents refused: \(error)")
                    for i in 0..<pending.count { deadLetter(pending, i, partition: partition, reason: "store refused the bulk request: \(error)") }
                    counters.documentsRejected.add(UInt64(pending.count), ordering: .relaxed)
                    return true
                }
                noteFailure("bulk of \(pending.count) documents failed: \(error)")
            case .success(let response):
                var retry: [Int] = []
                var written: UInt64 = 0
                var conflicts: UInt64 = 0
                for (i, item) in response.items.enumerated() {
                    switch item.outcome {
                    case .written: written += 1
                    case .versionConflict: conflicts += 1
                    case .retriable: retry.append(i)
                    case .rejected:
                        counters.documentsRejected.add(1, ordering: .relaxed)
                        let reason = "\(item.errorType ?? "rejected"): \(item.errorReason ?? "status \(item.status)")"
                        logger.error("document \(item.id) in \(item.index) rejected: \(reason)")
                        deadLetter(pending, i, partition: partition, reason: reason)
                    }
                }
                counters.documentsWritten.add(written, ordering: .relaxed)
                counters.documentsConflicted.add(conflicts, ordering: .relaxed)
                if retry.isEmpty {
                    failingSince.withLock { $0 = nil }
                    return true
                }
                noteFailure("\(retry.count) of \(pending.count) bulk items must be retried (429/5xx)")
                pending = pending.subset(retry)
            }
            counters.bulkRetries.add(1, ordering: .relaxed)
            attempt += 1
            try? await Task.sleep(for: Self.backoff(attempt: attempt))
        }
    }

    private func noteFailure(_ message: String) {
        let first = failingSince.withLock { since -> Bool in
            if since == nil {
                since = .now
                return true
            }
            return false
        }
        if first { logger.warning("\(message); retrying with backoff") } else { logger.debug("\(message)") }
    }

    /// Full-jitter exponential backoff: uniform in [0, min(30 s, 100 ms × 2^attempt)].
    static func backoff(attempt: Int) -> Duration {
        let cap = min(30_000.0, 100.0 * pow(2.0, Double(min(attempt, 20))))
        return .milliseconds(Int64(Double.random(in: 0.5...1.0) * cap))
    }

    private func deadLetter(_ body: BulkBody, _ i: Int, partition: Int32, reason: String) {
        let doc = Array(body.itemSource(i))
        doc.withUnsafeBytes { raw in
            deadLetters.publish(
                value: raw, sourceTopic: configuration.kafka.topic, partition: partition, offset: -1,
                reason: "rollup document rejected: \(reason)")
        }
    }

    /// Writes the ticket's checkpoint (versioned by its horizon: an older one gets 409).
    private func writeCheckpoint(_ ticket: FlushTicket) async -> Bool {
        var body = BulkBody()
        let r = ticket.resume
        let source: JSONValue = [
            "group": .string(configuration.kafka.group), "topic": .string(configuration.kafka.topic),
            "partition": .number(ticket.partition), "resume_offset": .integer(r.offset),
            "resume_max_event_ts": .number(r.maxEventTs), "horizon_offset": .integer(r.horizonOffset),
            "horizon_max_event_ts": .number(r.horizonMaxEventTs), "node": .string(configuration.node.id),
            "written_at": .number(UInt64(Date().timeIntervalSince1970 * 1000)),
        ]
        body.index(
            index: naming.checkpointIndex, id: CheckpointStore.id(configuration, partition: ticket.partition),
            version: r.horizonOffset + 1, source: source)
        var attempt = 0
        while !stopping.load(ordering: .acquiring) {
            do {
                let response = try await client.bulk(body)
                switch response.items.first?.outcome {
                case .written?, .versionConflict?:
                    counters.checkpoints.add(1, ordering: .relaxed)
                    return true
                case .rejected?:
                    logger.critical("checkpoint for partition \(ticket.partition) rejected: \(response.items.first?.errorReason ?? "")")
                    return false
                default:
                    noteFailure("checkpoint write must be retried")
                }
            } catch {
                noteFailure("checkpoint write failed: \(error)")
            }
            attempt += 1
            try? await Task.sleep(for: Self.backoff(attempt: attempt))
        }
        return false
    }
}

/// Reads the checkpoints the writer stores.
struct CheckpointStore: Sendable {
    let client: ElasticClient
    let configuration: NodeConfiguration

    static func id(_ c: NodeConfiguration, partition: Int32) -> String {
        "\(c.kafka.group)|\(c.kafka.topic)|\(partition)"
    }

    /// The stored resume state of `partition`, or nil when none was ever written.
    func read(partition: Int32) async throws -> ResumeState? {
        let index = IndexNaming(prefix: configuration.elasticsearch.indexPrefix).checkpointIndex
        guard let doc = try await client.getDocument(index: index, id: Self.id(configuration, partition: partition)) else { return nil }
        let s = doc.source
        guard let offset = s["resume_offset"]?.int64Value, let maxTs = s["resume_max_event_ts"]?.int64Value,
            let horizon = s["horizon_offset"]?.int64Value, let horizonTs = s["horizon_max_event_ts"]?.int64Value
        else {
            throw ElasticError(.decoding, "checkpoint of partition \(partition) is incomplete: \(JSONWriter.string(s))")
        }
        return ResumeState(offset: offset, maxEventTs: UInt64(maxTs), horizonOffset: horizon, horizonMaxEventTs: UInt64(horizonTs))
    }
}
