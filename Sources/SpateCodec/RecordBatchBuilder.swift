public import SpateModel

/// A string registered once with a `RecordBatchBuilder`, referred to by index afterwards.
public struct InternedString: Hashable, Sendable {
    public let index: Int32
}

/// One record's fields for `RecordBatchBuilder`: scalars and interned strings only, so
/// building a batch allocates nothing per record.
public struct RecordFields: Sendable {
    public var startTimeMs: UInt64 = 0
    public var endTimeMs: UInt64 = 0
    public var probeID: UInt32 = 0
    public var interfaceIndex: UInt32 = 0
    public var clientIP: IPAddress = .v4(0)
    public var serverIP: IPAddress = .v4(0)
    public var clientPort: UInt16 = 0
    public var serverPort: UInt16 = 0
    public var l4Protocol: UInt8 = 0
    public var application: InternedString
    public var applicationCategory: InternedString
    public var host: InternedString
    public var subscriberID: InternedString
    public var deviceType: InternedString
    public var country: InternedString
    public var bytesUp: UInt64 = 0
    public var bytesDown: UInt64 = 0
    public var packetsUp: UInt64 = 0
    public var packetsDown: UInt64 = 0
    public var flows: UInt32 = 0
    public var rttMicros: UInt32 = 0
    public var retransmissions: UInt32 = 0

    /// All strings set to `empty` (an interned "").
    public init(empty: InternedString) {
        application = empty
        applicationCategory = empty
        host = empty
        subscriberID = empty
        deviceType = empty
        country = empty
    }
}

/// The probe's encoder: writes RecordBatch wire format directly from `RecordFields`, with
/// strings interned once, so a batch costs no allocation and no descriptor walk per field.
///
/// It is a hand-specialised encoder for `spate.probe.v1.RecordBatch`: canonical proto3 output
/// (fields in number order, zero values omitted), verified byte for byte against protobuf-c's
/// own `pack` by the codec tests. Everything else (decoding, the general encoder) goes through
/// protobuf-c. Not thread-safe.
public final class RecordBatchBuilder {
    private var strings: [[UInt8]] = []
    private var lookup: [String: InternedString] = [:]
    private var buffer: [UInt8] = []
    private var position = 0
    private var createdMs: UInt64 = 0
    private var capacity = 0
    private var count = 0

    public init() {}

    /// Registers `s` (once; later calls return the same handle).
    public func intern(_ s: String) -> InternedString {
        if let id = lookup[s] { return id }
        let id = InternedString(index: Int32(strings.count))
        strings.append(Array(s.utf8))
        lookup[s] = id
        return id
    }

    /// Starts a new batch of at most `capacity` records.
    public func begin(probeID: UInt32, sequence: UInt64, createdMs: UInt64, capacity: Int) {
        self.capacity = capacity
        self.createdMs = createdMs
        count = 0
        position = 0
        reserve(32)
        buffer.withUnsafeMutableBufferPointer { b in
            var w = Writer(base: b.baseAddress!, p: 0)
            w.uint(1, UInt64(probeID))
            w.uint(2, sequence)
            position = w.p
        }
    }

