import Foundation
import Logging
import SpateCodec
import SpateElastic
import SpateIngest
import SpateSchema
import SpateKafka
import SpateModel
import Synchronization

/// One ingest worker: a thread that is one member of the consumer group and owns the state of
/// the partitions assigned to it — no locks on the hot path. It decodes, folds into the
/// partitions' rollups, flushes on the views' intervals and when buckets close (one ticket in
/// flight per partition), checkpoints through the writer, commits to Kafka after the
/// checkpoint, and pauses its partitions while the store is behind.
final class IngestWorker: KafkaRebalanceListener, @unchecked Sendable {
    /// A partition this worker owns.
    final class Slot {
        let rollup: PartitionRollup
        var inFlight: FlushTicket?
        /// Views whose flush interval passed since this partition last flushed them.
        var due: Set<Int> = []
        var lastSubmitted: ResumeState?
        var committed: Int64?
        /// When the last message of this partition arrived, and when this worker last sent it an
        /// idle marker.
        var lastMessageAt = ContinuousClock.now
        var lastMarkerAt: ContinuousClock.Instant?
        init(rollup: PartitionRollup) { self.rollup = rollup }
    }

    let index: Int
    private let configuration: NodeConfiguration
    private let writer: BulkWriter
    private let deadLetters: DeadLetterQueue
    private let checkpoints: CheckpointStore
    private let counters: NodeCounters
    private let logger: Logger
    private let stopFlag = Atomic<Bool>(false)
    /// When the node's shutdown grace ends (set with `requestStop`).
    private let stopDeadline = Mutex<ContinuousClock.Instant?>(nil)
    /// Set when a partition was released with its last flush unacknowledged or a checkpoint
    /// unread at shutdown: the node then exits 1 (the next owner replays).
    let incomplete = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Set when the worker could not start (bad properties, …): the node exits.
    let failure = Mutex<(any Error)?>(nil)
    /// Questions about the open buckets of this worker's partitions (the live tier), answered
    /// on this thread between messages.
    let openBuckets = OpenBucketMailbox()

    // Owned by the worker thread.
    private var consumer: KafkaConsumer!
    private var slots: [Int32: Slot] = [:]
    private let decoder = RecordBatchDecoder()
    private var nextDue: [ContinuousClock.Instant]
    private var paused = false
    private var lastStats = ContinuousClock.now
    private var localRecords: UInt64 = 0
    private var localFolded: UInt64 = 0
    private var localLate: UInt64 = 0
    private var localSkipped: UInt64 = 0
    private var localMessages: UInt64 = 0
    private var lastOpenBytes = 0
    private let recordLimits: RecordLimits

    init(
        index: Int, configuration: NodeConfiguration, writer: BulkWriter, deadLetters: DeadLetterQueue,
        checkpoints: CheckpointStore, counters: NodeCounters, logger: Logger
    ) {
        self.index = index
        self.configuration = configuration
        self.writer = writer
        self.deadLetters = deadLetters
        self.checkpoints = checkpoints
        self.counters = counters
        var l = logger
        l[metadataKey: "worker"] = .stringConvertible(index)
        self.logger = l
        recordLimits = configuration.ingest.recordLimits
        nextDue = configuration.views.map { .now + .milliseconds(Int64($0.flushIntervalMs)) }
    }

    /// The librdkafka properties of this worker's consumer.
    var consumerProperties: [String: String] {
        let k = configuration.kafka
        let sessionMs = Int(k.sessionTimeout.wholeMilliseconds)
        var p: [String: String] = [
            "bootstrap.servers": k.bootstrap,
            "group.id": k.group,
            "client.id": "spate-node/\(configuration.node.id)/w\(index)",
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": String(sessionMs),
            "heartbeat.interval.ms": String(max(100, sessionMs / 5)),
            "queued.max.messages.kbytes": String(max(1024, configuration.ingest.fetchQueueBytes / 1024)),
            "enable.partition.eof": "false",
        ]
        p.merge(k.properties) { _, new in new }
        return p
    }

