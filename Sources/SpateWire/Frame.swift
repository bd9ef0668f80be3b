public import NIOCore

/// A call's terminal status code — gRPC's numbering, so the meanings are familiar.
public struct StatusCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let ok = StatusCode(rawValue: 0)
    public static let cancelled = StatusCode(rawValue: 1)
    public static let unknown = StatusCode(rawValue: 2)
    public static let invalidArgument = StatusCode(rawValue: 3)
    public static let deadlineExceeded = StatusCode(rawValue: 4)
    public static let notFound = StatusCode(rawValue: 5)
    public static let resourceExhausted = StatusCode(rawValue: 8)
    public static let failedPrecondition = StatusCode(rawValue: 9)
    public static let unimplemented = StatusCode(rawValue: 12)
    public static let `internal` = StatusCode(rawValue: 13)
    public static let unavailable = StatusCode(rawValue: 14)
    public static let unauthenticated = StatusCode(rawValue: 16)

    public var description: String {
        switch rawValue {
        case 0: "OK"
        case 1: "CANCELLED"
        case 2: "UNKNOWN"
        case 3: "INVALID_ARGUMENT"
        case 4: "DEADLINE_EXCEEDED"
        case 5: "NOT_FOUND"
        case 8: "RESOURCE_EXHAUSTED"
        case 9: "FAILED_PRECONDITION"
        case 12: "UNIMPLEMENTED"
        case 13: "INTERNAL"
        case 14: "UNAVAILABLE"
        case 16: "UNAUTHENTICATED"
        default: "CODE_\(rawValue)"
        }
    }
}

/// A failure carried by a STATUS or GOAWAY frame (or raised locally with the same meaning).
public struct RPCError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String
    public init(_ code: StatusCode, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code): \(message)" }
}

/// The frame types of docs/PROTOCOL.md.
public enum FrameType: UInt8, Sendable, Hashable {
    case headers = 1
    case data = 2
    case status = 3
    case cancel = 4
    case ping = 5
    case goAway = 6
}

/// Frame flags.
public struct FrameFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// On HEADERS or DATA from the client: the request is complete.
    public static let endStream = FrameFlags(rawValue: 0x01)
    /// On PING: this is the answer.
    public static let ack = FrameFlags(rawValue: 0x02)
}

/// One protocol frame: a 12-byte header (version, type, flags, reserved, stream id, length,
/// big-endian) and its payload.
public struct Frame: Sendable, Hashable {
    public var type: FrameType
    public var flags: FrameFlags
    public var streamID: UInt32
    public var payload: [UInt8]

    public init(type: FrameType, flags: FrameFlags = [], streamID: UInt32, payload: [UInt8] = []) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.payload = payload
    }
}

/// Encodes and decodes frames. Pure functions over `ByteBuffer`, shared by the server, the
/// client, the tests and the fuzz targets.
public enum FrameCodec {
    /// The only frame version.
    public static let version: UInt8 = 1
    public static let headerSize = 12
    /// What a client sends first, and the server answers: "SPATE/1\n".
    public static let preface: [UInt8] = Array("SPATE/1\n".utf8)
    /// Default largest payload accepted.
    public static let defaultMaxFrameSize = 4 << 20

    public static func encode(_ frame: Frame, into buffer: inout ByteBuffer) {
        buffer.writeInteger(version)
        buffer.writeInteger(frame.type.rawValue)
        buffer.writeInteger(frame.flags.rawValue)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(frame.streamID)
        buffer.writeInteger(UInt32(frame.payload.count))
        buffer.writeBytes(frame.payload)
    }

    public static func encode(_ frame: Frame) -> [UInt8] {
        var b = ByteBufferAllocator().buffer(capacity: headerSize + frame.payload.count)
        encode(frame, into: &b)
        return Array(b.readableBytesView)
    }

    /// Reads one whole frame from `buffer` and consumes it; returns nil (consuming nothing)
    /// when more bytes are needed. Frames of unknown type are skipped.
    /// - Throws: `RPCError` for a frame that breaks the protocol. The payload length is
    ///   checked against `maxFrameSize` as soon as the header is complete, before any of the
    ///   payload is buffered or allocated.
    public static func decode(_ buffer: inout ByteBuffer, maxFrameSize: Int = defaultMaxFrameSize) throws -> Frame? {
        while true {
            guard buffer.readableBytes >= headerSize else { return nil }
            let start = buffer.readerIndex
            let version = buffer.getInteger(at: start, as: UInt8.self)!
            let rawType = buffer.getInteger(at: start + 1, as: UInt8.self)!
            let flags = FrameFlags(rawValue: buffer.getInteger(at: start + 2, as: UInt8.self)!)
            let streamID = buffer.getInteger(at: start + 4, as: UInt32.self)!
            let length = Int(buffer.getInteger(at: start + 8, as: UInt32.self)!)
            guard version == Self.version else {
                throw RPCError(.unimplemented, "frame version \(version) is not supported (this side speaks \(Self.version))")
            }
            guard length <= maxFrameSize else {
                throw RPCError(.resourceExhausted, "frame of \(length) bytes exceeds the limit of \(maxFrameSize)")
            }
            guard buffer.readableBytes >= headerSize + length else { return nil }
            guard let type = FrameType(rawValue: rawType) else {
                buffer.moveReaderIndex(forwardBy: headerSize + length)
                continue
            }
            switch type {
            case .ping, .goAway:
                guard streamID == 0 else { throw RPCError(.invalidArgument, "\(type) frame on stream \(streamID) (must be 0)") }
            case .headers, .data, .status, .cancel:
                guard streamID != 0 else { throw RPCError(.invalidArgument, "\(type) frame on stream 0") }
            }
            if type == .ping && length != 8 { throw RPCError(.invalidArgument, "PING payload must be 8 bytes, got \(length)") }
            buffer.moveReaderIndex(forwardBy: headerSize)
            let payload = buffer.readBytes(length: length)!
            return Frame(type: type, flags: flags, streamID: streamID, payload: payload)
        }
    }
}
