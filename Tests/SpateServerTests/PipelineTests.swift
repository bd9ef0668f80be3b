import Logging
import NIOCore
import NIOEmbedded
import SpateServer
import SpateWire
import Testing

/// Answers every call at once (never used by these tests' calls: the embedded loop runs no tasks).
struct NoCalls: CallHandler {
    func handle(method: Method, request: [UInt8], emit: @escaping @Sendable ([UInt8]) -> Void) async throws {}
}

/// A socket whose peer never reads: writes never complete (until the channel closes).
final class Stuck: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    private var held: [EventLoopPromise<Void>] = []
    /// Bytes the server tried to write.
    var bytes = 0

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        bytes += unwrapOutboundIn(data).readableBytes
        if let promise { held.append(promise) }
    }

    func flush(context: ChannelHandlerContext) {}

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        held.forEach { $0.fail(ChannelError.ioOnClosedChannel) }
        held.removeAll()
        context.close(mode: mode, promise: promise)
    }
}

/// A server connection on an EmbeddedChannel: bytes in, bytes out, time advanced by hand.
final class Peer {
    let channel = EmbeddedChannel()
    let loop: EmbeddedEventLoop
    let slots = ConnectionSlots(maxConnections: 10, maxUnauthenticated: 2)

    init(_ limits: ServerLimits = T.limits, stuck: Bool = false) throws {
        loop = channel.embeddedEventLoop
        #expect(slots.acquire() == nil)
        if stuck { try channel.pipeline.syncOperations.addHandler(Stuck(), position: .first) }
        try ConnectionHandler.addHandlers(
            to: channel.pipeline.syncOperations, limits: limits, handler: NoCalls(), slots: slots, logger: Logger(label: "test"))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    func send(_ bytes: [UInt8]) throws {
        try channel.writeInbound(ByteBuffer(bytes: bytes))
    }

    /// Every byte the server wrote so far.
    func received() throws -> [UInt8] {
        var out: [UInt8] = []
        while let b = try channel.readOutbound(as: ByteBuffer.self) { out += b.readableBytesView }
        return out
    }

    /// The frames the server wrote (after its preface, when `preface`).
    func frames(preface: Bool = false) throws -> [Frame] {
        var bytes = try received()
        if preface {
            #expect(Array(bytes.prefix(8)) == FrameCodec.preface)
            bytes.removeFirst(min(8, bytes.count))
        }
        var buffer = ByteBuffer(bytes: bytes)
        var frames: [Frame] = []
        while let f = try FrameCodec.decode(&buffer, maxFrameSize: 64 << 20) { frames.append(f) }
        return frames
    }

    var isOpen: Bool { channel.isActive }
}

@Suite("Server pipeline (EmbeddedChannel)")
struct PipelineTests {
    @Test("preface, then a call without a token: the bytes on the wire are the preface and STATUS UNAUTHENTICATED")
    func unauthenticated() throws {
        let p = try Peer()
        try p.send(FrameCodec.preface + FrameCodec.encode(T.headers(1, token: nil)))
        let frames = try p.frames(preface: true)
        #expect(frames.count == 1)
        #expect(frames.first.map { try? WireMessages.decodeStatus($0.payload) }??.code == .unauthenticated)
        #expect(p.isOpen)
    }

    @Test("a 4 MiB HEADERS announced before authentication: GOAWAY RESOURCE_EXHAUSTED and closed, the body never awaited")
    func bigHeaderBeforeAuth() throws {
        let p = try Peer()
        try? p.send(FrameCodec.preface + [1, 1, 0, 0, 0, 0, 0, 1, 0x00, 0x3f, 0xff, 0xff] + Array(repeating: 0, count: 1000))
        let frames = try p.frames(preface: true)
        #expect(frames.map(\.type) == [.goAway])
        #expect(frames.first.map { try? WireMessages.decodeGoAway($0.payload).error.code } == .resourceExhausted)
        #expect(!p.isOpen)
        #expect(p.slots.current.total == 0)
    }

    @Test("without a token, a connection closed before its preface frees its unauthenticated slot (it leaked, and a node refused everyone after 128 port probes)")
    func closedBeforePrefaceWithoutToken() throws {
        var open = T.limits
        open.token = nil
        for _ in 0..<3 {
            let p = try Peer(open)
            #expect(p.slots.current.unauthenticated == 1)
            _ = try? p.channel.close().wait()
            #expect(p.slots.current.total == 0 && p.slots.current.unauthenticated == 0)
        }
    }