    /// Starts the worker thread.
    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "ingest-\(index)"
        thread.stackSize = 4 << 20
        thread.start()
    }

    /// Asks the worker to finish: final flush, checkpoint and commit of every partition, then
    /// leave the group.
    func requestStop(deadline: ContinuousClock.Instant? = nil) {
        if let deadline { stopDeadline.withLock { $0 = min($0 ?? deadline, deadline) } }
        stopFlag.store(true, ordering: .releasing)
    }

    /// The latest a revoke may wait: the shutdown deadline when stopping, else the grace.
    private func revokeDeadline() -> ContinuousClock.Instant {
        let grace = ContinuousClock.now + configuration.ingest.shutdownGrace
        guard let stop = stopDeadline.withLock({ $0 }) else { return grace }
        return min(grace, stop)
    }

    /// Waits until the worker thread ended, up to `timeout`; false on timeout.
    func waitFinished(timeout: Duration) -> Bool {
        let ms = Int(timeout.wholeMilliseconds)
        guard finished.wait(timeout: .now() + .milliseconds(ms)) == .success else { return false }
        finished.signal()
        return true
    }

    private func run() {
        defer { finished.signal() }
        do {
            consumer = try KafkaConsumer(properties: consumerProperties, logger: logger, maxBatch: 2000) { [logger] error in
                logger.debug("consumer: \(error)")
            }
            consumer.rebalanceListener = self
            try consumer.subscribe([configuration.kafka.topic])
        } catch {
            logger.error("worker cannot start: \(error)")
            failure.withLock { $0 = error }
            return
        }
        while !stopFlag.load(ordering: .acquiring) {
            do {
                try consumer.poll(timeoutMs: 100) { message in
                    handle(message)
                    if openBuckets.hasQuestions.load(ordering: .relaxed) { answerOpenBuckets() }
                }
            } catch {
                logger.error("poll failed: \(error)")
                Thread.sleep(forTimeInterval: 0.1)
            }
            if openBuckets.hasQuestions.load(ordering: .relaxed) { answerOpenBuckets() }
            maintain(now: .now)
        }
        do { try consumer.close() } catch { logger.warning("leaving the group: \(error)") }
        publishStats(force: true)
        consumer = nil
    }

    /// Answers the waiting questions about open buckets from the partitions this worker owns.
    private func answerOpenBuckets() {
        openBuckets.drain { request, limits in
            var out: OpenBucketMailbox.Answers = [:]
            for (p, slot) in slots { out[p] = Result { try slot.rollup.answerOpen(request, limits: limits) }.mapError { $0 as? OpenBucketRefusal ?? .tooLarge } }
            return out
        }
    }

    // MARK: hot path

    private func handle(_ message: KafkaMessage) {
        guard let slot = slots[message.partition] else { return }
        let rollup = slot.rollup
        guard message.offset >= rollup.nextOffset else { return }
        localMessages += 1
        slot.lastMessageAt = .now
        // An idle marker (empty value, `spate-idle-marker` header holding an event time): event
        // time has reached that point. Checked only for empty values, so records pay no header
        // lookup. Its time obeys the record rules: within 2000..2100 and the lead allowed
        // after the message's own timestamp.
        if message.value.isEmpty, let header = message.header("spate-idle-marker") {
            let ts = UInt64(String(decoding: header, as: UTF8.self)) ?? 0
            let lead = message.timestampMs > 0 ? UInt64(message.timestampMs) &+ recordLimits.maxEventLeadMs : RecordLimits.maxEventTimeMs
            if ts >= RecordLimits.minEventTimeMs, ts < RecordLimits.maxEventTimeMs, ts <= lead {
                rollup.advance(offset: message.offset, eventTimeMs: ts)
            } else {
                rollup.skipMessage(offset: message.offset)
            }
            return
        }
        do {
            try decoder.withBatch(message.value, limits: recordLimits, messageTimestampMs: message.timestampMs) { batch in
                let outcome = try rollup.fold(offset: message.offset, batch: batch)
                localRecords += UInt64(batch.count)
                localFolded += UInt64(outcome.folded)
                localSkipped += UInt64(outcome.skippedReplay)
                if !outcome.late.isEmpty {
                    localLate += UInt64(outcome.late.count)
                    if outcome.sideEffects { deadLetterLate(batch, outcome.late, message: message, watermark: rollup.watermark) }
                }
            }
        } catch {
            rollup.skipMessage(offset: message.offset)
            counters.messagesMalformed.add(1, ordering: .relaxed)
            if rollup.sideEffectsDue(offset: message.offset) {
                deadLetters.publish(
                    value: message.value, sourceTopic: configuration.kafka.topic, partition: message.partition,
                    offset: message.offset, reason: "\(error)")
            }
        }
    }

    /// Late records leave as one RecordBatch of just them — their bytes as received, invalid
    /// strings included — so they can be replayed elsewhere.
    private func deadLetterLate(_ batch: DecodedBatch, _ indices: [Int], message: KafkaMessage, watermark: UInt64) {
        let bytes = batch.encodeSubset(indices)
        bytes.withUnsafeBytes { raw in
            deadLetters.publish(
                value: raw, sourceTopic: configuration.kafka.topic, partition: message.partition, offset: message.offset,
                reason: "late: \(indices.count) records older than the watermark \(watermark) (allowed lateness \(configuration.ingest.allowedLateness))")
        }
    }

    // MARK: flushing and checkpoints

    private func maintain(now: ContinuousClock.Instant) {
        for (v, due) in nextDue.enumerated() where now >= due {
            for slot in slots.values { slot.due.insert(v) }
            nextDue[v] = now + .milliseconds(Int64(configuration.views[v].flushIntervalMs))
        }
        // Periodic rewrites of open buckets wait while the store is behind; closed buckets
        // (final documents, memory to free) are written regardless.
        let storeBehind = counters.pendingDocuments.load(ordering: .relaxed) >= configuration.ingest.maxPendingDocuments
            || Int64(counters.pendingBytes.load(ordering: .relaxed)) >= configuration.ingest.maxPendingBytes
        for (partition, slot) in slots {
            if let t = slot.inFlight, let outcome = t.result {
                slot.inFlight = nil
                if outcome == .stored { commit(partition, slot, t.resume, sync: false) }
            }
            if slot.inFlight == nil && (slot.rollup.hasClosedBuckets || (!slot.due.isEmpty && !storeBehind)) {
                submitFlush(partition, slot, all: false)
            }
        }
        applyBackpressure()
        sendIdleMarkers(now: now)
        if now - lastStats >= configuration.ingest.statsInterval { publishStats(force: false) }
    }

    /// A partition silent for `ingest.idle_marker_after` whose open buckets the wall clock has
    /// passed (end + allowed lateness) gets an idle marker, so a quiet probe's last buckets —
    /// top-K buckets above all, written only when they close — close and reach the store.
    private func sendIdleMarkers(now: ContinuousClock.Instant) {
        let after = configuration.ingest.idleMarkerAfter
        guard after > .zero, !paused else { return }
        let wallMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        for (partition, slot) in slots where now - slot.lastMessageAt >= after {
            if let last = slot.lastMarkerAt, now - last < after { continue }
            // The partition's own clock moved on by the silence, never past the wall clock: a
            // backfill that pauses keeps its event time, a live probe that stops closes its buckets.
            let silenceMs = UInt64(max(0, (now - slot.lastMessageAt).wholeMilliseconds))
            let ts = min(wallMs, slot.rollup.maxEventTs &+ silenceMs)
            guard slot.rollup.wouldClose(atEventTime: ts) else { continue }
            slot.lastMarkerAt = now
            deadLetters.publishIdleMarker(topic: configuration.kafka.topic, partition: partition, eventTimeMs: ts)
            logger.debug("partition \(partition): quiet for \(after); idle marker at event time \(ts)")
        }
    }

    /// Builds and submits a ticket; returns it, or nil when there was nothing new.
    @discardableResult
    private func submitFlush(_ partition: Int32, _ slot: Slot, all: Bool) -> FlushTicket? {
        var sink = BulkDocumentSink(naming: IndexNaming(prefix: configuration.elasticsearch.indexPrefix), topic: configuration.kafka.topic)
        let due = slot.due
        let resume = slot.rollup.flush(due: { all || due.contains($0) }, into: &sink)
        slot.due = []
        if sink.count == 0 && resume == slot.lastSubmitted { return nil }
        let ticket = FlushTicket(partition: partition, body: sink.body, resume: resume, deadLetters: deadLetters.sentCount(partition: partition))
        slot.inFlight = ticket
        slot.lastSubmitted = resume
        writer.submit(ticket)
        return ticket
    }

    private func commit(_ partition: Int32, _ slot: Slot, _ resume: ResumeState, sync: Bool) {
        guard slot.committed != resume.offset else { return }
        do {
            try consumer.commit([KafkaTopicPartition(topic: configuration.kafka.topic, partition: partition): resume.offset], async: !sync)
            slot.committed = resume.offset
            counters.commits.add(1, ordering: .relaxed)
        } catch {
            logger.warning("commit of partition \(partition) at \(resume.offset) failed: \(error)")
        }
    }

    /// Pauses on what waiting can reclaim — documents and bytes in flight to the store, a
    /// stalled flush, resident memory while flushes are pending — and resumes when those are
    /// back under their low-water marks. Open rollup state is not in the condition: it shrinks
    /// only when records advance the watermark, so pausing for it would never end.
    private func applyBackpressure() {
        let docs = counters.pendingDocuments.load(ordering: .relaxed)
        let bytes = counters.pendingBytes.load(ordering: .relaxed)
        let rss = Int64(counters.residentBytes.load(ordering: .relaxed))
        let nothingPending = docs == 0 && bytes == 0
        let memoryHigh = rss > configuration.ingest.maxMemory * 85 / 100 && !nothingPending
        let now = ContinuousClock.now
        let stalled = slots.values.contains { $0.inFlight.map { now - $0.created > configuration.ingest.storeStallTimeout } ?? false }
        let over = docs > configuration.ingest.maxPendingDocuments || Int64(bytes) > configuration.ingest.maxPendingBytes || memoryHigh || stalled
        let under = docs < configuration.ingest.maxPendingDocuments / 2 && Int64(bytes) < configuration.ingest.maxPendingBytes / 2
            && (rss < configuration.ingest.maxMemory * 70 / 100 || nothingPending) && !stalled
        let owned = slots.keys.map { KafkaTopicPartition(topic: configuration.kafka.topic, partition: $0) }
        if over && !paused && !owned.isEmpty {
            do {
                try consumer.pause(owned)
                paused = true
                counters.pauses.add(1, ordering: .relaxed)
                let why = stalled ? "a flush unacknowledged for over \(configuration.ingest.storeStallTimeout)" : "\(docs) documents, \(bytes) bytes pending, resident \(rss) bytes"
                logger.warning("store is behind (\(why)): pausing \(owned.count) partitions")
            } catch { logger.error("pause failed: \(error)") }
        } else if paused && under {
            do {
                try consumer.resume(owned)
                paused = false
                logger.info("store caught up: resuming \(owned.count) partitions")
            } catch { logger.error("resume failed: \(error)") }
        }
    }

    private func publishStats(force: Bool) {
        counters.messages.add(localMessages, ordering: .relaxed)
        counters.records.add(localRecords, ordering: .relaxed)
        counters.recordsFolded.add(localFolded, ordering: .relaxed)
        counters.recordsLate.add(localLate, ordering: .relaxed)
        counters.recordsReplaySkipped.add(localSkipped, ordering: .relaxed)
        localMessages = 0
        localRecords = 0
        localFolded = 0
        localLate = 0
        localSkipped = 0
        let open = slots.values.reduce(0) { $0 + $1.rollup.memoryBytes + $1.rollup.internerBytes }
        counters.openStateBytes.add(open - lastOpenBytes, ordering: .relaxed)
        lastOpenBytes = open
        for (p, slot) in slots {
            let high = consumer?.cachedHighWatermark(KafkaTopicPartition(topic: configuration.kafka.topic, partition: p))
            counters.setProgress(
                p, .init(worker: index, nextOffset: slot.rollup.nextOffset, committedOffset: slot.committed, highWatermark: high))
        }
        lastStats = .now
    }

    // MARK: rebalance (called inside poll/close on this thread)

    func consumer(_ consumer: KafkaConsumer, assigned partitions: [KafkaTopicPartition]) -> [KafkaTopicPartition: Int64] {
        var starts: [KafkaTopicPartition: Int64] = [:]
        for tp in partitions {
            guard case .read(let resume) = readCheckpoint(tp.partition) else {
                // Stopping: take no state for it; the revoke that follows finds no slot and the
                // next owner starts from the checkpoint.
                logger.info("partition \(tp.partition): shutting down before its checkpoint could be read; not started")
                incomplete.store(true, ordering: .relaxed)
                continue
            }
            let state = resume ?? .beginning()
            slots[tp.partition] = Slot(
                rollup: PartitionRollup(
                    partition: tp.partition, views: configuration.views,
                    latenessMs: UInt64(configuration.ingest.allowedLateness.wholeMilliseconds),
                    resume: state))
            slots[tp.partition]?.lastSubmitted = resume
            starts[tp] = resume?.offset ?? -2  // RD_KAFKA_OFFSET_BEGINNING
            if let r = resume {
                logger.info("partition \(tp.partition): resuming at offset \(r.offset) (replay horizon \(r.horizonOffset))")
            } else {
                logger.info("partition \(tp.partition): no checkpoint, starting at the beginning")
            }
        }
        if paused { try? consumer.pause(partitions) }
        publishStats(force: true)
        return starts
    }

    enum CheckpointRead {
        /// The stored checkpoint, or nil when the partition has none.
        case read(ResumeState?)
        /// The worker is stopping: the read was abandoned.
        case stopping
    }

    /// Reads a checkpoint, retrying while the store is unreachable (the partition cannot
    /// start correctly without it); abandoned when the worker stops.
    private func readCheckpoint(_ partition: Int32) -> CheckpointRead {
        var attempt = 0
        while true {
            let result = Mutex<Result<ResumeState?, any Error>?>(nil)
            let done = DispatchSemaphore(value: 0)
            let store = checkpoints
            let task = Task {
                let r: Result<ResumeState?, any Error>
                do { r = .success(try await store.read(partition: partition)) } catch { r = .failure(error) }
                result.withLock { $0 = r }
                done.signal()
            }
            while done.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
                if stopFlag.load(ordering: .acquiring) {
                    task.cancel()
                    return .stopping
                }
            }
            switch result.withLock({ $0 }) {
            case .success(let r)?: return .read(r)
            case .failure(let error)?:
                attempt += 1
                logger.warning("reading the checkpoint of partition \(partition) failed (attempt \(attempt)): \(error)")
            case nil:
                attempt += 1
            }
            for _ in 0..<Int(min(25, 1 + attempt)) {
                if stopFlag.load(ordering: .acquiring) { return .stopping }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    func consumer(_ consumer: KafkaConsumer, revoked partitions: [KafkaTopicPartition], lost: Bool) {
        let deadline = revokeDeadline()
        for tp in partitions {
            guard let slot = slots[tp.partition] else { continue }
            defer {
                slots[tp.partition] = nil
                counters.setProgress(tp.partition, nil)
            }
            if lost {
                logger.warning("partition \(tp.partition) lost (session expired): dropping its state, the new owner replays")
                continue
            }
            // Finish what is in flight, then flush everything and wait for it.
            if let t = slot.inFlight {
                guard t.wait(timeout: max(.zero, deadline - .now)) != nil else {
                    logger.error("partition \(tp.partition): flush still unacknowledged at the deadline; the next owner replays")
                    incomplete.store(true, ordering: .relaxed)
                    continue
                }
                if t.result == .stored { commit(tp.partition, slot, t.resume, sync: true) }
            }
            slot.due = Set(configuration.views.indices)
            if let t = submitFlush(tp.partition, slot, all: true) {
                switch t.wait(timeout: max(.zero, deadline - .now)) {
                case .stored?:
                    commit(tp.partition, slot, t.resume, sync: true)
                    logger.info("partition \(tp.partition) released at resume offset \(t.resume.offset)")
                default:
                    logger.error("partition \(tp.partition): final flush not acknowledged in time; the next owner replays")
                    incomplete.store(true, ordering: .relaxed)
                }
            } else if let r = slot.lastSubmitted {
                commit(tp.partition, slot, r, sync: true)
                logger.info("partition \(tp.partition) released at resume offset \(r.offset)")
            }
        }
    }
}
