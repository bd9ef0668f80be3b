internal import SpateProtos
#if canImport(Glibc)
internal import Glibc
#endif
public import SpateModel

/// Unpacks RecordBatch messages with protobuf-c into an arena, validates them, and lets the
/// caller read the records in place — no per-record heap allocation.
///
/// Not thread-safe: each ingest worker owns one decoder. Views handed to `withBatch`'s body
/// are valid only inside it.
public final class RecordBatchDecoder {
    private let arena: OpaquePointer
    /// The most the arena keeps between batches: after a larger batch it shrinks back.
    public let retainedArenaBytes: Int

    /// - Parameters:
    ///   - initialArenaBytes: first arena chunk; it grows to fit the largest batch.
    ///   - retainedArenaBytes: what the arena may keep after a batch; a bigger one (a rare
    ///     huge message) is returned to the system once decoded.
    public init(initialArenaBytes: Int = 1 << 20, retainedArenaBytes: Int = 16 << 20) {
        guard let arena = spate_arena_create(initialArenaBytes) else {
            fatalError("RecordBatchDecoder: cannot allocate \(initialArenaBytes) bytes")
        }
        self.arena = arena
        self.retainedArenaBytes = max(initialArenaBytes, retainedArenaBytes)
    }

    deinit { spate_arena_destroy(arena) }

    /// Bytes the arena holds from the system (its high-water mark, kept between batches).
    public var arenaCapacity: Int { spate_arena_capacity(arena) }

    /// Decodes and validates `bytes`, then calls `body` with a view of the batch.
    /// - Parameters:
    ///   - limits: the value rules every record must meet (event-time window, counter bounds).
    ///   - messageTimestampMs: the Kafka message timestamp (Unix ms, or negative when the
    ///     message has none): the event-time window is measured from it, so a replay of the
    ///     same message decides the same way.
    /// - Throws: `RecordDecodingError` for anything that is not a valid batch; `body`'s errors.
    public func withBatch<R>(
        _ bytes: UnsafeRawBufferPointer, limits: RecordLimits = .default, messageTimestampMs: Int64 = -1,
        _ body: (DecodedBatch) throws -> R
    ) throws -> R {
        spate_arena_reset(arena)
        defer { spate_arena_trim(arena, retainedArenaBytes) }
        var zero: UInt8 = 0
        let unpacked = withUnsafePointer(to: &zero) { zeroPointer in
            // protobuf-c wants a non-null pointer even for an empty message.
            let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? zeroPointer
            return spate__probe__v1__record_batch__unpack(spate_arena_allocator(arena), bytes.count, base)
        }
        guard let batch = unpacked else {
            throw RecordDecodingError(.malformedProtobuf, "not a RecordBatch message (\(bytes.count) bytes)")
        }
        let view = DecodedBatch(raw: UnsafePointer(batch))
        try view.validate(RecordRules(limits: limits, messageTimestampMs: messageTimestampMs))
        return try body(view)
    }

    /// Decodes `bytes` into Swift values, also checking that every string is valid UTF-8.
    public func decode(_ bytes: [UInt8]) throws -> RecordBatch {
        try bytes.withUnsafeBytes { raw in
            try withBatch(raw) { batch in
                var records: [FlowRecord] = []
                records.reserveCapacity(batch.count)
                for i in 0..<batch.count {
                    records.append(try batch[i].makeFlowRecord(index: i))
                }
                return RecordBatch(
                    probeID: batch.probeID, sequence: batch.sequence, createdMs: batch.createdMs,
                    records: records)
            }
        }
    }
}


/// A decoded batch, read in place from protobuf-c's structs.
public struct DecodedBatch {
    fileprivate let raw: UnsafePointer<Spate__Probe__V1__RecordBatch>

    public var probeID: UInt32 { raw.pointee.probe_id }
    public var sequence: UInt64 { raw.pointee.seq }
    public var createdMs: UInt64 { raw.pointee.created_ms }
    public var count: Int { raw.pointee.n_records }

    /// Record `index` (0 ..< count).
    public subscript(index: Int) -> DecodedRecord {
        DecodedRecord(raw: UnsafePointer(raw.pointee.records[index]!))
    }

    fileprivate func validate(_ rules: RecordRules) throws {
        guard probeID != 0 else { throw RecordDecodingError(.invalidBatch, "probe_id is 0") }
        guard raw.pointee.created_ms != 0 else {
            throw RecordDecodingError(.invalidBatch, "batch \(sequence) of probe \(probeID) is not sealed (created_ms is 0)")
        }
        guard count > 0 else { throw RecordDecodingError(.emptyBatch, "batch \(sequence) of probe \(probeID) has no records") }
        for i in 0..<count {
            try self[i].validate(index: i, rules)
        }
    }
}

