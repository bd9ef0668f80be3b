import Logging
import NIOCore
import NIOEmbedded
import SpateServer
import SpateWire
import Synchronization
import Testing

/// Answers every call with one message echoing its method, or never (Watch).
struct Echo: CallHandler {
    func handle(method: Method, request: [UInt8], emit: @escaping @Sendable ([UInt8]) -> Void) async throws {
        if method == .watch {
            try await Task.sleep(for: .seconds(3600))
        }
        emit(Array(method.rawValue.utf8))
    }
}

/// A Watch whose answers the test pushes; `emitted` counts them.
final class Feed: CallHandler {
    let stream: AsyncStream<[UInt8]>
    let continuation: AsyncStream<[UInt8]>.Continuation
    private let count = Mutex(0)
    var emitted: Int { count.withLock { $0 } }

    init() { (stream, continuation) = AsyncStream<[UInt8]>.makeStream() }

    func handle(method: Method, request: [UInt8], emit: @escaping @Sendable ([UInt8]) -> Void) async throws {
        for await m in stream {
            emit(m)
            count.withLock { $0 += 1 }
        }
    }
}

@Suite("Server calls on a thread-safe test channel")
struct CallLifecycleTests {
    /// A connected channel with the server pipeline, and its ConnectionHandler.
    static func connect(_ limits: ServerLimits = T.limits, calls: any CallHandler = Echo()) async throws -> (NIOAsyncTestingChannel, ConnectionHandler) {
        let channel = NIOAsyncTestingChannel()
        let handler = try await channel.eventLoop.submit {
            try ConnectionHandler.addHandlers(
                to: channel.pipeline.syncOperations, limits: limits, handler: calls, slots: nil, logger: Logger(label: "test"))
        }.get()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
        return (channel, handler)
    }

    /// Sends the preface and reads the server's.
    static func open(_ channel: NIOAsyncTestingChannel) async throws {
        try await channel.writeInbound(ByteBuffer(bytes: FrameCodec.preface))
        let preface = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
        #expect(Array(preface.readableBytesView) == FrameCodec.preface)
    }

    /// Reads frames the server writes until `count` STATUS frames arrived.
    static func statuses(_ channel: NIOAsyncTestingChannel, count: Int) async throws -> [Frame] {
        var bytes = ByteBuffer()
        var frames: [Frame] = []
        while frames.filter({ $0.type == .status }).count < count {
            var b = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
            bytes.writeBuffer(&b)
            while let f = try FrameCodec.decode(&bytes) { frames.append(f) }
        }
        return frames
    }

    @Test("1000 finished calls leave no timer and no task behind")
    func finishedCallsRetainNothing() async throws {
        let (channel, handler) = try await Self.connect()
        try await Self.open(channel)
        var frames: [Frame] = []
        for batch in 0..<20 {  // 50 at a time: under the 100-stream limit
            let input = (0..<50).flatMap { FrameCodec.encode(T.headers(UInt32(1 + 2 * (batch * 50 + $0)))) }
            try await channel.writeInbound(ByteBuffer(bytes: input))
            frames += try await Self.statuses(channel, count: 50)
        }
        #expect(frames.filter { $0.type == .data }.count == 1000)
        #expect(frames.filter { $0.type == .status }.allSatisfy { (try? WireMessages.decodeStatus($0.payload))?.code == .ok })
        // Only the idle timer is left.
        let retained = try await channel.eventLoop.submit { handler.retained }.get()
        #expect(retained.timers == 1 && retained.tasks == 0, "\(retained)")
        _ = try await channel.finish(acceptAlreadyClosed: true)
    }

    @Test("a Watch with a deadline ends at it with DEADLINE_EXCEEDED, and its task is cancelled")
    func watchDeadline() async throws {
        let (channel, handler) = try await Self.connect()
        try await Self.open(channel)
        try await channel.writeInbound(ByteBuffer(bytes: FrameCodec.encode(T.headers(1, method: "Watch", timeoutMs: 500))))
        while try await channel.eventLoop.submit({ handler.retained.tasks }).get() == 0 { await Task.yield() }
        await channel.testingEventLoop.advanceTime(by: .milliseconds(600))
        let frames = try await Self.statuses(channel, count: 1)
        #expect(frames.compactMap { try? WireMessages.decodeStatus($0.payload) }.map(\.code) == [.deadlineExceeded])
        let retained = try await channel.eventLoop.submit { handler.retained }.get()
        #expect(retained.tasks == 0 && retained.timers == 1, "\(retained)")
        _ = try await channel.finish(acceptAlreadyClosed: true)
    }

    /// Sets the channel's writability as a socket would and tells the pipeline.
    static func writable(_ channel: NIOAsyncTestingChannel, _ value: Bool) async throws {
        channel.isWritable = value
        try await channel.eventLoop.submit { channel.pipeline.fireChannelWritabilityChanged() }.get()
    }

    /// Waits until `feed` emitted `n` answers and the event loop handled them.
    static func settle(_ channel: NIOAsyncTestingChannel, _ feed: Feed, _ n: Int) async throws {
        while feed.emitted < n { await Task.yield() }
        try await channel.eventLoop.submit {}.get()
    }

    @Test("a Watch whose peer does not read keeps only its newest answer and sends it when the peer drains")
    func newestOnlyOnTheWire() async throws {
        let feed = Feed()
        let (channel, _) = try await Self.connect(calls: feed)
        try await Self.open(channel)
        try await channel.writeInbound(ByteBuffer(bytes: FrameCodec.encode(T.headers(1, method: "Watch"))))
        feed.continuation.yield([0])
        try await Self.settle(channel, feed, 1)
        #expect(try await channel.readOutbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == FrameCodec.encode(Frame(type: .data, streamID: 1, payload: [0])))
        try await Self.writable(channel, false)
        for i in 1...50 { feed.continuation.yield([UInt8(i)]) }
        try await Self.settle(channel, feed, 51)
        #expect(try await channel.readOutbound(as: ByteBuffer.self) == nil, "nothing is written while the peer does not read")
        try await Self.writable(channel, true)
        var bytes: [UInt8] = []
        while let b = try await channel.readOutbound(as: ByteBuffer.self) { bytes += b.readableBytesView }
        #expect(bytes == FrameCodec.encode(Frame(type: .data, streamID: 1, payload: [50])), "only the newest answer")
        feed.continuation.finish()
        _ = try await channel.finish(acceptAlreadyClosed: true)
    }

    @Test("a peer that stops reading for write_stall_timeout gets GOAWAY RESOURCE_EXHAUSTED and is closed")
    func stallOnTheWire() async throws {
        let feed = Feed()
        let (channel, _) = try await Self.connect(calls: feed)
        try await Self.open(channel)
        try await channel.writeInbound(ByteBuffer(bytes: FrameCodec.encode(T.headers(1, method: "Watch"))))
        try await Self.writable(channel, false)
        feed.continuation.yield([1])
        try await Self.settle(channel, feed, 1)
        await channel.testingEventLoop.advanceTime(by: .seconds(31))
        var bytes = ByteBuffer()
        while var b = try await channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&b) }
        let goAway = try #require(try FrameCodec.decode(&bytes))
        #expect(goAway.type == .goAway)
        #expect((try? WireMessages.decodeGoAway(goAway.payload))?.error.code == .resourceExhausted)
        await channel.testingEventLoop.advanceTime(by: .seconds(2))
        #expect(try await !channel.eventLoop.submit { channel.isActive }.get())
        feed.continuation.finish()
    }
}
