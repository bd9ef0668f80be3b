import Foundation
import Logging
import SpateElastic
import SpateIngest
import SpateSchema
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
    /// The store refusing writes (not a transient failure), until a bulk succeeds.
    private let refusal = Mutex<StoreRefusal?>(nil)

    struct StoreRefusal: Sendable {
        var since: Date
        var message: String
        var lastLogged: ContinuousClock.Instant
    }

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
        // Every dead letter of the partition up to now — those before the snapshot and those
        // of documents the store just rejected — must be delivered before the checkpoint.
        let mark = max(ticket.deadLetters, deadLetters.sentCount(partition: ticket.partition))
        guard await deadLetters.waitSettled(partition: ticket.partition, count: mark, stop: { [self] in stopping.load(ordering: .acquiring) }) else {
            return false
        }
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

    /// Writes one bulk until every item is stored, conflicted or dead-lettered for its own
    /// content (`StoreErrorPolicy`); false only when the writer stops first.
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
                // The node's own shutdown aborts transfers: that is no store failure.
                if stopping.load(ordering: .acquiring) { return false }
                switch StoreErrorPolicy.action(for: error, documents: pending.count) {
                case .split:
                    noteFailure(refusal: true, "a bulk of \(pending.count) documents is too large for the store (413): sending it in halves")
                    let half = pending.count / 2
                    guard await writeChunk(pending.subset(Array(0..<half)), partition: partition) else { return false }
                    return await writeChunk(pending.subset(Array(half..<pending.count)), partition: partition)
                case .deadLetter:
                    // One document alone is larger than the store accepts: that is its content.
                    counters.documentsRejected.add(1, ordering: .relaxed)
                    deadLetter(pending, 0, partition: partition, reason: "document too large for the store: \(error)")
                    storeRecovered()
                    return true
                case .retry(let refusal):
                    noteFailure(refusal: refusal, refusal ? "the store refused a bulk of \(pending.count) documents: \(error)" : "bulk of \(pending.count) documents failed: \(error)")
                case .stored:
                    return true
                }
            case .success(let response):
                var retry: [Int] = []
                var written: UInt64 = 0
                var conflicts: UInt64 = 0
                var refusal: BulkItemResult?
                for (i, item) in response.items.enumerated() {
                    switch StoreErrorPolicy.action(for: item) {
                    case .stored: if item.outcome == .written { written += 1 } else { conflicts += 1 }
                    case .retry(let refused):
                        retry.append(i)
                        if refused { refusal = item }
                    case .deadLetter, .split:
                        counters.documentsRejected.add(1, ordering: .relaxed)
                        let reason = "\(item.errorType ?? "rejected"): \(item.errorReason ?? "status \(item.status)")"
                        logger.error("document \(item.id) in \(item.index) rejected for its content: \(reason)")
                        deadLetter(pending, i, partition: partition, reason: reason)
                    }
                }
                counters.documentsWritten.add(written, ordering: .relaxed)
                counters.documentsConflicted.add(conflicts, ordering: .relaxed)
                if retry.isEmpty {
                    storeRecovered()
                    return true
                }
                if let item = refusal {
                    noteFailure(
                        refusal: true,
                        "the store refused \(retry.count) of \(pending.count) documents (status \(item.status) \(item.errorType ?? ""): \(item.errorReason ?? "")); retrying, nothing is dead-lettered")
                } else {
                    noteFailure("\(retry.count) of \(pending.count) bulk items must be retried (429/5xx)")
                }
                pending = pending.subset(retry)
            }
            counters.bulkRetries.add(1, ordering: .relaxed)
            attempt += 1
            try? await Task.sleep(for: Self.backoff(attempt: attempt))
        }
    }

    /// A failed attempt, to be retried. A transient failure is warned once per outage; a
    /// refusal (auth, write block, 413, unreadable answer) is warned at most every 30 s,
    /// counted, and shown by `spate status` until a bulk succeeds again.
    private func noteFailure(refusal: Bool = false, _ message: String) {
        let first = failingSince.withLock { since -> Bool in
            if since == nil {
                since = .now
                return true
            }
            return false
        }
        guard refusal else {
            if first { logger.warning("\(message); retrying with backoff") } else { logger.debug("\(message)") }
            return
        }
        counters.storeRefusals.add(1, ordering: .relaxed)
        let now = ContinuousClock.now
        let warn = self.refusal.withLock { r -> Bool in
            let due = r.map { now - $0.lastLogged >= .seconds(30) } ?? true
            r = StoreRefusal(since: r?.since ?? Date(), message: message, lastLogged: due ? now : (r?.lastLogged ?? now))
            return due
        }
        if warn { logger.warning("store refusal: \(message); partitions pause until it accepts writes again") } else { logger.debug("\(message)") }
    }

    private func storeRecovered() {
        failingSince.withLock { $0 = nil }
        let was = refusal.withLock { r -> StoreRefusal? in
            defer { r = nil }
            return r
        }
        if let was { logger.notice("the store accepts writes again (refusals since \(was.since))") }
    }

    /// The current refusal, as a status warning; nil while the store accepts writes.
    var refusalWarning: String? {
        refusal.withLock { r in r.map { "store refusing writes since \($0.since): \($0.message)" } }
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
        let source = CheckpointDocument.source(
            group: configuration.kafka.group, topic: configuration.kafka.topic, partition: ticket.partition, resume: r,
            node: configuration.node.id, writtenAtMs: UInt64(max(0, Date().timeIntervalSince1970 * 1000)))
        body.index(
            index: naming.checkpointIndex, id: CheckpointStore.id(configuration, partition: ticket.partition),
            version: r.horizonOffset + 1, source: source)
        var attempt = 0
        while !stopping.load(ordering: .acquiring) {
            do {
                let response = try await client.bulk(body)
                switch response.items.first.map(StoreErrorPolicy.action(for:)) ?? .retry(refusal: true) {
                case .stored:
                    counters.checkpoints.add(1, ordering: .relaxed)
                    storeRecovered()
                    return true
                case .retry(let refused):
                    let item = response.items.first
                    noteFailure(
                        refusal: refused,
                        refused
                            ? "checkpoint of partition \(ticket.partition) refused (status \(item?.status ?? 0) \(item?.errorType ?? ""): \(item?.errorReason ?? ""))"
                            : "checkpoint write must be retried")
                case .deadLetter, .split:
                    logger.critical("checkpoint for partition \(ticket.partition) rejected: \(response.items.first?.errorReason ?? "")")
                    return false
                }
            } catch {
                if stopping.load(ordering: .acquiring) { return false }
                let refused = StoreErrorPolicy.action(for: error, documents: 1) == .retry(refusal: true)
                noteFailure(refusal: refused, "checkpoint write \(refused ? "refused" : "failed"): \(error)")
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
        do {
            return try CheckpointDocument.resume(from: doc.source)
        } catch {
            throw ElasticError(.decoding, "checkpoint of partition \(partition) is unusable: \(error) in \(JSONWriter.string(doc.source))")
        }
    }

    /// The bytes of the snapshot `reference` names, piece by piece.
    /// - Throws: `SnapshotError` when a piece is missing or of another snapshot, or the whole
    ///   does not match the reference (the caller replays instead); store errors as they come.
    func readSnapshot(partition: Int32, reference: SnapshotReference) async throws -> [UInt8] {
        let c = configuration
        let index = IndexNaming(prefix: c.elasticsearch.indexPrefix).snapshotIndex
        var bytes: [UInt8] = []
        // The size comes from the checkpoint document: reserve at most 64 MiB on its word and let
        // the pieces actually read grow the rest.
        bytes.reserveCapacity(min(reference.bytes, 1 << 26))
        for k in 0..<reference.chunks {
            let id = SnapshotDocument.id(group: c.kafka.group, topic: c.kafka.topic, partition: partition, slot: reference.slot, chunk: k)
            guard let doc = try await client.getDocument(index: index, id: id) else {
                throw SnapshotError("snapshot piece \(k) of \(reference.chunks) is missing")
            }
            bytes += try SnapshotDocument.piece(from: doc.source, reference: reference, partition: partition, chunk: k)
            guard bytes.count <= reference.bytes else { throw SnapshotError("snapshot pieces hold more than the \(reference.bytes) bytes named") }
        }
        return bytes
    }
}
