import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The Prometheus endpoint: `GET /metrics` answers the text exposition format (version 0.0.4),
/// `GET /healthz` answers `ok`; anything else 404 (405 for other methods). Plain HTTP/1.1 on
/// `metrics.listen` (loopback unless configured otherwise).
///
/// Bounded for a listener someone hostile can reach: at most `maxConnections` at once (more are
/// closed as they arrive), a connection idle for `idleTimeout` is closed, and so is one that
/// sends a request while more than `maxPendingBytes` of its earlier answers wait unsent (it
/// pipelines without reading: each scrape is tens of KB, and nothing else bounded them).
final class MetricsServer: Service, Sendable {
    /// Connections served at once.
    static let maxConnections = 64
    /// A connection with nothing received or sent for this long is closed.
    static let idleTimeout = TimeAmount.minutes(5)
    /// Unsent response bytes above which a connection's next request closes it.
    static let maxPendingBytes = 1 << 20

    private let listen: String
    private let metrics: NodeMetrics
    private let logger: Logger
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let bound = Mutex<(any Channel)?>(nil)
    /// Connections open now.
    private let open = ConnectionCount()

    init(listen: String, metrics: NodeMetrics, logger: Logger) {
        self.listen = listen
        self.metrics = metrics
        self.logger = logger
    }

    func run() async throws {
        let (host, port) = try ConfigValue.listenAddress(listen, key: "metrics.listen")
        let metrics = self.metrics
        let open = self.open
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(
                ChannelOptions.writeBufferWaterMark, value: .init(low: Self.maxPendingBytes / 2, high: Self.maxPendingBytes))
            .childChannelInitializer { channel in
                guard open.value.add(1, ordering: .relaxed).newValue <= Self.maxConnections else {
                    open.value.subtract(1, ordering: .relaxed)
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.value.subtract(1, ordering: .relaxed) }
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(allTimeout: Self.idleTimeout))
                    try pipeline.configureHTTPServerPipeline()
                    try pipeline.addHandler(MetricsHTTPHandler(metrics: metrics))
                }
            }
        let channel: any Channel
        do { channel = try await bootstrap.bind(host: host, port: port).get() } catch {
            try? await group.shutdownGracefully()
            throw ConfigurationError("metrics.listen", "cannot listen on \(listen): \(error)")
        }
        bound.withLock { $0 = channel }
        logger.info("metrics listener on \(channel.localAddress.map { "\($0)" } ?? listen) (GET /metrics)")
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        try? await group.shutdownGracefully()
    }
}

/// A count shared by the listener's connections.
private final class ConnectionCount: Sendable {
    let value = Atomic<Int>(0)
}

private final class MetricsHTTPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: NodeMetrics
    init(metrics: NodeMetrics) { self.metrics = metrics }

    /// Idle for `MetricsServer.idleTimeout`: closed.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        // A request while more than `maxPendingBytes` of earlier answers wait unsent: the client
        // pipelines without reading. One answer of any size is still sent whole.
        guard context.channel.isWritable else {
            context.close(promise: nil)
            return
        }
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let (status, type, body): (HTTPResponseStatus, String, [UInt8])
        switch (request.method, path) {
        case (.GET, "/metrics"): (status, type, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", metrics.scrape())
        case (.GET, "/healthz"): (status, type, body) = (.ok, "text/plain; charset=utf-8", Array("ok\n".utf8))
        case (.GET, _), (.HEAD, _): (status, type, body) = (.notFound, "text/plain; charset=utf-8", Array("not found: try /metrics\n".utf8))
        default: (status, type, body) = (.methodNotAllowed, "text/plain; charset=utf-8", Array("method not allowed\n".utf8))
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: "\(body.count)")
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) } }
    }
}
