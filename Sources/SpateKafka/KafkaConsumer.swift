internal import CRdKafka
public import Logging
import Foundation
import Synchronization

/// Receives a consumer's partition assignment changes. librdkafka calls it from inside
/// `KafkaConsumer.poll` (or `close`), on the polling thread, and applies the change only after
/// the method returns — so a revoke handler can flush, checkpoint and commit first.
public protocol KafkaRebalanceListener: AnyObject {
    /// `partitions` are now this consumer's. Return where to start each one; partitions left
    /// out start at the group's committed offset, or per `auto.offset.reset`.
    func consumer(_ consumer: KafkaConsumer, assigned partitions: [KafkaTopicPartition]) -> [KafkaTopicPartition: Int64]

    /// `partitions` are being taken away. When `lost` is true another member may already own
    /// them (session timed out): do not commit for them.
    func consumer(_ consumer: KafkaConsumer, revoked partitions: [KafkaTopicPartition], lost: Bool)
}

/// One consumed message, borrowed: its buffers are valid only inside the `poll` body.
public struct KafkaMessage {
    public let partition: Int32
    public let offset: Int64
    public let key: UnsafeRawBufferPointer?
    public let value: UnsafeRawBufferPointer
    /// Producer timestamp in Unix milliseconds, or -1.
    public let timestampMs: Int64
    fileprivate let raw: UnsafeMutablePointer<rd_kafka_message_t>

