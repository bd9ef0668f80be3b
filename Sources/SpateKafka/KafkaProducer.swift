internal import CRdKafka
public import Logging
import Foundation
import Synchronization

/// The outcome of one produced message, reported once by librdkafka.
public struct KafkaDeliveryReport: Sendable {
    /// The caller's token given to `send`.
    public var token: UInt64
    public var partition: Int32
    /// The offset the broker assigned; -1 on failure.
    public var offset: Int64
    /// nil when the broker acknowledged the message.
    public var error: KafkaError?
    /// For a failed message: librdkafka cannot rule out that the broker stored it (the
    /// request was sent but its answer never came).
    public var possiblyPersisted: Bool
}

/// A librdkafka producer. `send` enqueues without blocking; a dedicated thread serves
/// delivery reports and hands each to `onDelivery` — always on that one thread, so the
/// handler needs no locking of its own.
public final class KafkaProducer: @unchecked Sendable {
    private let rk: OpaquePointer
    private let callbacks: KafkaCallbacks
    private let topics = Mutex<[String: OpaquePointer]>([:])
    private let stopping = AtomicFlag()
    private let pollerDone = DispatchSemaphore(value: 0)
    private let logger: Logger
    private let closed = Atomic<Bool>(false)

    /// - Parameters:
    ///   - properties: librdkafka properties (`bootstrap.servers`, `enable.idempotence`, …).
    ///   - onDelivery: called once per message on the producer's report thread.
    ///   - onError: client-level errors (brokers down), from librdkafka's threads.
    public init(
        properties: [String: String], logger: Logger,
        onError: (@Sendable (KafkaError) -> Void)? = nil,
        onDelivery: @escaping (KafkaDeliveryReport) -> Void
    ) throws {
        try KafkaLibrary.checkVersion()
        self.logger = logger
        let conf = try KafkaConf.make(properties)
        callbacks = KafkaCallbacks(logger: logger, clientName: properties["client.id"] ?? "producer", onError: onError)
        callbacks.onDelivery = onDelivery
        rd_kafka_conf_set_dr_msg_cb(conf, deliveryCallback)
        rk = try makeKafkaHandle(type: RD_KAFKA_PRODUCER, conf: conf, callbacks: callbacks)
        let handle = UncheckedHandle(rk)
        let thread = Thread { [handle, stopping, pollerDone] in
            while !stopping.isSet {
                rd_kafka_poll(handle.pointer, 50)
            }
            pollerDone.signal()
        }
        thread.name = "kafka-producer-reports"
        thread.start()
    }

    deinit {
        close(timeout: .zero)
        for (_, rkt) in topics.withLock({ $0 }) { rd_kafka_topic_destroy(rkt) }
        rd_kafka_destroy(rk)
    }

    /// Messages enqueued or in flight whose delivery report has not been served yet.
    public var pendingCount: Int { Int(rd_kafka_outq_len(rk)) }