extension DecodedBatch {
    /// The records at `indices` re-encoded as a `RecordBatch` with this batch's probe id,
    /// sequence and seal time — byte for byte the records as received, invalid strings
    /// included (protobuf-c packs the decoded structs; nothing is converted or validated).
    public func encodeSubset(_ indices: [Int]) -> [UInt8] {
        // Shallow copies (strings and addresses still point into the arena) without the
        // unknown fields protobuf-c kept: those re-pack in forms (field 0, say) that would not
        // decode again, and a dead letter must be replayable.
        var copies: [Spate__Probe__V1__FlowRecord] = indices.compactMap { i in
            guard var r = raw.pointee.records[i]?.pointee else { return nil }
            r.base.n_unknown_fields = 0
            r.base.unknown_fields = nil
            return r
        }
        return copies.withUnsafeMutableBufferPointer { records in
            var pointers: [UnsafeMutablePointer<Spate__Probe__V1__FlowRecord>?] = records.indices.map { i in records.baseAddress.map { $0 + i } }
            return pack(&pointers)
        }
    }

    private func pack(_ pointers: inout [UnsafeMutablePointer<Spate__Probe__V1__FlowRecord>?]) -> [UInt8] {
        var msg = Spate__Probe__V1__RecordBatch()
        spate__probe__v1__record_batch__init(&msg)
        msg.probe_id = raw.pointee.probe_id
        msg.seq = raw.pointee.seq
        msg.created_ms = raw.pointee.created_ms
        return pointers.withUnsafeMutableBufferPointer { p in
            msg.n_records = p.count
            msg.records = p.baseAddress
            let size = spate__probe__v1__record_batch__get_packed_size(&msg)
            var out = [UInt8](repeating: 0, count: size)
            out.withUnsafeMutableBufferPointer { o in
                _ = spate__probe__v1__record_batch__pack(&msg, o.baseAddress)
            }
            return out
        }
    }
}

/// A borrowed string field inside a decoded batch: its bytes exactly as received (protobuf-c
/// reads these fields as length-delimited bytes, so an embedded NUL is visible, not a cut).
public struct CStringView {
    /// The string's bytes.
    public let utf8: UnsafeBufferPointer<UInt8>

    fileprivate init(_ b: ProtobufCBinaryData) {
        utf8 = UnsafeBufferPointer(start: b.data, count: b.len)
    }

    public var isEmpty: Bool { utf8.isEmpty }

    /// Whether a NUL byte occurs in the string (refused at the boundary).
    public var containsNUL: Bool {
        guard let base = utf8.baseAddress, !utf8.isEmpty else { return false }
        return memchr(base, 0, utf8.count) != nil
    }

    /// A Swift String, nil when the bytes are not valid UTF-8.
    public var validatedString: String? { String(validating: utf8, as: UTF8.self) }
}

/// A borrowed byte string inside a decoded batch.
public typealias BytesView = UnsafeBufferPointer<UInt8>

/// One decoded record, read in place.
public struct DecodedRecord {
    fileprivate let raw: UnsafePointer<Spate__Probe__V1__FlowRecord>

    public var startTimeMs: UInt64 { raw.pointee.start_time_ms }
    public var endTimeMs: UInt64 { raw.pointee.end_time_ms }
    public var probeID: UInt32 { raw.pointee.probe_id }
    public var interfaceIndex: UInt32 { raw.pointee.interface_index }
    public var clientIP: BytesView { Self.bytes(raw.pointee.client_ip) }
    public var serverIP: BytesView { Self.bytes(raw.pointee.server_ip) }
    public var clientPort: UInt16 { UInt16(truncatingIfNeeded: raw.pointee.client_port) }
    public var serverPort: UInt16 { UInt16(truncatingIfNeeded: raw.pointee.server_port) }
    public var l4Protocol: UInt8 { UInt8(truncatingIfNeeded: raw.pointee.l4_protocol) }
    public var application: CStringView { CStringView(raw.pointee.application) }
    public var applicationCategory: CStringView { CStringView(raw.pointee.application_category) }
    public var host: CStringView { CStringView(raw.pointee.host) }
    public var subscriberID: CStringView { CStringView(raw.pointee.subscriber_id) }
    public var deviceType: CStringView { CStringView(raw.pointee.device_type) }
    public var country: CStringView { CStringView(raw.pointee.country) }
    public var bytesUp: UInt64 { raw.pointee.bytes_up }
    public var bytesDown: UInt64 { raw.pointee.bytes_down }
    public var packetsUp: UInt64 { raw.pointee.packets_up }
    public var packetsDown: UInt64 { raw.pointee.packets_down }
    public var flows: UInt32 { raw.pointee.flows }
    public var rttMicros: UInt32 { raw.pointee.rtt_us }
    public var retransmissions: UInt32 { raw.pointee.retransmissions }

