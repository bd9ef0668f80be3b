public import Logging
public import NIOCore
public import SpateWire
import Synchronization

/// What the server does for each call: decode the request, answer with zero or more messages
/// (`emit`), then return or throw an `RPCError`.
public protocol CallHandler: Sendable {
    /// Runs one call.
    func handle(method: Method, request: [UInt8], emit: @escaping @Sendable ([UInt8]) -> Void) async throws
}

/// Counts a listener's connections and, among them, those not yet authenticated, so neither
/// can exceed its cap (`query.max_connections`, `query.max_unauthenticated_connections`).
public final class ConnectionSlots: Sendable {
    private let counts = Mutex<(total: Int, unauthenticated: Int)>((0, 0))
    /// Cap on all connections.
    public let maxConnections: Int
    /// Cap on connections that have not authenticated yet.
    public let maxUnauthenticated: Int

    /// Slots for `maxConnections` connections, `maxUnauthenticated` of them unauthenticated.
    public init(maxConnections: Int, maxUnauthenticated: Int) {
        self.maxConnections = maxConnections
        self.maxUnauthenticated = maxUnauthenticated
    }

    /// Takes a slot for a new, unauthenticated connection; nil when one is free, else why not.
    public func acquire() -> RPCError? {
        counts.withLock { c in
            if c.total >= maxConnections { return RPCError(.resourceExhausted, "the server has \(maxConnections) connections already") }
            if c.unauthenticated >= maxUnauthenticated {
                return RPCError(.resourceExhausted, "the server has \(maxUnauthenticated) unauthenticated connections already")
            }
            c.total += 1
            c.unauthenticated += 1
            return nil
        }
    }

    /// The connection authenticated: it no longer counts against the unauthenticated cap.
    public func authenticated() { counts.withLock { $0.unauthenticated -= 1 } }

    /// The connection closed.
    public func release(authenticated: Bool) {
        counts.withLock { c in
            c.total -= 1
            if !authenticated { c.unauthenticated -= 1 }
        }
    }

    /// Open connections, and how many of them are unauthenticated.
    public var current: (total: Int, unauthenticated: Int) { counts.withLock { $0 } }
}