    /// Appends one record to the current batch.
    public func append(_ f: RecordFields) {
        precondition(count < capacity, "RecordBatchBuilder: batch is full")
        count += 1
        // Tags ≤ 2 bytes, varints ≤ 10, addresses ≤ 18, strings ≤ 5 + length, framing ≤ 6.
        let s = (
            strings[Int(f.application.index)], strings[Int(f.applicationCategory.index)], strings[Int(f.host.index)],
            strings[Int(f.subscriberID.index)], strings[Int(f.deviceType.index)], strings[Int(f.country.index)]
        )
        reserve(position + 320 + s.0.count + s.1.count + s.2.count + s.3.count + s.4.count + s.5.count)
        buffer.withUnsafeMutableBufferPointer { b in
            let base = b.baseAddress!
            base[position] = 0x1A  // field 3, length-delimited
            let lengthAt = position + 1
            var w = Writer(base: base, p: lengthAt + 2)
            w.uint(1, f.startTimeMs)
            w.uint(2, f.endTimeMs)
            w.uint(3, UInt64(f.probeID))
            w.uint(4, UInt64(f.interfaceIndex))
            w.address(5, f.clientIP)
            w.address(6, f.serverIP)
            w.uint(7, UInt64(f.clientPort))
            w.uint(8, UInt64(f.serverPort))
            w.uint(9, UInt64(f.l4Protocol))
            w.bytes(10, s.0)
            w.bytes(11, s.1)
            w.bytes(12, s.2)
            w.bytes(13, s.3)
            w.bytes(14, s.4)
            w.bytes(15, s.5)
            w.uint(16, f.bytesUp)
            w.uint(17, f.bytesDown)
            w.uint(18, f.packetsUp)
            w.uint(19, f.packetsDown)
            w.uint(20, UInt64(f.flows))
            w.uint(21, UInt64(f.rttMicros))
            w.uint(22, UInt64(f.retransmissions))
            let n = w.p - (lengthAt + 2)
            var lengthBytes = 1
            while n >> (7 * lengthBytes) != 0 { lengthBytes += 1 }
            if lengthBytes != 2 {
                (base + lengthAt + lengthBytes).update(from: base + lengthAt + 2, count: n)
            }
            var lw = Writer(base: base, p: lengthAt)
            lw.varint(UInt64(n))
            position = lengthAt + lengthBytes + n
        }
    }

    /// The encoded batch, replacing `out`'s contents.
    public func finish(into out: inout [UInt8]) {
        reserve(position + 16)
        buffer.withUnsafeMutableBufferPointer { b in
            var w = Writer(base: b.baseAddress!, p: position)
            w.uint(4, createdMs)
            position = w.p
        }
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: buffer[..<position])
    }

    private func reserve(_ bytes: Int) {
        if buffer.count < bytes { buffer.append(contentsOf: repeatElement(0, count: max(bytes, buffer.count * 2) - buffer.count)) }
    }
}

/// Protobuf wire-format primitives over raw memory the caller has sized.
private struct Writer {
    let base: UnsafeMutablePointer<UInt8>
    var p: Int

    @inline(__always)
    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            base[p] = UInt8(truncatingIfNeeded: v) | 0x80
            v >>= 7
            p += 1
        }
        base[p] = UInt8(v)
        p += 1
    }

    @inline(__always)
    mutating func tag(_ field: UInt64, _ wireType: UInt64) { varint(field << 3 | wireType) }

    /// A varint field; proto3 omits zero.
    @inline(__always)
    mutating func uint(_ field: UInt64, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, 0)
        varint(value)
    }

    /// A length-delimited field; proto3 omits empty.
    @inline(__always)
    mutating func bytes(_ field: UInt64, _ value: [UInt8]) {
        guard !value.isEmpty else { return }
        tag(field, 2)
        varint(UInt64(value.count))
        value.withUnsafeBufferPointer { (base + p).update(from: $0.baseAddress!, count: value.count) }
        p += value.count
    }

    @inline(__always)
    mutating func address(_ field: UInt64, _ ip: IPAddress) {
        tag(field, 2)
        switch ip {
        case .v4(let v):
            base[p] = 4
            base[p + 1] = UInt8(v >> 24)
            base[p + 2] = UInt8(v >> 16 & 0xff)
            base[p + 3] = UInt8(v >> 8 & 0xff)
            base[p + 4] = UInt8(v & 0xff)
            p += 5
        case .v6(let hi, let lo):
            base[p] = 16
            for i in 0..<8 {
                base[p + 1 + i] = UInt8(hi >> (56 - 8 * UInt64(i)) & 0xff)
                base[p + 9 + i] = UInt8(lo >> (56 - 8 * UInt64(i)) & 0xff)
            }
            p += 17
        }
    }
}