    /// The value of the last header called `name`, or nil.
    public func header(_ name: String) -> [UInt8]? {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(raw, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else { return nil }
        var value: UnsafeRawPointer?
        var size = 0
        guard rd_kafka_header_get_last(headers, name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        guard let value else { return [] }
        return Array(UnsafeRawBufferPointer(start: value, count: size))
    }
}

/// Wakes a consumer's `poll` from any thread: a waiting `poll` returns at once (with what it
/// has), so the polling thread can do other work — answer a question — without waiting for
/// its poll timeout. Safe to call after the consumer is gone (then it does nothing).
public final class KafkaPollWaker: Sendable {
    /// The consumer queue (`rd_kafka_queue_t *`), nil once the consumer is destroyed.
    private let queue: Mutex<QueueHandle?>

    fileprivate struct QueueHandle: @unchecked Sendable { let pointer: OpaquePointer }

    fileprivate init(_ queue: OpaquePointer) { self.queue = Mutex(QueueHandle(pointer: queue)) }

    /// Makes the poll waiting now (or the next one, if none waits) return without waiting.
    public func wake() { queue.withLock { if let q = $0 { rd_kafka_queue_yield(q.pointer) } } }

    fileprivate func invalidate() { queue.withLock { $0 = nil } }
}

/// A group consumer over librdkafka. Not thread-safe: create it, poll it and close it on one
/// thread (a worker's own), as librdkafka's rebalance callbacks run on the polling thread.
public final class KafkaConsumer {
    private let rk: OpaquePointer
    private let queue: OpaquePointer
    private let callbacks: KafkaCallbacks
    private var batch: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>
    private let batchCapacity: Int
    private var closed = false
    /// Wakes `poll` from other threads.
    public let waker: KafkaPollWaker
    /// When each consume error code was last logged: a persistent error (a topic that does not
    /// exist) comes back on every poll and is logged at most every 30 s, the rest at debug.
    private var lastLogged: [Int32: ContinuousClock.Instant] = [:]
    /// The group member id, empty until the first join completes.
    public var memberID: String {
        guard let p = rd_kafka_memberid(rk) else { return "" }
        defer { rd_kafka_mem_free(rk, p) }
        return String(cString: p)
    }

    /// Receives assignment changes; held weakly (the owner is usually the listener).
    public var rebalanceListener: (any KafkaRebalanceListener)? {
        get { callbacks.rebalance }
        set { callbacks.rebalance = newValue }
    }

    /// How long a consumer whose pre-fetch queue is full waits to fetch again, in ms, for the
    /// consumers that read a backlog as fast as they can (`fetch.queue.backoff.ms`; spate-node's
    /// workers, `spate-bench drain`). librdkafka's default, 1000 ms, idled a consumer that was
    /// behind for most of every second: spate-node's fold drains a full 32 MB queue in about
    /// 0.3 s, then waited out the rest with nothing to do. The check is local (nothing is sent
    /// while the queue is full).
    public static let fetchQueueBackoffMs = 10

    /// - Parameters:
    ///   - properties: librdkafka properties; `group.id` and `bootstrap.servers` are required.
    ///     `enable.auto.commit` defaults to false: Spate commits explicitly.
    ///   - maxBatch: the most messages one `poll` returns.
    public init(
        properties: [String: String], logger: Logger, maxBatch: Int = 1000,
        onError: (@Sendable (KafkaError) -> Void)? = nil
    ) throws {
        try KafkaLibrary.checkVersion()
        guard let group = properties["group.id"], !group.isEmpty else {
            throw KafkaError(.configuration, "property group.id: a group consumer needs a group id")
        }
        var props = properties
        if props["enable.auto.commit"] == nil { props["enable.auto.commit"] = "false" }
        let conf = try KafkaConf.make(props)
        callbacks = KafkaCallbacks(logger: logger, clientName: props["client.id"] ?? group, onError: onError)
        rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
        rk = try makeKafkaHandle(type: RD_KAFKA_CONSUMER, conf: conf, callbacks: callbacks)
        rd_kafka_poll_set_consumer(rk)
        queue = rd_kafka_queue_get_consumer(rk)
        waker = KafkaPollWaker(queue)
        batchCapacity = max(1, maxBatch)
        batch = .allocate(capacity: batchCapacity)
        callbacks.consumer = self
    }

    deinit {
        if !closed { try? close() }
        waker.invalidate()
        batch.deallocate()
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy(rk)
    }

    /// Joins the group for `topics`; assignments arrive through the listener during `poll`.
    public func subscribe(_ topics: [String]) throws {
        let list = PartitionList.make(topics.map { (KafkaTopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA), nil) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_subscribe(rk, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.subscribe, err, "subscribe \(topics)") }
    }

    /// Waits up to `timeoutMs` for messages and calls `body` for each (at most `maxBatch`).
    /// Rebalance callbacks run inside this call. Per-partition errors are passed to the
    /// `onError` handler and skipped; end-of-partition events are ignored.
    /// - Returns: the number of messages passed to `body`.
    @discardableResult
    public func poll(timeoutMs: Int32, _ body: (KafkaMessage) throws -> Void) throws -> Int {
        guard !closed else { throw KafkaError(.closed, "consumer is closed") }
        let n = rd_kafka_consume_batch_queue(queue, timeoutMs, batch, batchCapacity)
        guard n >= 0 else { throw kafkaError(.poll, rd_kafka_last_error(), "consume") }
        var delivered = 0
        var index = 0
        defer {
            while index < n {
                rd_kafka_message_destroy(batch[index])
                index += 1
            }
        }
        while index < n {
            let m = batch[index]!
            defer {
                rd_kafka_message_destroy(m)
                index += 1
            }
            let msg = m.pointee
            if msg.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                if msg.err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                    let e = kafkaError(.poll, msg.err, "partition \(msg.partition) at \(msg.offset)")
                    let now = ContinuousClock.now
                    if let last = lastLogged[msg.err.rawValue], now - last < .seconds(30) {
                        callbacks.logger.debug("consume error: \(e)")
                    } else {
                        lastLogged[msg.err.rawValue] = now
                        callbacks.logger.warning("consume error: \(e) (repeats logged at most every 30 s)")
                    }
                    callbacks.onError?(e)
                }
                continue
            }
            let value = UnsafeRawBufferPointer(start: msg.payload, count: msg.len)
            let key = msg.key.map { UnsafeRawBufferPointer(start: $0, count: msg.key_len) }
            var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            let ts = rd_kafka_message_timestamp(m, &tsType)
            try body(KafkaMessage(partition: msg.partition, offset: msg.offset, key: key, value: value, timestampMs: ts, raw: m))
            delivered += 1
        }
        return delivered
    }