    private static func bytes(_ b: ProtobufCBinaryData) -> BytesView {
        UnsafeBufferPointer(start: b.data, count: b.len)
    }

    fileprivate func validate(index i: Int, _ rules: RecordRules) throws {
        let r = raw.pointee
        func bad(_ what: String) -> RecordDecodingError { RecordDecodingError(.invalidRecord, "record \(i): \(what)") }
        guard r.end_time_ms != 0 else { throw bad("end_time_ms is 0") }
        guard r.start_time_ms <= r.end_time_ms else {
            throw bad("start_time_ms \(r.start_time_ms) is after end_time_ms \(r.end_time_ms)")
        }
        guard r.client_ip.len == 4 || r.client_ip.len == 16 else {
            throw bad("client_ip has \(r.client_ip.len) bytes (want 4 or 16)")
        }
        guard r.server_ip.len == 4 || r.server_ip.len == 16 else {
            throw bad("server_ip has \(r.server_ip.len) bytes (want 4 or 16)")
        }
        guard r.client_port <= 65535, r.server_port <= 65535 else { throw bad("port above 65535") }
        guard r.l4_protocol <= 255 else { throw bad("l4_protocol \(r.l4_protocol) above 255") }
        guard r.application.len > 0 else { throw bad("application is empty") }
        // The value rules (checked after the structural ones, whose reasons stay as they were).
        guard rules.window.contains(r.end_time_ms) else {
            throw RecordDecodingError(.eventTimeOutOfRange, "record \(i): end_time_ms \(r.end_time_ms) \(rules.windowDescription)")
        }
        // No arrays here: this runs for every record.
        func counter(_ name: String, _ value: UInt64, _ limit: UInt64) throws {
            if value > limit {
                throw RecordDecodingError(.counterOutOfRange, "record \(i): \(name) \(value) is above the per-record limit \(limit)")
            }
        }
        try counter("bytes_up", r.bytes_up, RecordLimits.maxBytes)
        try counter("bytes_down", r.bytes_down, RecordLimits.maxBytes)
        try counter("packets_up", r.packets_up, RecordLimits.maxPackets)
        try counter("packets_down", r.packets_down, RecordLimits.maxPackets)
        try counter("flows", UInt64(r.flows), RecordLimits.maxFlows)
        func noNUL(_ name: String, _ value: ProtobufCBinaryData) throws {
            if CStringView(value).containsNUL {
                throw RecordDecodingError(.invalidString, "record \(i): \(name) contains a NUL byte")
            }
        }
        try noNUL("application", r.application)
        try noNUL("application_category", r.application_category)
        try noNUL("host", r.host)
        try noNUL("subscriber_id", r.subscriber_id)
        try noNUL("device_type", r.device_type)
        try noNUL("country", r.country)
    }

    /// The Swift value form; throws when a string is not valid UTF-8.
    public func makeFlowRecord(index: Int = 0) throws -> FlowRecord {
        func text(_ v: CStringView, _ field: String) throws -> String {
            guard let s = v.validatedString else {
                throw RecordDecodingError(.invalidUTF8, "record \(index): \(field) is not valid UTF-8")
            }
            return s
        }
        func address(_ b: BytesView, _ field: String) throws -> IPAddress {
            guard let a = IPAddress(bytes: b) else {
                throw RecordDecodingError(.invalidRecord, "record \(index): \(field) has \(b.count) bytes (want 4 or 16)")
            }
            return a
        }
        return FlowRecord(
            startTimeMs: startTimeMs, endTimeMs: endTimeMs, probeID: probeID, interfaceIndex: interfaceIndex,
            clientIP: try address(clientIP, "client_ip"), serverIP: try address(serverIP, "server_ip"),
            clientPort: clientPort, serverPort: serverPort, l4Protocol: l4Protocol,
            application: try text(application, "application"),
            applicationCategory: try text(applicationCategory, "application_category"),
            host: try text(host, "host"), subscriberID: try text(subscriberID, "subscriber_id"),
            deviceType: try text(deviceType, "device_type"), country: try text(country, "country"),
            bytesUp: bytesUp, bytesDown: bytesDown, packetsUp: packetsUp, packetsDown: packetsDown,
            flows: flows, rttMicros: rttMicros, retransmissions: retransmissions)
    }
}
