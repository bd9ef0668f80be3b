import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The Prometheus endpoint: `GET /metrics` answers the text exposition format (version 0.0.4),
/// `GET /healthz` answers `ok`; anything else 404 (405 for other methods). Plain HTTP/1.1 on
/// `metrics.listen` (loopback unless configured otherwise).
final class MetricsServer: Service, Sendable {
    private let listen: String
    private let metrics: NodeMetrics
    private let logger: Logger
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let bound = Mutex<(any Channel)?>(nil)

    init(listen: String, metrics: NodeMetrics, logger: Logger) {
        self.listen = listen
        self.metrics = metrics
        self.logger = logger
    }

    func run() async throws {
        let (host, port) = try ConfigValue.listenAddress(listen, key: "metrics.listen")
        let metrics = self.metrics
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(MetricsHTTPHandler(metrics: metrics))
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

private final class MetricsHTTPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: NodeMetrics
    init(metrics: NodeMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
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
