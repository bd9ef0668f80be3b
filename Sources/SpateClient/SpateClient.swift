import Foundation
import NIOCore
import NIOPosix
import NIOSSL
public import SpateModel
public import SpateWire
import Synchronization

/// How to reach a node's query port.
public struct ClientConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Shared secret for `authorization: Bearer …`.
    public var token: String?
    /// Use TLS; verify the server against this CA bundle (nil: the system's roots).
    public var tls: Bool
    public var caFile: String?
    public var connectTimeout: Duration

    public init(host: String, port: Int, token: String? = nil, tls: Bool = false, caFile: String? = nil, connectTimeout: Duration = .seconds(5)) {
        self.host = host
        self.port = port
        self.token = token
        self.tls = tls
        self.caFile = caFile
        self.connectTimeout = connectTimeout
    }

    /// Parses "host:port".
    public init(address: String, token: String? = nil, tls: Bool = false, caFile: String? = nil, connectTimeout: Duration = .seconds(5)) throws {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port) else {
            throw RPCError(.invalidArgument, "server address '\(address)' must be host:port")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(host: host, port: port, token: token, tls: tls, caFile: caFile, connectTimeout: connectTimeout)
    }
}

/// Runs `body`; when it has not finished by `deadline`, cancels it and throws `error`.
/// `body` must end soon after cancellation (the client's calls and connection set-up do).
public func withDeadline<T: Sendable>(
    _ deadline: ContinuousClock.Instant, error: RPCError, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(until: deadline, clock: .continuous)
            throw error
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw error }
        return first
    }
}

/// A connection to a Spate node speaking the query protocol: many concurrent calls over one
/// TCP (or TLS) connection, each a stream ending in a STATUS frame.
public final class SpateClient: Sendable {
    private let channel: any Channel
    private let handler: ClientConnectionHandler
    private let group: MultiThreadedEventLoopGroup
    private let configuration: ClientConfiguration

    private init(channel: any Channel, handler: ClientConnectionHandler, group: MultiThreadedEventLoopGroup, configuration: ClientConfiguration) {
        self.channel = channel
        self.handler = handler
        self.group = group
        self.configuration = configuration
    }