    /// Enqueues one message (librdkafka copies `value`, `key` and headers).
    /// - Parameters:
    ///   - partition: nil lets the partitioner choose from the key.
    ///   - token: returned in this message's delivery report.
    /// - Throws: `queueFull` (retriable) when the local queue is at its bound; `produce` otherwise.
    public func send(
        topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: UnsafeRawBufferPointer,
        headers: [(String, [UInt8])] = [], token: UInt64
    ) throws {
        guard !closed.load(ordering: .relaxed) else { throw KafkaError(.closed, "producer is closed") }
        let rkt = try topicHandle(topic)
        var vus: [rd_kafka_vu_t] = []
        vus.reserveCapacity(6 + headers.count)
        func vu(_ type: rd_kafka_vtype_t, _ fill: (inout rd_kafka_vu_t) -> Void) {
            var v = rd_kafka_vu_t()
            v.vtype = type
            fill(&v)
            vus.append(v)
        }
        vu(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = rkt }
        vu(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = partition ?? RD_KAFKA_PARTITION_UA }
        vu(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
        vu(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = UnsafeMutableRawPointer(bitPattern: UInt(token) &+ 1) }
        vu(RD_KAFKA_VTYPE_VALUE) {
            $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
            $0.u.mem.size = value.count
        }
        // Key, header names and values are copied into one scratch buffer that outlives the
        // produceva call (librdkafka copies them again before returning).
        var total = key?.count ?? 0
        for (name, val) in headers { total += name.utf8.count + 1 + val.count }
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 8)
        defer { scratch.deallocate() }
        var cursor = scratch
        func put(_ bytes: some Collection<UInt8>, terminate: Bool = false) -> UnsafeMutableRawPointer {
            let start = cursor
            for b in bytes {
                cursor.storeBytes(of: b, as: UInt8.self)
                cursor += 1
            }
            if terminate {
                cursor.storeBytes(of: 0, as: UInt8.self)
                cursor += 1
            }
            return start
        }
        if let key {
            let p = put(key)
            vu(RD_KAFKA_VTYPE_KEY) {
                $0.u.mem.ptr = p
                $0.u.mem.size = key.count
            }
        }
        for (name, val) in headers {
            let n = put(name.utf8, terminate: true)
            let v = put(val)
            vu(RD_KAFKA_VTYPE_HEADER) {
                $0.u.header.name = UnsafePointer(n.assumingMemoryBound(to: CChar.self))
                $0.u.header.val = UnsafeRawPointer(v)
                $0.u.header.size = val.count
            }
        }
        let err = rd_kafka_produceva(rk, vus, vus.count)
        if let err {
            let code = rd_kafka_error_code(err)
            rd_kafka_error_destroy(err)
            if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                throw KafkaError(.queueFull, "local producer queue is full", isRetriable: true, rdkafkaCode: code.rawValue)
            }
            throw kafkaError(.produce, code, "produce to \(topic)")
        }
    }

    /// Waits until every enqueued message has its delivery report served.
    /// - Throws: `timeout` with the number still pending.
    public func flush(timeout: Duration) throws {
        let deadline = ContinuousClock.now + timeout
        while pendingCount > 0 {
            if ContinuousClock.now >= deadline {
                throw KafkaError(.timeout, "\(pendingCount) messages still unacknowledged after \(timeout)", isRetriable: true)
            }
            Thread.sleep(forTimeInterval: 0.002)
        }
    }

    /// Gives up every message not yet acknowledged, queued or in flight: each gets a failed
    /// delivery report (served by the report thread as usual) instead of further retries.
    public func purge() {
        _ = rd_kafka_purge(rk, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
    }

    /// Flushes for up to `timeout`, then stops the report thread. Further sends fail.
    public func close(timeout: Duration) {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        do { try flush(timeout: timeout) } catch {
            if timeout > .zero { logger.warning("producer closing with undelivered messages: \(error)") }
        }
        stopping.set()
        pollerDone.wait()
    }

    private func topicHandle(_ name: String) throws -> OpaquePointer {
        try topics.withLock { topics in
            if let t = topics[name] { return t }
            guard let t = rd_kafka_topic_new(rk, name, nil) else {
                throw kafkaError(.produce, rd_kafka_last_error(), "topic handle for \(name)")
            }
            topics[name] = t
            return t
        }
    }
}

private let deliveryCallback:
    @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
        _, message, opaque in
        guard let message, let opaque else { return }
        let box = Unmanaged<KafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
        let m = message.pointee
        let token = UInt64(UInt(bitPattern: m._private) &- 1)
        let error: KafkaError? =
            m.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : kafkaError(.delivery, m.err, "delivery to partition \(m.partition)")
        let status = rd_kafka_message_status(message)
        box.onDelivery?(
            KafkaDeliveryReport(
                token: token, partition: m.partition, offset: m.offset, error: error,
                possiblyPersisted: error != nil && status != RD_KAFKA_MSG_STATUS_NOT_PERSISTED))
    }
