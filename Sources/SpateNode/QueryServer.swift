import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SpateWire
import Synchronization

/// The query listener as a Service: binds (loopback by default), optionally TLS, limits the
/// number of connections, and on shutdown sends GOAWAY to every connection.
final class QueryServer: Service, Sendable {
    private let configuration: QueryConfiguration
    private let handler: any CallHandler
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let connections = Atomic<Int>(0)
    /// Open client connections.
    var connectionCount: Int { connections.load(ordering: .relaxed) }
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let bound = Mutex<(any Channel)?>(nil)
    private let ready = Mutex<[CheckedContinuation<SocketAddress, any Error>]>([])
    private let sslContext: NIOSSLContext?

    init(configuration: QueryConfiguration, handler: any CallHandler, logger: Logger) throws {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        if let cert = configuration.tlsCertificateFile, let key = configuration.tlsKeyFile {
            do {
                let tls = TLSConfiguration.makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                sslContext = try NIOSSLContext(configuration: tls)
            } catch {
                throw ConfigurationError("query.tls_cert_file", "cannot load the TLS certificate or key: \(error)")
            }
        } else {
            sslContext = nil
        }
    }

    /// The address actually bound (port 0 resolves here), once listening.
    func localAddress() async throws -> SocketAddress {
        if let a = bound.withLock({ $0?.localAddress }) { return a }
        return try await withCheckedThrowingContinuation { c in ready.withLock { $0.append(c) } }
    }

    func run() async throws {
        let limits = ServerLimits(
            maxFrameSize: configuration.maxFrameSize, maxStreams: configuration.maxStreamsPerConnection,
            maxDeadline: configuration.maxDeadline, token: configuration.token)
        let idle = configuration.idleTimeout
        let maxConnections = configuration.maxConnections
        let idleTimeout = TimeAmount.nanoseconds(Int64(idle.components.seconds) * 1_000_000_000 + Int64(idle.components.attoseconds / 1_000_000_000))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                let count = connections.add(1, ordering: .relaxed).newValue
                let id = ObjectIdentifier(channel)
                channels.withLock { $0[id] = channel }
                channel.closeFuture.whenComplete { [self] _ in
                    connections.subtract(1, ordering: .relaxed)
                    channels.withLock { $0[id] = nil }
                }
                if count > maxConnections {
                    QueryConnectionHandler.reject(channel, RPCError(.resourceExhausted, "the server has \(maxConnections) connections already"), withPreface: true)
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
                return channel.eventLoop.makeCompletedFuture {
                    if let ssl = sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: ssl))
                    }
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: idleTimeout))
                    try channel.pipeline.syncOperations.addHandler(QueryConnectionHandler(handler: handler, limits: limits, logger: logger))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        } catch {
            let e = ConfigurationError("query.listen", "cannot listen on \(configuration.listen): \(error)")
            ready.withLock { waiting in
                waiting.forEach { $0.resume(throwing: e) }
                waiting.removeAll()
            }
            throw e
        }
        bound.withLock { $0 = channel }
        let address = channel.localAddress!
        ready.withLock { waiting in
            waiting.forEach { $0.resume(returning: address) }
            waiting.removeAll()
        }
        logger.info("query listener on \(address)\(sslContext == nil ? "" : " (TLS)")\(configuration.token == nil ? "" : ", token required")")
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: { [self] in
            for c in channels.withLock({ Array($0.values) }) {
                QueryConnectionHandler.reject(c, RPCError(.unavailable, "the node is shutting down"), withPreface: false)
            }
            channel.close(promise: nil)
        }
        try? await group.shutdownGracefully()
    }
}
