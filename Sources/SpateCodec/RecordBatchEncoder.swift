internal import SpateProtos
public import SpateModel

/// Encodes `RecordBatch` values with protobuf-c. Strings and addresses are copied into an
/// arena for the duration of one `encode` call, so no Swift buffer has to outlive a closure.
///
/// Not thread-safe: use one encoder per thread. Strings cannot contain NUL bytes (protobuf-c
/// represents them as C strings); everything after a NUL is dropped.
public final class RecordBatchEncoder {
    private let arena: OpaquePointer

    public init(initialArenaBytes: Int = 256 << 10) {
        guard let arena = spate_arena_create(initialArenaBytes) else {
            fatalError("RecordBatchEncoder: cannot allocate \(initialArenaBytes) bytes")
        }
        self.arena = arena
    }

    deinit { spate_arena_destroy(arena) }

    /// The protobuf encoding of `batch`.
    public func encode(_ batch: RecordBatch) -> [UInt8] {
        var out: [UInt8] = []
        encode(batch, into: &out)
        return out
    }

    /// Appends the protobuf encoding of `batch` to `out` (reusing its capacity).
    public func encode(_ batch: RecordBatch, into out: inout [UInt8]) {
        spate_arena_reset(arena)
        defer { spate_arena_reset(arena) }
        let msg = alloc(Spate__Probe__V1__RecordBatch.self)
        spate__probe__v1__record_batch__init(msg)
        msg.pointee.probe_id = batch.probeID
        msg.pointee.seq = batch.sequence
        msg.pointee.created_ms = batch.createdMs
        let n = batch.records.count
        let array = allocArray(UnsafeMutablePointer<Spate__Probe__V1__FlowRecord>?.self, n)
        for (i, r) in batch.records.enumerated() {
            array[i] = makeRecord(r)
        }
        msg.pointee.n_records = n
        msg.pointee.records = array
        let size = spate__probe__v1__record_batch__get_packed_size(msg)
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: size))
        out.withUnsafeMutableBufferPointer { buf in
            _ = spate__probe__v1__record_batch__pack(msg, buf.baseAddress! + start)
        }
    }

    private func makeRecord(_ r: FlowRecord) -> UnsafeMutablePointer<Spate__Probe__V1__FlowRecord> {
        let m = alloc(Spate__Probe__V1__FlowRecord.self)
        spate__probe__v1__flow_record__init(m)
        m.pointee.start_time_ms = r.startTimeMs
        m.pointee.end_time_ms = r.endTimeMs
        m.pointee.probe_id = r.probeID
        m.pointee.interface_index = r.interfaceIndex
        m.pointee.client_ip = binary(r.clientIP.bytes)
        m.pointee.server_ip = binary(r.serverIP.bytes)
        m.pointee.client_port = UInt32(r.clientPort)
        m.pointee.server_port = UInt32(r.serverPort)
        m.pointee.l4_protocol = UInt32(r.l4Protocol)
        m.pointee.application = text(r.application)
        m.pointee.application_category = text(r.applicationCategory)
        m.pointee.host = text(r.host)
        m.pointee.subscriber_id = text(r.subscriberID)
        m.pointee.device_type = text(r.deviceType)
        m.pointee.country = text(r.country)
        m.pointee.bytes_up = r.bytesUp
        m.pointee.bytes_down = r.bytesDown
        m.pointee.packets_up = r.packetsUp
        m.pointee.packets_down = r.packetsDown
        m.pointee.flows = r.flows
        m.pointee.rtt_us = r.rttMicros
        m.pointee.retransmissions = r.retransmissions
        return m
    }

    private func alloc<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        allocArray(T.self, 1)
    }

    private func allocArray<T>(_: T.Type, _ count: Int) -> UnsafeMutablePointer<T> {
        guard let p = spate_arena_alloc(arena, MemoryLayout<T>.stride * max(count, 1)) else {
            fatalError("RecordBatchEncoder: out of memory")
        }
        return p.bindMemory(to: T.self, capacity: max(count, 1))
    }

    private func text(_ s: String) -> ProtobufCBinaryData {
        var s = s
        return s.withUTF8 { copy($0) }
    }

    private func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        bytes.withUnsafeBufferPointer { copy($0) }
    }

    /// `bytes` copied into the arena, as protobuf-c's length-delimited field.
    private func copy(_ bytes: UnsafeBufferPointer<UInt8>) -> ProtobufCBinaryData {
        let p = allocArray(UInt8.self, bytes.count)
        if let base = bytes.baseAddress { p.update(from: base, count: bytes.count) }
        return ProtobufCBinaryData(len: bytes.count, data: p)
    }
}
