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
        /// When this worker last saved the partition's open buckets, and how many bytes that took.
        var lastSnapshotAt: ContinuousClock.Instant?
        var lastSnapshotBytes = 0
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
    private var localReplayed: UInt64 = 0
    private var localMessages: UInt64 = 0
    private var lastOpenBytes = 0
    private let recordLimits: RecordLimits
    private let backpressure: Backpressure
    /// This worker's share of `ingest.snapshot_max_rate`.
    private var snapshotBudget: SnapshotBudget

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
        backpressure = Backpressure(
            maxPendingDocuments: configuration.ingest.maxPendingDocuments, maxPendingBytes: configuration.ingest.maxPendingBytes,
            maxMemory: configuration.ingest.maxMemory)
        nextDue = configuration.views.map { .now + .milliseconds(Int64($0.flushIntervalMs)) }
        snapshotBudget = SnapshotBudget(rate: configuration.ingest.snapshotMaxRate, workers: configuration.node.workers, now: .now)
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
            consumer = try KafkaConsumer(properties: configuration.consumerProperties(worker: index), logger: logger, maxBatch: 2000) { [logger] error in
                logger.debug("consumer: \(error)")
            }
            consumer.rebalanceListener = self
            let waker = consumer.waker
            openBuckets.setWaker { waker.wake() }
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
                    if localMessages >= Self.countersEvery { publishCounters() }
                    if openBuckets.hasQuestions.load(ordering: .relaxed) { answerOpenBuckets() }
                }
            } catch {
                logger.error("poll failed: \(error)")
                Thread.sleep(forTimeInterval: 0.1)
            }
            if openBuckets.hasQuestions.load(ordering: .relaxed) { answerOpenBuckets() }
            maintain(now: .now)
        }
        openBuckets.setWaker(nil)
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
                if !outcome.sideEffects { localReplayed += UInt64(batch.count) }
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
        let keepMs = UInt64(configuration.query.liveKeepClosed.wholeMilliseconds)
        let wallMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        for (partition, slot) in slots {
            slot.rollup.expireReleased(nowMs: wallMs, keepMs: keepMs, maxCells: configuration.query.liveKeepClosedCells)
            if let t = slot.inFlight, let outcome = t.result {
                slot.inFlight = nil
                if outcome == .stored { commit(partition, slot, t.resume, sync: false) }
            }
            if slot.inFlight == nil && (slot.rollup.hasClosedBuckets || (!slot.due.isEmpty && !storeBehind)) {
                submitFlush(partition, slot)
            }
        }
        applyBackpressure()
        sendIdleMarkers(now: now, wallMs: wallMs)
        if now - lastStats >= configuration.ingest.statsInterval { publishStats(force: false) }
    }

    /// A partition silent for `ingest.idle_marker_after` whose open buckets the wall clock has
    /// passed (end + allowed lateness) gets an idle marker, so a quiet probe's last buckets —
    /// top-K buckets above all, written only when they close — close and reach the store.
    private func sendIdleMarkers(now: ContinuousClock.Instant, wallMs: UInt64) {
        let after = configuration.ingest.idleMarkerAfter
        guard after > .zero, !paused else { return }
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

    /// Builds and submits a ticket; returns it, or nil when there was nothing new. The ticket
    /// also saves the open buckets when the partition's snapshot interval has passed since its
    /// last snapshot and the worker's `snapshotBudget` allows, and always when the partition is
    /// being released, so its next owner reads on from here. A release without snapshots
    /// flushes every view instead.
    @discardableResult
    private func submitFlush(_ partition: Int32, _ slot: Slot, releasing: Bool = false) -> FlushTicket? {
        let naming = IndexNaming(prefix: configuration.elasticsearch.indexPrefix)
        var sink = BulkDocumentSink(naming: naming, topic: configuration.kafka.topic)
        let interval = snapshotInterval(slot)
        let due = slot.due
        let everyView = releasing && interval == .zero
        var resume = slot.rollup.flush(due: { everyView || due.contains($0) }, into: &sink)
        slot.due = []
        let previous = slot.lastSubmitted
        resume.snapshot = previous?.snapshot
        let rollup = slot.rollup
        let now = ContinuousClock.now
        let snapshotDue = interval > .zero && rollup.nextOffset > resume.offset && rollup.nextOffset > (previous?.snapshot?.offset ?? -1)
            && (releasing || (slot.lastSnapshotAt.map { now - $0 >= interval } ?? true) && snapshotBudget.allows(now: now))
        if sink.count == 0 && resume == previous && !snapshotDue { return nil }
        var body = sink.body
        if snapshotDue {
            let bytes = rollup.snapshot()
            // The slot the stored checkpoint does not name: a crash mid-write leaves that one whole.
            let target = 1 - (previous?.snapshot?.slot ?? 1)
            resume.snapshot = SnapshotDocument.append(
                bytes, to: &body, index: naming.snapshotIndex, group: configuration.kafka.group, topic: configuration.kafka.topic,
                partition: partition, offset: rollup.nextOffset, maxEventTs: rollup.maxEventTs, slot: target,
                chunkBytes: SnapshotDocument.chunkBytes(bulkMaxBytes: configuration.elasticsearch.bulkMaxBytes))
            slot.lastSnapshotAt = now
            slot.lastSnapshotBytes = bytes.count
            snapshotBudget.charge(bytes.count, now: now)
            counters.snapshotsWritten.add(1, ordering: .relaxed)
            counters.snapshotBytes.add(UInt64(bytes.count), ordering: .relaxed)
        }
        let ticket = FlushTicket(partition: partition, body: body, resume: resume, deadLetters: deadLetters.sentCount(partition: partition))
        slot.inFlight = ticket
        slot.lastSubmitted = resume
        writer.submit(ticket)
        return ticket
    }

    /// How long after its last snapshot a partition's next one is due: `ingest.snapshot_interval`,
    /// stretched to its last snapshot's size over an equal share of `ingest.snapshot_max_rate`
    /// (so a large partition does not take the others' turns). Zero: snapshots are off. The
    /// rate itself is held by the worker's `snapshotBudget`, which also covers first snapshots
    /// (no last size to stretch by).
    private func snapshotInterval(_ slot: Slot) -> Duration {
        let base = configuration.ingest.snapshotInterval
        guard base > .zero else { return .zero }
        let share = Double(configuration.ingest.snapshotMaxRate) / Double(max(1, slots.count * configuration.node.workers))
        let seconds = Double(slot.lastSnapshotBytes) / share
        return max(base, .milliseconds(Int64(min(seconds, 86_400) * 1000)))
    }

    /// Commits the stored checkpoint's horizon: every record below it is accounted for in the
    /// store (folded or dead-lettered), so the group's lag from standard Kafka tools is the real
    /// backlog. A new owner never starts from the committed offset: it reads the checkpoint and
    /// seeks to its snapshot's offset, or to its replay offset without a usable snapshot.
    private func commit(_ partition: Int32, _ slot: Slot, _ resume: ResumeState, sync: Bool) {
        let offset = resume.horizonOffset
        guard slot.committed != offset else { return }
        do {
            try consumer.commit([KafkaTopicPartition(topic: configuration.kafka.topic, partition: partition): offset], async: !sync)
            slot.committed = offset
            counters.commits.add(1, ordering: .relaxed)
        } catch {
            logger.warning("commit of partition \(partition) at \(offset) failed: \(error)")
        }
    }

    /// Pauses or resumes this worker's partitions as `Backpressure` says.
    private func applyBackpressure() {
        let docs = counters.pendingDocuments.load(ordering: .relaxed)
        let bytes = counters.pendingBytes.load(ordering: .relaxed)
        let rss = counters.residentBytes.load(ordering: .relaxed)
        let now = ContinuousClock.now
        let stalled = slots.values.contains { $0.inFlight.map { now - $0.created > configuration.ingest.storeStallTimeout } ?? false }
        let action = backpressure.action(paused: paused, documents: docs, bytes: bytes, residentBytes: rss, stalled: stalled)
        let owned = slots.keys.map { KafkaTopicPartition(topic: configuration.kafka.topic, partition: $0) }
        if action == .pause && !owned.isEmpty {
            do {
                try consumer.pause(owned)
                paused = true
                counters.pauses.add(1, ordering: .relaxed)
                let why = stalled ? "a flush unacknowledged for over \(configuration.ingest.storeStallTimeout)" : "\(docs) documents, \(bytes) bytes pending, resident \(rss) bytes"
                logger.warning("store is behind (\(why)): pausing \(owned.count) partitions")
            } catch { logger.error("pause failed: \(error)") }
        } else if action == .resume {
            do {
                try consumer.resume(owned)
                paused = false
                logger.info("store caught up: resuming \(owned.count) partitions")
            } catch { logger.error("resume failed: \(error)") }
        }
    }

    /// Messages after which the worker adds its record counts to the node's counters even in
    /// the middle of a poll batch (up to 2,000 messages, a third of a second of folding), so
    /// the metrics trail the fold by at most this many messages.
    static let countersEvery: UInt64 = 64

    /// Adds the record counts kept since the last call to the node's counters.
    private func publishCounters() {
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
        counters.recordsReplayed.add(localReplayed, ordering: .relaxed)
        localReplayed = 0
    }

    private func publishStats(force: Bool) {
        publishCounters()
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
        let ids = partitions.map(\.partition)
        let reading = ContinuousClock.now
        guard let answers = readCheckpoints(ids) else {
            // Stopping: take no state for them; the revoke that follows finds no slot and the
            // next owner starts from the checkpoints. Nothing of them was read or written here,
            // so nothing is left to hand over: the shutdown is still complete (exit 0), as a
            // SIGTERM that comes with a rebalance should be.
            logger.info("partitions \(ids): shutting down before their checkpoints could be read; not started, nothing to hand over")
            return starts
        }
        if !partitions.isEmpty {
            let took = (ContinuousClock.now - reading).wholeMilliseconds
            logger.info("read the checkpoints of partitions \(ids) in \(took) ms")
        }
        for tp in partitions {
            guard let (resume, snapshot) = answers[tp.partition] else { continue }
            let rollup = makeRollup(tp.partition, resume: resume, snapshot: snapshot)
            rollup.keepsReleased = configuration.query.liveTier && configuration.query.liveKeepClosed > .zero
            slots[tp.partition] = Slot(rollup: rollup)
            slots[tp.partition]?.lastSubmitted = resume
            starts[tp] = resume == nil ? -2 : rollup.nextOffset  // -2: RD_KAFKA_OFFSET_BEGINNING
        }
        if paused { try? consumer.pause(partitions) }
        publishStats(force: true)
        return starts
    }

    /// The partition's state: restored from the checkpoint's snapshot when it names a usable
    /// one, else rebuilt by replaying from the checkpoint's resume offset.
    private func makeRollup(_ partition: Int32, resume: ResumeState?, snapshot: Result<[UInt8], SnapshotError>?) -> PartitionRollup {
        let lateness = UInt64(configuration.ingest.allowedLateness.wholeMilliseconds)
        guard let resume else {
            logger.info("partition \(partition): no checkpoint, starting at the beginning")
            return PartitionRollup(partition: partition, views: configuration.views, latenessMs: lateness, resume: .beginning())
        }
        var why: String?
        switch snapshot {
        case .success(let bytes)?:
            do {
                let rollup = try PartitionRollup.restoring(
                    partition: partition, views: configuration.views, latenessMs: lateness, snapshot: bytes, resume: resume)
                counters.snapshotRestores.add(1, ordering: .relaxed)
                logger.info(
                    "partition \(partition): restored \(rollup.openCells) open cells from the snapshot at offset \(rollup.nextOffset) (\(bytes.count) bytes); resuming at offset \(rollup.nextOffset) (checkpoint horizon \(resume.horizonOffset))")
                return rollup
            } catch {
                why = "\(error)"
            }
        case .failure(let error)?: why = error.message
        case nil: break
        }
        if let why {
            counters.snapshotFallbacks.add(1, ordering: .relaxed)
            logger.warning("partition \(partition): the checkpoint's snapshot is unusable (\(why)); replaying its open buckets instead")
        }
        logger.info("partition \(partition): resuming at offset \(resume.offset) (replay horizon \(resume.horizonOffset))")
        return PartitionRollup(partition: partition, views: configuration.views, latenessMs: lateness, resume: resume)
    }

    /// A partition's stored checkpoint (nil when it has none) and, when it names a usable
    /// snapshot, that snapshot's bytes or why they could not be had.
    typealias CheckpointAnswer = (ResumeState?, Result<[UInt8], SnapshotError>?)

    /// Checkpoint reads in flight at once when a worker is given several partitions.
    static let checkpointReadConcurrency = 8

    /// Reads the checkpoints (and snapshots) of `partitions` together, up to
    /// `checkpointReadConcurrency` at a time: a worker given six partitions while the store is
    /// busy with another worker's bulks waits about one answer, not six in a row (measured
    /// through Tansu: 1.5 s each behind osmem-server's bulks, so one worker folded alone for
    /// 5–21 s). Each read retries while the store fails (a partition cannot start correctly
    /// without it); nil when the worker stops first.
    private func readCheckpoints(_ partitions: [Int32]) -> [Int32: CheckpointAnswer]? {
        let result = Mutex<[Int32: CheckpointAnswer]?>(nil)
        let done = DispatchSemaphore(value: 0)
        let store = checkpoints
        let logger = self.logger
        let task = Task {
            let answers = await withTaskGroup(of: (Int32, CheckpointAnswer?).self) { group -> [Int32: CheckpointAnswer]? in
                var out: [Int32: CheckpointAnswer] = [:]
                var waiting = partitions[...]
                var running = 0
                while running > 0 || !waiting.isEmpty {
                    while running < Self.checkpointReadConcurrency, let p = waiting.popFirst() {
                        group.addTask { (p, await Self.readCheckpoint(p, store: store, logger: logger)) }
                        running += 1
                    }
                    guard let (p, answer) = await group.next() else { break }
                    running -= 1
                    guard let answer else {
                        group.cancelAll()
                        return nil
                    }
                    out[p] = answer
                }
                return out
            }
            result.withLock { $0 = answers }
            done.signal()
        }
        while done.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            if stopFlag.load(ordering: .acquiring) {
                task.cancel()
                return nil
            }
        }
        return result.withLock { $0 }
    }

    /// One partition's checkpoint and snapshot, retrying while the store fails (backing off up
    /// to 5 s); nil once cancelled.
    private static func readCheckpoint(_ partition: Int32, store: CheckpointStore, logger: Logger) async -> CheckpointAnswer? {
        var attempt = 0
        while !Task.isCancelled {
            do {
                let resume = try await store.read(partition: partition)
                var snapshot: Result<[UInt8], SnapshotError>?
                if let ref = resume?.usableSnapshot {
                    do { snapshot = .success(try await store.readSnapshot(partition: partition, reference: ref)) } catch let e as SnapshotError { snapshot = .failure(e) }
                }
                return (resume, snapshot)
            } catch {
                if Task.isCancelled { return nil }
                attempt += 1
                logger.warning("reading the checkpoint of partition \(partition) failed (attempt \(attempt)): \(error)")
            }
            try? await Task.sleep(for: .milliseconds(200 * min(25, 1 + attempt)))
        }
        return nil
    }

    /// Releases partitions: flushes in flight finish, then every partition's final flush is
    /// submitted before any is waited for (the writer stores them together), then each is
    /// committed. With snapshots on, the final flush writes the closed buckets and a snapshot
    /// with the open ones (dirty cells included, the next owner writes them) instead of
    /// rewriting every open document: the next owner restores it and re-reads nothing. Without
    /// snapshots every view is flushed. Everything waits at most until the revoke deadline.
    func consumer(_ consumer: KafkaConsumer, revoked partitions: [KafkaTopicPartition], lost: Bool) {
        let deadline = revokeDeadline()
        let owned = partitions.compactMap { tp in slots[tp.partition].map { (tp.partition, $0) } }
        defer {
            for (p, _) in owned {
                slots[p] = nil
                counters.setProgress(p, nil)
            }
        }
        if lost {
            for (p, _) in owned { logger.warning("partition \(p) lost (session expired): dropping its state, the new owner replays") }
            return
        }
        var finals: [(Int32, Slot, FlushTicket)] = []
        for (p, slot) in owned {
            if let t = slot.inFlight {
                guard t.wait(timeout: max(.zero, deadline - .now)) != nil else {
                    logger.error("partition \(p): flush still unacknowledged at the deadline; the next owner replays")
                    incomplete.store(true, ordering: .relaxed)
                    continue
                }
                slot.inFlight = nil
                if t.result == .stored { commit(p, slot, t.resume, sync: true) }
            }
            if let t = submitFlush(p, slot, releasing: true) {
                finals.append((p, slot, t))
            } else if let r = slot.lastSubmitted {
                commit(p, slot, r, sync: true)
                logger.info("partition \(p) released at offset \(r.horizonOffset)")
            }
        }
        for (p, slot, t) in finals {
            switch t.wait(timeout: max(.zero, deadline - .now)) {
            case .stored?:
                commit(p, slot, t.resume, sync: true)
                logger.info("partition \(p) released at offset \(t.resume.horizonOffset)\(t.resume.snapshot.map { " (snapshot at \($0.offset))" } ?? "")")
            default:
                logger.error("partition \(p): final flush not acknowledged in time; the next owner replays")
                incomplete.store(true, ordering: .relaxed)
            }
        }
    }
}
