public import NIOCore
public import SpateWire

/// What the server's decoder produces from a connection's bytes.
public enum ServerInbound: Sendable, Hashable {
    /// The client's 8-byte preface ("SPATE/1\n") arrived.
    case preface
    /// One whole frame.
    case frame(Frame)
}

/// What the server writes: its preface, or a frame.
public enum ServerOutbound: Sendable, Hashable {
    /// The server's 8-byte preface.
    case preface
    /// One frame.
    case frame(Frame)
}

/// The current inbound frame limit of one connection, shared by its decoder and its handler:
/// small until the peer authenticates, then the configured maximum. Lives on the connection's
/// event loop only.
public final class FrameLimit {
    /// Largest payload the decoder accepts now.
    public var value: Int
    /// A limit starting at `value`.
    public init(_ value: Int) { self.value = value }
}

/// The connection preface is not "SPATE/1\n": the peer does not speak this protocol.
public struct NotSpateProtocolError: Error, Hashable {}

/// Splits a connection's bytes into the preface and frames (docs/PROTOCOL.md). A frame's
/// length is checked against the connection's current `FrameLimit` as soon as its 12-byte
/// header is in, before its payload is buffered; a partial frame consumes nothing. After a
/// large frame the decoder copies the few bytes left into a small buffer, so a connection
/// does not keep a large buffer's capacity (SwiftNIO keeps a buffer with unread bytes).
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ServerInbound

    private var awaitingPreface = true
    private let limit: FrameLimit
    /// Buffers with more capacity than this are replaced after a frame.
    private let shrinkAbove: Int

    /// A decoder reading the preface first, then frames up to `limit`.
    public init(limit: FrameLimit, shrinkAbove: Int = 64 << 10) {
        self.limit = limit
        self.shrinkAbove = shrinkAbove
    }

    /// Decodes one item, or asks for more bytes.
    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let item = try next(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(item))
        return .continue
    }

    /// Nothing more comes after EOF; a partial frame is dropped.
    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        .needMoreData
    }

    /// The I/O-free core of `decode`: the next item from `buffer`, or nil (consuming nothing)
    /// when more bytes are needed.
    /// - Throws: `NotSpateProtocolError` for a wrong preface, `RPCError` for a frame that
    ///   breaks the protocol (its code is the GOAWAY's).
    public mutating func next(_ buffer: inout ByteBuffer) throws -> ServerInbound? {
        if awaitingPreface {
            let n = min(buffer.readableBytes, FrameCodec.preface.count)
            guard let got = buffer.getBytes(at: buffer.readerIndex, length: n), FrameCodec.preface.starts(with: got) else {
                throw NotSpateProtocolError()
            }
            guard n == FrameCodec.preface.count else { return nil }
            buffer.moveReaderIndex(forwardBy: n)
            awaitingPreface = false
            return .preface
        }
        guard let frame = try FrameCodec.decode(&buffer, maxFrameSize: limit.value) else { return nil }
        if buffer.capacity > shrinkAbove && buffer.readableBytes < shrinkAbove / 2 {
            var small = ByteBufferAllocator().buffer(capacity: max(buffer.readableBytes, 1024))
            small.writeImmutableBuffer(buffer)
            buffer = small
        }
        return .frame(frame)
    }
}

/// Encodes the server's preface and frames.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = ServerOutbound

    /// An encoder.
    public init() {}

    /// Appends `data`'s bytes to `out`.
    public func encode(data: ServerOutbound, out: inout ByteBuffer) throws {
        switch data {
        case .preface: out.writeBytes(FrameCodec.preface)
        case .frame(let frame): FrameCodec.encode(frame, into: &out)
        }
    }
}

/// Writes `ServerOutbound` values with `FrameEncoder`, each into a buffer of its exact size.
/// (NIO's `MessageToByteHandler` reuses one buffer, which would keep the capacity of the
/// largest answer ever sent for the life of the connection.)
public final class FrameWriter: ChannelOutboundHandler, RemovableChannelHandler {
    public typealias OutboundIn = ServerOutbound
    public typealias OutboundOut = ByteBuffer

    private let encoder = FrameEncoder()

    /// A writer.
    public init() {}

    /// Encodes and passes on one value.
    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let item = unwrapOutboundIn(data)
        let size: Int
        switch item {
        case .preface: size = FrameCodec.preface.count
        case .frame(let f): size = FrameCodec.headerSize + f.payload.count
        }
        var out = context.channel.allocator.buffer(capacity: size)
        do {
            try encoder.encode(data: item, out: &out)
        } catch {
            promise?.fail(error)
            return
        }
        context.write(wrapOutboundOut(out), promise: promise)
    }
}