    /// Commits `offsets` (the next offset to read, per partition); with `async` the call
    /// returns at once and failures are only logged by librdkafka.
    public func commit(_ offsets: [KafkaTopicPartition: Int64], async: Bool = false) throws {
        guard !offsets.isEmpty else { return }
        let list = PartitionList.make(offsets.map { ($0.key, $0.value) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_commit(rk, list, async ? 1 : 0)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.commit, err, "commit \(offsets.count) partitions") }
        if async { return }
        for (tp, _, e) in PartitionList.read(list) where e != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw kafkaError(.commit, e, "commit \(tp)")
        }
    }

    /// The group's committed offsets for `partitions` (absent when none is committed).
    public func committed(_ partitions: [KafkaTopicPartition], timeoutMs: Int32 = 10_000) throws -> [KafkaTopicPartition: Int64] {
        let list = PartitionList.make(partitions.map { ($0, nil) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_committed(rk, list, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.commit, err, "read committed offsets") }
        var out: [KafkaTopicPartition: Int64] = [:]
        for (tp, offset, _) in PartitionList.read(list) where offset >= 0 { out[tp] = offset }
        return out
    }

    /// Stops fetching `partitions` until `resume`; already fetched messages may still arrive.
    public func pause(_ partitions: [KafkaTopicPartition]) throws {
        let list = PartitionList.make(partitions.map { ($0, nil) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_pause_partitions(rk, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.assignment, err, "pause") }
    }

    public func resume(_ partitions: [KafkaTopicPartition]) throws {
        let list = PartitionList.make(partitions.map { ($0, nil) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_resume_partitions(rk, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.assignment, err, "resume") }
    }

    /// The partitions currently assigned to this member.
    public func assignment() throws -> [KafkaTopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let err = rd_kafka_assignment(rk, &list)
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.assignment, err, "assignment") }
        return PartitionList.read(list).map(\.0)
    }

    /// The partition's high watermark (next offset to be written) as last seen by fetches,
    /// or nil before the first fetch response. No network round trip.
    public func cachedHighWatermark(_ tp: KafkaTopicPartition) -> Int64? {
        var low: Int64 = -1
        var high: Int64 = -1
        let err = rd_kafka_get_watermark_offsets(rk, tp.topic, tp.partition, &low, &high)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0 ? high : nil
    }

    /// Asks the broker for the low and high watermarks of `tp`.
    public func queryWatermarks(_ tp: KafkaTopicPartition, timeoutMs: Int32 = 5000) throws -> (low: Int64, high: Int64) {
        var low: Int64 = -1
        var high: Int64 = -1
        let err = rd_kafka_query_watermark_offsets(rk, tp.topic, tp.partition, &low, &high, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.poll, err, "watermarks of \(tp)") }
        return (low, high)
    }

    /// Leaves the group: the listener gets a final revoke (on this thread), then the member
    /// leaves so the others rebalance at once. Idempotent.
    public func close() throws {
        guard !closed else { return }
        closed = true
        let err = rd_kafka_consumer_close(rk)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.closed, err, "close") }
    }

    fileprivate func handleRebalance(
        _ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>
    ) {
        let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
        let tps = PartitionList.read(partitions).map(\.0)
        let logger = callbacks.logger
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let starts = callbacks.rebalance?.consumer(self, assigned: tps) ?? [:]
            for i in 0..<Int(partitions.pointee.cnt) {
                let e = partitions.pointee.elems[i]
                let tp = KafkaTopicPartition(topic: String(cString: e.topic), partition: e.partition)
                if let start = starts[tp] { partitions.pointee.elems[i].offset = start }
            }
            logger.info("assigned \(tps.map(\.partition).sorted())", metadata: ["kafka.client": .string(callbacks.clientName)])
            if cooperative {
                if let e = rd_kafka_incremental_assign(rk, partitions) {
                    logger.error("incremental assign failed: \(String(cString: rd_kafka_error_string(e)))")
                    rd_kafka_error_destroy(e)
                }
            } else {
                let e = rd_kafka_assign(rk, partitions)
                if e != RD_KAFKA_RESP_ERR_NO_ERROR { logger.error("assign failed: \(String(cString: rd_kafka_err2str(e)))") }
            }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(rk) != 0
            callbacks.rebalance?.consumer(self, revoked: tps, lost: lost)
            logger.info(
                "\(lost ? "lost" : "revoked") \(tps.map(\.partition).sorted())",
                metadata: ["kafka.client": .string(callbacks.clientName)])
            if cooperative {
                if let e = rd_kafka_incremental_unassign(rk, partitions) {
                    logger.error("incremental unassign failed: \(String(cString: rd_kafka_error_string(e)))")
                    rd_kafka_error_destroy(e)
                }
            } else {
                rd_kafka_assign(rk, nil)
            }
        default:
            logger.error("rebalance error: \(String(cString: rd_kafka_err2str(err)))")
            rd_kafka_assign(rk, nil)
        }
    }
}

private let rebalanceCallback:
    @convention(c) (
        OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
        UnsafeMutableRawPointer?
    ) -> Void = { _, err, partitions, opaque in
        guard let opaque, let partitions else { return }
        let box = Unmanaged<KafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
        box.consumer?.handleRebalance(err, partitions)
    }