    /// Connects, exchanges prefaces, and returns a ready client.
    /// - Throws: `RPCError(.unavailable)` when the node cannot be reached or the TLS handshake
    ///   fails (the message says why).
    public static func connect(_ configuration: ClientConfiguration) async throws -> SpateClient {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let sslContext: NIOSSLContext?
        if !configuration.tls {
            sslContext = nil
        } else {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let ca = configuration.caFile {
                do { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) } catch {
                    try? await group.shutdownGracefully()
                    throw RPCError(.invalidArgument, "cannot read the CA file \(ca): \(error)")
                }
            }
            sslContext = try NIOSSLContext(configuration: tls)
        }
        let handler = ClientConnectionHandler()
        let host = configuration.host
        let timeout = configuration.connectTimeout
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(timeout.wholeMilliseconds))
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        let isIP = host.contains(":") || host.split(separator: ".").allSatisfy { Int($0) != nil }
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: sslContext, serverHostname: isIP ? nil : host))
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        do {
            let channel = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
            try await handler.waitForPreface(timeout: timeout)
            return SpateClient(channel: channel, handler: handler, group: group, configuration: configuration)
        } catch let e as RPCError {
            try? await group.shutdownGracefully()
            throw e
        } catch {
            try? await group.shutdownGracefully()
            throw RPCError(.unavailable, "cannot connect to \(configuration.host):\(configuration.port): \(error)")
        }
    }

    /// Whether the connection is still open (false once the node closed it or `close()` ran).
    public var isConnected: Bool { channel.isActive }

    /// Closes the connection (calls in flight fail with CANCELLED).
    public func close() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    /// A raw call: the response messages, ending when the server's STATUS is OK; a non-OK
    /// status is thrown as `RPCError`.
    public func call(_ method: String, request: [UInt8], timeout: Duration? = nil, metadata: [String: String] = [:]) -> AsyncThrowingStream<[UInt8], any Error> {
        var md = metadata
        if let token = configuration.token { md["authorization"] = "Bearer \(token)" }
        let ms = timeout.map { UInt32(clamping: $0.wholeMilliseconds) } ?? 0
        return handler.startCall(CallHeaders(method: method, timeoutMs: ms, metadata: md), request: request, channel: channel)
    }

    /// A unary call's single answer. With a `timeout` the call is bounded on both sides: the
    /// server gets it as the call's deadline, and the client gives up with DEADLINE_EXCEEDED
    /// when no complete answer arrived in time (a stopped or unreachable node).
    public func unary(_ method: Method, request: [UInt8] = [], timeout: Duration? = .seconds(30)) async throws -> [UInt8] {
        let stream = call(method.rawValue, request: request, timeout: timeout)
        let name = method.rawValue
        let collect: @Sendable () async throws -> [UInt8] = {
            var answer: [UInt8]?
            for try await m in stream { answer = m }
            guard let answer else {
                try Task.checkCancellation()
                throw RPCError(.internal, "\(name) ended without an answer")
            }
            return answer
        }
        guard let timeout else { return try await collect() }
        return try await withDeadline(.now + timeout, error: RPCError(.deadlineExceeded, "\(name): no complete answer within \(timeout)"), collect)
    }

    public func status(timeout: Duration? = .seconds(30)) async throws -> ClusterStatus {
        try WireMessages.decodeClusterStatus(try await unary(.status, timeout: timeout))
    }

    public func views(timeout: Duration? = .seconds(30)) async throws -> [ViewSummary] {
        try WireMessages.decodeViews(try await unary(.listViews, timeout: timeout))
    }

    public func query(_ q: Query, timeout: Duration? = .seconds(30)) async throws -> QueryResult {
        let isDistinct = if case .distinctSubscribers = q.kind { true } else { false }
        return try WireMessages.decodeQueryResult(try await unary(.query, request: WireMessages.encode(q), timeout: timeout), distinctExpected: isDistinct)
    }

    public func storage(timeout: Duration? = .seconds(30)) async throws -> StorageReport {
        try WireMessages.decodeStorage(try await unary(.storage, timeout: timeout))
    }

    /// Answers at every refresh until the stream is no longer iterated (which cancels the call).
    public func watch(_ q: Query, refreshMs: UInt32) -> AsyncThrowingStream<QueryResult, any Error> {
        let raw = call(Method.watch.rawValue, request: WireMessages.encodeWatch(q, refreshMs: refreshMs))
        let isDistinct = if case .distinctSubscribers = q.kind { true } else { false }
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await m in raw { continuation.yield(try WireMessages.decodeQueryResult(m, distinctExpected: isDistinct)) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Sends a PING and waits for its answer.
    public func ping() async throws -> Duration {
        let start = ContinuousClock.now
        try await handler.ping(channel: channel)
        return ContinuousClock.now - start
    }
}

/// The client side of a connection: sends the preface, assigns odd increasing stream ids,
/// routes DATA/STATUS frames to their calls, fails every call on GOAWAY or close.
final class ClientConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct State {
        var prefaceReceived = false
        var prefaceWaiters: [CheckedContinuation<Void, any Error>] = []
        var streams: [UInt32: AsyncThrowingStream<[UInt8], any Error>.Continuation] = [:]
        var nextStreamID: UInt32 = 1
        var failure: RPCError?
        var pings: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextPing: UInt64 = 1
    }

    private let state = Mutex<State>(State())
    private var buffer: ByteBuffer?

    func channelActive(context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: 8)
        out.writeBytes(FrameCodec.preface)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(RPCError(.unavailable, "the connection was closed by the server"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let text = "\(error)"
        let message = text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate")
            ? "TLS: the server's certificate is not trusted (\(text)); check --ca-file"
            : text.contains("WRONG_VERSION_NUMBER") || text.contains("handshake")
                ? "TLS handshake failed (\(text)); is the server's port TLS-enabled?" : "connection error: \(text)"
        fail(RPCError(.unavailable, message))
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        if !state.withLock({ $0.prefaceReceived }) {
            guard buffer!.readableBytes >= FrameCodec.preface.count else { return }
            let got = buffer!.readBytes(length: FrameCodec.preface.count)!
            guard got == FrameCodec.preface else {
                fail(RPCError(.unavailable, "the server does not speak the Spate query protocol"))
                context.close(promise: nil)
                return
            }
            let waiters = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
                s.prefaceReceived = true
                defer { s.prefaceWaiters = [] }
                return s.prefaceWaiters
            }
            waiters.forEach { $0.resume() }
        }
        do {
            // A Spate node never sends a frame above 4 MiB (it refuses a larger answer with
            // RESOURCE_EXHAUSTED): a larger one is not buffered, whoever sends it.
            while let frame = try FrameCodec.decode(&buffer!, maxFrameSize: FrameCodec.defaultMaxFrameSize) { handle(context, frame) }
            buffer!.discardReadBytes()
        } catch let e as RPCError {
            fail(e)
            context.close(promise: nil)
        } catch {
            fail(RPCError(.internal, "\(error)"))
            context.close(promise: nil)
        }
    }

    private func handle(_ context: ChannelHandlerContext, _ frame: Frame) {
        switch frame.type {
        case .data:
            _ = state.withLock { $0.streams[frame.streamID] }?.yield(frame.payload)
        case .status:
            guard let c = state.withLock({ $0.streams.removeValue(forKey: frame.streamID) }) else { return }
            let status = (try? WireMessages.decodeStatus(frame.payload)) ?? RPCError(.internal, "malformed STATUS frame")
            if status.code == .ok { c.finish() } else { c.finish(throwing: status) }
        case .goAway:
            let reason = (try? WireMessages.decodeGoAway(frame.payload))?.error ?? RPCError(.unavailable, "the server went away")
            fail(RPCError(reason.code, "server: \(reason.message)"))
            context.close(promise: nil)
        case .ping:
            if frame.flags.contains(.ack) {
                let id = frame.payload.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                state.withLock { $0.pings.removeValue(forKey: id) }?.resume()
            } else {
                var out = context.channel.allocator.buffer(capacity: 20)
                FrameCodec.encode(Frame(type: .ping, flags: .ack, streamID: 0, payload: frame.payload), into: &out)
                context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            }
        case .headers, .cancel:
            break
        }
    }

    private func fail(_ error: RPCError) {
        let (streams, waiters, pings) = state.withLock { s in
            if s.failure == nil { s.failure = error }
            defer {
                s.streams = [:]
                s.prefaceWaiters = []
                s.pings = [:]
            }
            return (s.streams, s.prefaceWaiters, s.pings)
        }
        streams.values.forEach { $0.finish(throwing: error) }
        waiters.forEach { $0.resume(throwing: error) }
        pings.values.forEach { $0.resume(throwing: error) }
    }

    /// Waits for the server's preface, at most `timeout`; on timeout or cancellation every
    /// waiter is released (the connection is given up), so nothing is left hanging.
    func waitForPreface(timeout: Duration) async throws {
        let expired = RPCError(.unavailable, "no answer from the server within \(timeout) (is it a Spate node, and TLS on both sides or neither?)")
        try await withDeadline(.now + timeout, error: expired) {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                    let ready = self.state.withLock { s -> Result<Bool, RPCError> in
                        if let f = s.failure { return .failure(f) }
                        if s.prefaceReceived { return .success(true) }
                        s.prefaceWaiters.append(c)
                        return .success(false)
                    }
                    switch ready {
                    case .failure(let e): c.resume(throwing: e)
                    case .success(true): c.resume()
                    case .success(false): break
                    }
                }
            } onCancel: {
                self.fail(expired)
            }
        }
    }

    func startCall(_ headers: CallHeaders, request: [UInt8], channel: any Channel) -> AsyncThrowingStream<[UInt8], any Error> {
        let (stream, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        // Stream ids must reach the wire in increasing order: the id is taken and the frames
        // handed to the channel under one lock, so calls started concurrently cannot overtake
        // each other (the server ends the connection on a lower id).
        let id = state.withLock { s -> UInt32? in
            if s.failure != nil { return nil }
            let id = s.nextStreamID
            s.nextStreamID += 2
            s.streams[id] = continuation
            var out = channel.allocator.buffer(capacity: 64 + request.count)
            FrameCodec.encode(Frame(type: .headers, streamID: id, payload: WireMessages.encode(headers)), into: &out)
            FrameCodec.encode(Frame(type: .data, flags: .endStream, streamID: id, payload: request), into: &out)
            channel.writeAndFlush(out, promise: nil)
            return id
        }
        guard let id else {
            continuation.finish(throwing: state.withLock { $0.failure } ?? RPCError(.unavailable, "connection closed"))
            return stream
        }
        continuation.onTermination = { [weak self] reason in
            guard case .cancelled = reason, let self else { return }
            if self.state.withLock({ $0.streams.removeValue(forKey: id) }) != nil {
                var cancel = channel.allocator.buffer(capacity: 12)
                FrameCodec.encode(Frame(type: .cancel, streamID: id), into: &cancel)
                channel.writeAndFlush(cancel, promise: nil)
            }
        }
        return stream
    }

    func ping(channel: any Channel) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let id = state.withLock { s -> UInt64? in
                if s.failure != nil { return nil }
                let id = s.nextPing
                s.nextPing += 1
                s.pings[id] = c
                return id
            }
            guard let id else {
                c.resume(throwing: RPCError(.unavailable, "connection closed"))
                return
            }
            var out = channel.allocator.buffer(capacity: 20)
            FrameCodec.encode(Frame(type: .ping, streamID: 0, payload: (0..<8).map { UInt8(id >> (56 - 8 * UInt64($0)) & 0xff) }), into: &out)
            channel.writeAndFlush(out, promise: nil)
        }
    }
}
