import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SpateServer
import SpateWire
import Synchronization

/// The query listener as a Service: binds (loopback by default), optionally TLS, limits the
/// number of connections, and on shutdown sends GOAWAY to every connection.
final class QueryServer: Service, Sendable {
    private let configuration: QueryConfiguration
    private let handler: any CallHandler
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let slots: ConnectionSlots
    /// Open client connections.
    var connectionCount: Int { slots.current.total }
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let bound = Mutex<(any Channel)?>(nil)
    private let ready = Mutex<[CheckedContinuation<SocketAddress, any Error>]>([])
    private let sslContext: NIOSSLContext?

    init(configuration: QueryConfiguration, handler: any CallHandler, logger: Logger) throws {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
        slots = ConnectionSlots(maxConnections: configuration.maxConnections, maxUnauthenticated: configuration.maxUnauthenticatedConnections)
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
        let limits = configuration.serverLimits
        let slots = self.slots
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            // Bounded outbound buffering: above 256 KiB unwritten the connection stops reading.
            .childChannelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 64 << 10, high: 256 << 10))
            .childChannelInitializer { [self] channel in
                if let refusal = slots.acquire() {
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(RefusingHandler(refusal, timeout: limits.goAwayTimeout))
                    }
                }
                let id = ObjectIdentifier(channel)
                channels.withLock { $0[id] = channel }
                channel.closeFuture.whenComplete { [self] _ in channels.withLock { $0[id] = nil } }
                return channel.eventLoop.makeCompletedFuture {
                    do {
                        if let ssl = sslContext {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: ssl))
                        }
                        try ConnectionHandler.addHandlers(to: channel.pipeline.syncOperations, limits: limits, handler: handler, slots: slots, logger: logger)
                    } catch {
                        slots.release(authenticated: false)  // no ConnectionHandler owns the slot
                        throw error
                    }
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
                c.pipeline.fireUserInboundEventTriggered(ConnectionHandler.ShutdownEvent())
            }
            channel.close(promise: nil)
        }
        try? await group.shutdownGracefully()
    }
}