/// The NIO side of one query connection: feeds `ConnectionStateMachine` the decoded items,
/// call answers, timers and writability, and executes its actions. It holds the call tasks and
/// timers the machine names, stops reading while the channel is not writable (so a peer that
/// does not read cannot make the server queue answers), and releases its connection slot.
public final class ConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    public typealias InboundIn = ServerInbound
    public typealias OutboundIn = ServerOutbound
    public typealias OutboundOut = ServerOutbound

    private var machine: ConnectionStateMachine
    private let handler: any CallHandler
    private let limit: FrameLimit
    private let slots: ConnectionSlots?
    private let logger: Logger
    private var tasks: [UInt32: Task<Void, Never>] = [:]
    private var timers: [ConnectionTimer: Scheduled<Void>] = [:]
    private var context: ChannelHandlerContext?
    private var readHeld = false
    private var released = false
    /// Whether this connection's slot was moved off the unauthenticated count.
    private var slotAuthenticated = false
    private var activated = false

    /// A handler for one connection. `limit` is shared with its `FrameDecoder`; `slots`, when
    /// given, already holds this connection's slot and is released when it closes.
    public init(limits: ServerLimits, handler: any CallHandler, limit: FrameLimit, slots: ConnectionSlots?, logger: Logger) {
        machine = ConnectionStateMachine(limits: limits)
        self.handler = handler
        self.limit = limit
        self.slots = slots
        self.logger = logger
    }

    /// Timers armed and call tasks held now (tests, metrics): a finished call leaves neither.
    public var retained: (timers: Int, tasks: Int) { (timers.count, tasks.count) }

    /// The pipeline of a server connection after any TLS handler: decoder, writer, handler.
    @discardableResult
    public static func addHandlers(
        to pipeline: ChannelPipeline.SynchronousOperations, limits: ServerLimits, handler: any CallHandler, slots: ConnectionSlots?, logger: Logger
    ) throws -> ConnectionHandler {
        let limit = FrameLimit(limits.initialFrameLimit)
        let connection = ConnectionHandler(limits: limits, handler: handler, limit: limit, slots: slots, logger: logger)
        try pipeline.addHandler(ByteToMessageHandler(FrameDecoder(limit: limit)))
        try pipeline.addHandler(FrameWriter())
        try pipeline.addHandler(connection)
        return connection
    }

    /// Keeps the context; a channel already active starts its handshake timer now.
    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { activate() }
    }

    /// The connection is accepted: the handshake timer starts.
    public func channelActive(context: ChannelHandlerContext) {
        activate()
        context.fireChannelActive()
    }

    private func activate() {
        guard !activated else { return }
        activated = true
        run(machine.activate())
    }

    /// The connection closed: every call and timer ends, the slot is released.
    public func channelInactive(context: ChannelHandlerContext) {
        run(machine.channelClosed())
        releaseSlot()
        context.fireChannelInactive()
    }

    /// Removed from the pipeline: nothing of the connection is kept.
    public func handlerRemoved(context: ChannelHandlerContext) {
        releaseSlot()
        self.context = nil
    }

    /// A decoded preface or frame, for the state machine.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        run(machine.receive(unwrapInboundIn(data), now: context.eventLoop.now))
    }

    /// A decoder error is a protocol error (GOAWAY) or not this protocol (close); anything else closes.
    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let e = error as? RPCError {
            run(machine.protocolError(e))
        } else if error is NotSpateProtocolError {
            run(machine.notSpate())
        } else {
            logger.debug("query connection error: \(error)")
            run(machine.channelClosed())
            context.close(promise: nil)
        }
    }

    /// Held answers go out when the peer reads again, and reading resumes.
    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        run(machine.writabilityChanged(writable))
        if writable && readHeld {
            readHeld = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    /// Reads only while the channel is writable and the connection is not going away.
    public func read(context: ChannelHandlerContext) {
        // A peer that does not read its answers is not read from either: TCP pushes back.
        guard context.channel.isWritable, !machine.isClosing else {
            readHeld = true
            return
        }
        context.read()
    }

    /// `ShutdownEvent` sends GOAWAY UNAVAILABLE; other events pass on.
    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ShutdownEvent { run(machine.shutdown()) } else { context.fireUserInboundEventTriggered(event) }
    }

    /// Fired into the pipeline when the node stops: the connection says GOAWAY UNAVAILABLE.
    public struct ShutdownEvent: Sendable {
        /// The event.
        public init() {}
    }

    // MARK: actions

    private func run(_ actions: [ConnectionStateMachine.Action]) {
        guard let context, !actions.isEmpty else { return }
        var wrote = false
        for action in actions {
            switch action {
            case .writePreface:
                context.write(wrapOutboundOut(.preface), promise: nil)
                wrote = true
            case .write(let frame):
                context.write(wrapOutboundOut(.frame(frame)), promise: nil)
                wrote = true
            case .startCall(let id, let method, let request):
                start(context, id, method, request)
            case .cancelCall(let id):
                tasks.removeValue(forKey: id)?.cancel()
            case .schedule(let timer, let after):
                schedule(context, timer, after)
            case .cancelTimer(let timer):
                timers.removeValue(forKey: timer)?.cancel()
            case .authenticated(let frameLimit):
                limit.value = frameLimit
                if let slots, !released, !slotAuthenticated {
                    slotAuthenticated = true
                    slots.authenticated()
                }
            case .goAway(let frame):
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(.frame(frame))).whenComplete { _ in channel.close(promise: nil) }
                wrote = false
            case .close:
                context.close(promise: nil)
            }
        }
        if wrote { context.flush() }
    }

    private func start(_ context: ChannelHandlerContext, _ id: UInt32, _ method: Method, _ request: [UInt8]) {
        let eventLoop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let handler = self.handler
        tasks[id] = Task {
            let outcome: RPCError
            do {
                try await handler.handle(method: method, request: request) { message in
                    eventLoop.execute { bound.value.produced(id, message) }
                }
                outcome = RPCError(.ok, "")
            } catch let e as RPCError {
                outcome = e
            } catch is CancellationError {
                outcome = RPCError(.cancelled, "cancelled")
            } catch {
                outcome = RPCError(.internal, "\(error)")
            }
            eventLoop.execute { bound.value.finished(id, outcome) }
        }
    }

    private func produced(_ id: UInt32, _ message: [UInt8]) { run(machine.callProduced(id, message)) }

    private func finished(_ id: UInt32, _ outcome: RPCError) {
        tasks[id] = nil
        run(machine.callFinished(id, outcome))
    }

    private func schedule(_ context: ChannelHandlerContext, _ timer: ConnectionTimer, _ after: Duration) {
        timers.removeValue(forKey: timer)?.cancel()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timers[timer] = context.eventLoop.scheduleTask(in: TimeAmount(after)) {
            bound.value.fired(timer)
        }
    }

    private func fired(_ timer: ConnectionTimer) {
        timers[timer] = nil
        run(machine.timerFired(timer))
    }

    private func releaseSlot() {
        guard !released else { return }
        released = true
        for (_, t) in timers { t.cancel() }
        timers.removeAll()
        for (_, t) in tasks { t.cancel() }
        tasks.removeAll()
        // What the slot counted, not what the machine thinks: without a token the machine is
        // authenticated from the start, but the slot only once the preface came.
        slots?.release(authenticated: slotAuthenticated)
    }
}

/// The whole pipeline of a connection over a cap: once active it writes the server's preface
/// and GOAWAY with `error`, then closes — as soon as that is written, and after `timeout` even
/// if the peer does not read. Nothing it receives is read.
public final class RefusingHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let error: RPCError
    private let timeout: Duration

    /// Refuses with `error`.
    public init(_ error: RPCError, timeout: Duration) {
        self.error = error
        self.timeout = timeout
    }

    /// A channel already active is refused now.
    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    /// Refuses once the channel is active.
    public func channelActive(context: ChannelHandlerContext) {
        refuse(context)
        context.fireChannelActive()
    }

    /// Nothing the peer sends is read.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    private func refuse(_ context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: 128)
        out.writeBytes(FrameCodec.preface)
        let payload = WireMessages.encodeGoAway(lastStreamID: 0, error.code, error.message)
        FrameCodec.encode(Frame(type: .goAway, streamID: 0, payload: payload), into: &out)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
        context.eventLoop.scheduleTask(in: TimeAmount(timeout)) { channel.close(promise: nil) }
    }
}