    @Test("a silent connection is closed at the handshake timeout and frees its slot")
    func silent() throws {
        let p = try Peer()
        #expect(p.slots.current.unauthenticated == 1)
        p.loop.advanceTime(by: .seconds(9))
        #expect(p.isOpen)
        p.loop.advanceTime(by: .seconds(2))
        #expect(!p.isOpen)
        #expect(try p.received().isEmpty)
        #expect(p.slots.current.total == 0 && p.slots.current.unauthenticated == 0)
    }

    @Test("three wrong tokens: GOAWAY UNAUTHENTICATED and closed")
    func wrongTokens() throws {
        let p = try Peer()
        try? p.send(FrameCodec.preface + [1, 3, 5].flatMap { FrameCodec.encode(T.headers($0, token: "nope")) })
        let frames = try p.frames(preface: true)
        #expect(frames.map(\.type) == [.status, .status, .goAway])
        #expect(!p.isOpen)
    }

    @Test("a PING flood ends with GOAWAY too_many_pings and a close")
    func pingFlood() throws {
        let p = try Peer()
        try? p.send(FrameCodec.preface + (0..<10_000).flatMap { _ in FrameCodec.encode(T.ping()) })
        let frames = try p.frames(preface: true)
        #expect(frames.map(\.type) == [.ping, .ping, .ping, .goAway])
        #expect(frames.last.map { try? WireMessages.decodeGoAway($0.payload).error.message } == "too_many_pings")
        #expect(!p.isOpen)
    }

    @Test("a GOAWAY the peer does not read still closes the connection after goaway_timeout")
    func goAwayUnread() throws {
        let p = try Peer(stuck: true)
        try p.send(FrameCodec.preface)
        p.channel.pipeline.fireUserInboundEventTriggered(ConnectionHandler.ShutdownEvent())
        #expect(p.isOpen, "the GOAWAY is not written yet")
        p.loop.advanceTime(by: .milliseconds(1100))
        #expect(!p.isOpen)
    }

    @Test("PING-only connections are idle: GOAWAY UNAVAILABLE after the idle timeout")
    func idle() throws {
        var limits = ServerLimits.defaults
        limits.idleTimeout = .seconds(5)
        let p = try Peer(limits)
        try p.send(FrameCodec.preface)
        for _ in 0..<4 {
            p.loop.advanceTime(by: .seconds(2))
            if p.isOpen { try p.send(FrameCodec.encode(T.ping())) }
        }
        p.loop.advanceTime(by: .seconds(4))
        let frames = try p.frames(preface: true)
        #expect(frames.last?.type == .goAway)
        #expect(frames.last.map { try? WireMessages.decodeGoAway($0.payload).error.code } == .unavailable)
        #expect(!p.isOpen)
    }

    @Test("not the protocol: closed without a word")
    func notSpate() throws {
        let p = try Peer()
        try? p.send(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        #expect(try p.received().isEmpty)
        #expect(!p.isOpen)
    }

    @Test("a connection over a cap gets the preface and GOAWAY RESOURCE_EXHAUSTED once active, then is closed")
    func refused() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(RefusingHandler(RPCError(.resourceExhausted, "full"), timeout: .seconds(1)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var bytes: [UInt8] = []
        while let b = try channel.readOutbound(as: ByteBuffer.self) { bytes += b.readableBytesView }
        #expect(Array(bytes.prefix(8)) == FrameCodec.preface)
        var rest = ByteBuffer(bytes: bytes.dropFirst(8))
        let frame = try #require(try FrameCodec.decode(&rest))
        #expect((try? WireMessages.decodeGoAway(frame.payload))?.error == RPCError(.resourceExhausted, "full"))
        #expect(!channel.isActive)
    }

    @Test("connection slots: the unauthenticated cap refuses, authentication frees the unauthenticated slot")
    func slots() {
        let s = ConnectionSlots(maxConnections: 3, maxUnauthenticated: 2)
        #expect(s.acquire() == nil)
        #expect(s.acquire() == nil)
        #expect(s.acquire()?.code == .resourceExhausted)
        s.authenticated()
        #expect(s.acquire() == nil)
        #expect(s.acquire()?.message.contains("3 connections") == true)
        s.release(authenticated: true)
        s.release(authenticated: false)
        #expect(s.current.total == 1 && s.current.unauthenticated == 1)
    }
}
