import SpateWire

/// A call's HEADERS payload (`RequestHeaders` in Protos/spate/query/v1/query.proto), read by
/// the server with its own strict protobuf reader: strings must be UTF-8 without NUL (a C
/// decoder would cut them at the NUL, so `Bearer <token>\0junk` would pass), metadata keys
/// may not repeat (which `authorization` would win is not something to leave to a decoder),
/// and the entry count is bounded. Unknown fields are skipped as protobuf requires, so any
/// conforming client's encoding is read.
public struct RequestHead: Sendable, Hashable {
    /// The method name.
    public var method: String
    /// Relative deadline in milliseconds; 0: none.
    public var timeoutMs: UInt32
    /// Metadata in the order sent; keys are unique.
    public var metadata: [(key: String, value: String)]

    /// The value of `key`, if sent.
    public func value(_ key: String) -> String? { metadata.first { $0.key == key }?.value }

    /// Compares field by field.
    public static func == (a: RequestHead, b: RequestHead) -> Bool {
        a.method == b.method && a.timeoutMs == b.timeoutMs && a.metadata.map(\.key) == b.metadata.map(\.key)
            && a.metadata.map(\.value) == b.metadata.map(\.value)
    }

    /// Hashes the method and deadline.
    public func hash(into h: inout Hasher) {
        h.combine(method)
        h.combine(timeoutMs)
    }

    /// A head built from parts (tests, fuzzing).
    public init(method: String, timeoutMs: UInt32 = 0, metadata: [(key: String, value: String)] = []) {
        self.method = method
        self.timeoutMs = timeoutMs
        self.metadata = metadata
    }

    /// Reads a HEADERS payload.
    /// - Throws: `RPCError` INVALID_ARGUMENT for malformed protobuf, a string that is not
    ///   UTF-8 or contains NUL, a repeated metadata key, or more than `maxMetadataEntries` entries.
    public init(decoding bytes: [UInt8], maxMetadataEntries: Int) throws {
        var reader = ProtoReader(bytes)
        method = ""
        timeoutMs = 0
        metadata = []
        while let (field, wire) = try reader.tag() {
            switch (field, wire) {
            case (1, 2): method = try ProtoReader.string(try reader.bytes(), "method")
            case (2, 0): timeoutMs = UInt32(truncatingIfNeeded: try reader.varint())
            case (3, 2):
                guard metadata.count < maxMetadataEntries else {
                    throw RPCError(.invalidArgument, "more than \(maxMetadataEntries) metadata entries")
                }
                var entry = ProtoReader(try reader.bytes())
                var key = ""
                var value = ""
                while let (f, w) = try entry.tag() {
                    switch (f, w) {
                    case (1, 2): key = try ProtoReader.string(try entry.bytes(), "metadata key")
                    case (2, 2): value = try ProtoReader.string(try entry.bytes(), "metadata value")
                    default: try entry.skip(w)
                    }
                }
                guard !metadata.contains(where: { $0.key == key }) else {
                    throw RPCError(.invalidArgument, "metadata '\(key.prefix(64))' is sent more than once")
                }
                metadata.append((key, value))
            default: try reader.skip(wire)
            }
        }
    }
}

/// Reads protobuf wire format from a byte array, bounds-checked: every malformed input is an
/// INVALID_ARGUMENT error, never a trap.
struct ProtoReader {
    private let input: [UInt8]
    private var index = 0

    init(_ bytes: [UInt8]) { input = bytes }

    static func malformed() -> RPCError { RPCError(.invalidArgument, "malformed RequestHeaders") }

    /// The next field number and wire type, or nil at the end.
    mutating func tag() throws -> (UInt64, UInt64)? {
        guard index < input.count else { return nil }
        let t = try varint()
        guard t >> 3 != 0 else { throw Self.malformed() }
        return (t >> 3, t & 7)
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard index < input.count, shift < 64 else { throw Self.malformed() }
            let b = input[index]
            index += 1
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func bytes() throws -> [UInt8] {
        let n = try varint()
        guard n <= UInt64(input.count - index) else { throw Self.malformed() }
        let end = index + Int(n)
        defer { index = end }
        return Array(input[index..<end])
    }

    mutating func skip(_ wire: UInt64) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: try advance(8)
        case 2: _ = try bytes()
        case 5: try advance(4)
        default: throw Self.malformed()
        }
    }

    private mutating func advance(_ n: Int) throws {
        guard input.count - index >= n else { throw Self.malformed() }
        index += n
    }

    /// UTF-8 without NUL.
    static func string(_ b: [UInt8], _ what: String) throws -> String {
        guard !b.contains(0) else { throw RPCError(.invalidArgument, "\(what) contains NUL") }
        guard let s = String(validating: b, as: UTF8.self) else { throw RPCError(.invalidArgument, "\(what) is not UTF-8") }
        return s
    }
}
