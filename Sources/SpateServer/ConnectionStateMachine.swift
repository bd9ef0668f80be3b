public import NIOCore
public import SpateWire

/// The timers of one connection.
public enum ConnectionTimer: Sendable, Hashable {
    /// From accept: the preface (after any TLS handshake) and, with a token, a valid token must come in time.
    case handshake
    /// Periodic idleness check.
    case idle
    /// The peer stopped reading while an answer waits.
    case writeStall
    /// After GOAWAY: close even if the frame cannot be written.
    case goAwayClose
    /// A call's request timeout or deadline.
    case stream(UInt32)
}

/// One query connection's life (I/O-free, docs/PROTOCOL.md): the NIO handler feeds it what
/// arrived and what happened (frames, call answers, timers, writability) and executes the
/// actions it returns. It owns the protocol's rules: the preface, authentication before
/// anything big, stream ids and limits, deadlines, PING strikes, idleness, backpressure and
/// GOAWAY.
public struct ConnectionStateMachine: Sendable {
    /// What the handler must do, in order.
    public enum Action: Sendable, Hashable {
        /// Write the server's preface.
        case writePreface
        /// Write a frame.
        case write(Frame)
        /// Start the call's task.
        case startCall(streamID: UInt32, method: Method, request: [UInt8])
        /// Cancel the call's task.
        case cancelCall(UInt32)
        /// Arm a timer (replacing one with the same identity).
        case schedule(ConnectionTimer, Duration)
        /// Disarm a timer.
        case cancelTimer(ConnectionTimer)
        /// The peer authenticated: accept frames up to this size, and stop counting the
        /// connection as unauthenticated.
        case authenticated(frameLimit: Int)
        /// Write this GOAWAY and close once it is written; `goAwayClose` closes anyway.
        case goAway(Frame)
        /// Close now.
        case close
    }

    private enum Phase: Sendable, Hashable { case awaitingPreface, open, goingAway, closed }

    /// The limits applied.
    public let limits: ServerLimits
    private var phase = Phase.awaitingPreface
    private var isAuthenticated: Bool
    private var streams: [UInt32: StreamStateMachine] = [:]
    private var lastStreamID: UInt32 = 0
    private var failedTokens = 0
    private var lastPing: NIODeadline?
    private var pingStrikes = 0
    private var activeSinceIdleCheck = false
    private var writable = true
    private var stallArmed = false
    private let expectedAuthorization: [UInt8]?

    /// A connection just accepted.
    public init(limits: ServerLimits) {
        self.limits = limits
        isAuthenticated = limits.token == nil
        expectedAuthorization = limits.token.map { Array("Bearer \($0)".utf8) }
    }

    /// Calls in progress (tests, metrics).
    public var openStreams: Int { streams.count }
    /// True once the peer presented a valid token (or none is required).
    public var authenticated: Bool { isAuthenticated }
    /// True once the connection is going away or closed.
    public var isClosing: Bool { phase == .goingAway || phase == .closed }

    // MARK: events

    /// The connection is accepted (before any TLS handshake).
    public mutating func activate() -> [Action] {
        [.schedule(.handshake, limits.handshakeTimeout)]
    }

    /// The decoder produced an item. `now` is the event loop's clock (PING strikes).
    public mutating func receive(_ item: ServerInbound, now: NIODeadline) -> [Action] {
        switch (phase, item) {
        case (.awaitingPreface, .preface):
            phase = .open
            var actions: [Action] = [.writePreface, .schedule(.idle, limits.idleTimeout)]
            if isAuthenticated { actions += [.authenticated(frameLimit: limits.maxFrameSize), .cancelTimer(.handshake)] }
            return actions
        case (.open, .frame(let frame)):
            return receive(frame, now: now)
        case (.awaitingPreface, .frame), (.open, .preface):
            return goAway(RPCError(.invalidArgument, "unexpected preface"))
        case (.goingAway, _), (.closed, _):
            return []
        }
    }

    /// The decoder found a frame that breaks the protocol.
    public mutating func protocolError(_ error: RPCError) -> [Action] { goAway(error) }

    /// The peer does not speak this protocol (wrong preface): close without a word.
    public mutating func notSpate() -> [Action] { close() }

    /// A call's task produced an answer.
    public mutating func callProduced(_ streamID: UInt32, _ message: [UInt8]) -> [Action] {
        guard phase == .open, var stream = streams[streamID] else { return [] }
        let outcome = stream.produce(message, writable: writable, maxSize: limits.maxOutboundFrameSize)
        streams[streamID] = stream
        switch outcome {
        case .ignore: return []
        case .write(let m): return [.write(Frame(type: .data, streamID: streamID, payload: m))]
        case .held:
            guard !stallArmed else { return [] }
            stallArmed = true
            return [.schedule(.writeStall, limits.writeStallTimeout)]
        case .tooLarge(let n):
            let e = RPCError(
                .resourceExhausted, "the answer of \(n) bytes exceeds the \(limits.maxOutboundFrameSize)-byte frame limit; narrow the query")
            return [.cancelCall(streamID)] + end(streamID, e)
        }
    }

    /// A call's task ended with `status` (OK or an error).
    public mutating func callFinished(_ streamID: UInt32, _ status: RPCError) -> [Action] {
        guard phase == .open, streams[streamID] != nil else { return [] }
        return end(streamID, status)
    }

    /// A timer fired.
    public mutating func timerFired(_ timer: ConnectionTimer) -> [Action] {
        switch timer {
        case .handshake:
            switch phase {
            case .awaitingPreface: return close()
            case .open where !isAuthenticated:
                return goAway(RPCError(.unauthenticated, "no valid token within \(limits.handshakeTimeout)"))
            default: return []
            }
        case .idle:
            guard phase == .open else { return [] }
            if streams.isEmpty && !activeSinceIdleCheck { return goAway(RPCError(.unavailable, "idle for too long")) }
            activeSinceIdleCheck = false
            return [.schedule(.idle, limits.idleTimeout)]
        case .writeStall:
            stallArmed = false
            guard phase == .open, !writable, streams.values.contains(where: \.isHolding) else { return [] }
            return goAway(RPCError(.resourceExhausted, "the peer has not read its answers for \(limits.writeStallTimeout)"))
        case .goAwayClose:
            return close()
        case .stream(let id):
            guard phase == .open, let stream = streams[id] else { return [] }
            if stream.state == .awaitingRequest {
                return end(id, RPCError(.deadlineExceeded, "the request message did not arrive in time"))
            }
            guard stream.state == .running else { return [] }
            return [.cancelCall(id)] + end(id, RPCError(.deadlineExceeded, "deadline exceeded"))
        }
    }

    /// The channel's writability changed: answers held for a slow reader go out when it reads.
    public mutating func writabilityChanged(_ isWritable: Bool) -> [Action] {
        writable = isWritable
        guard isWritable, phase == .open else { return [] }
        var actions: [Action] = []
        if stallArmed {
            stallArmed = false
            actions.append(.cancelTimer(.writeStall))
        }
        for id in streams.keys.sorted() {
            guard var stream = streams[id], stream.isHolding else { continue }
            let (answer, status) = stream.drain()
            streams[id] = stream
            if let answer { actions.append(.write(Frame(type: .data, streamID: id, payload: answer))) }
            if let status {
                streams[id] = nil
                actions += [.write(Self.statusFrame(id, status)), .cancelTimer(.stream(id))]
            }
        }
        return actions
    }

    /// The node stops: GOAWAY UNAVAILABLE.
    public mutating func shutdown() -> [Action] { goAway(RPCError(.unavailable, "the node is shutting down")) }

    /// The channel closed: cancel every call and timer.
    public mutating func channelClosed() -> [Action] {
        guard phase != .closed else { return [] }
        phase = .closed
        return cancelAll()
    }

    // MARK: frames

    private mutating func receive(_ frame: Frame, now: NIODeadline) -> [Action] {
        switch frame.type {
        case .headers:
            activeSinceIdleCheck = true
            pingStrikes = 0
            return headers(frame)
        case .data:
            activeSinceIdleCheck = true
            pingStrikes = 0
            guard var stream = streams[frame.streamID], stream.state == .awaitingRequest else { return [] }
            guard frame.payload.count <= limits.maxRequestSize else {
                return end(frame.streamID, RPCError(.invalidArgument, "request of \(frame.payload.count) bytes exceeds the limit of \(limits.maxRequestSize)"))
            }
            _ = stream.receiveRequest()
            streams[frame.streamID] = stream
            var actions: [Action] = [.startCall(streamID: frame.streamID, method: stream.method, request: frame.payload)]
            if let deadline = deadline(stream.method, timeouts[frame.streamID] ?? 0) {
                actions.append(.schedule(.stream(frame.streamID), deadline))
            } else {
                actions.append(.cancelTimer(.stream(frame.streamID)))
            }
            timeouts[frame.streamID] = nil
            return actions
        case .cancel:
            activeSinceIdleCheck = true
            guard let stream = streams[frame.streamID] else { return [] }
            let running = stream.state == .running
            var actions: [Action] = running ? [.cancelCall(frame.streamID)] : []
            streams[frame.streamID]?.cancel()
            streams[frame.streamID] = nil
            timeouts[frame.streamID] = nil
            actions += [.cancelTimer(.stream(frame.streamID)), .write(Self.statusFrame(frame.streamID, RPCError(.cancelled, "cancelled by the client")))]
            return actions
        case .ping:
            guard !frame.flags.contains(.ack) else { return [] }
            if let last = lastPing, now - last < TimeAmount(limits.minPingInterval) {
                pingStrikes += 1
                if pingStrikes > limits.maxPingStrikes { return goAway(RPCError(.resourceExhausted, "too_many_pings")) }
            }
            lastPing = now
            return [.write(Frame(type: .ping, flags: .ack, streamID: 0, payload: frame.payload))]
        case .goAway:
            return close()
        case .status:
            return goAway(RPCError(.invalidArgument, "clients do not send STATUS frames"))
        }
    }

    /// Timeouts of streams still waiting for their request (ms asked for in HEADERS).
    private var timeouts: [UInt32: UInt32] = [:]

    private mutating func headers(_ frame: Frame) -> [Action] {
        let id = frame.streamID
        guard id > lastStreamID else {
            return goAway(RPCError(.invalidArgument, "stream \(id) is not above the last one (\(lastStreamID))"))
        }
        lastStreamID = id
        let head: RequestHead
        do { head = try RequestHead(decoding: frame.payload, maxMetadataEntries: limits.maxMetadataEntries) } catch {
            let e = error as? RPCError ?? RPCError(.invalidArgument, "malformed RequestHeaders")
            return isAuthenticated ? [.write(Self.statusFrame(id, e))] : refuse(id, e)
        }
        var actions: [Action] = []
        if let expected = expectedAuthorization {
            let presented = head.value("authorization")
            guard constantTimeEquals(Array((presented ?? "").utf8), expected) else {
                return refuse(id, RPCError(.unauthenticated, presented == nil ? "a token is required" : "the token is not valid"))
            }
            if !isAuthenticated {
                isAuthenticated = true
                actions += [.authenticated(frameLimit: limits.maxFrameSize), .cancelTimer(.handshake)]
            }
        }
        guard streams.count < limits.maxStreams else {
            return actions + [.write(Self.statusFrame(id, RPCError(.resourceExhausted, "more than \(limits.maxStreams) concurrent calls on this connection")))]
        }
        guard let method = Method(rawValue: head.method) else {
            return actions + [.write(Self.statusFrame(id, RPCError(.unimplemented, "unknown method '\(head.method.prefix(64))'")))]
        }
        var stream = StreamStateMachine(method: method)
        if frame.flags.contains(.endStream) {
            _ = stream.receiveRequest()
            streams[id] = stream
            actions.append(.startCall(streamID: id, method: method, request: []))
            if let d = deadline(method, head.timeoutMs) { actions.append(.schedule(.stream(id), d)) }
        } else {
            streams[id] = stream
            timeouts[id] = head.timeoutMs
            let wait = deadline(method, head.timeoutMs).map { min($0, limits.requestTimeout) } ?? limits.requestTimeout
            actions.append(.schedule(.stream(id), wait))
        }
        return actions
    }

    /// Refuses a call that did not authenticate; `max_failed_tokens` of them end the connection.
    private mutating func refuse(_ id: UInt32, _ error: RPCError) -> [Action] {
        failedTokens += 1
        guard failedTokens < limits.maxFailedTokens else {
            return goAway(RPCError(.unauthenticated, "\(failedTokens) calls without a valid token"))
        }
        return [.write(Self.statusFrame(id, error))]
    }

    /// The deadline of a call: what it asked for, capped at `maxDeadline` for unary calls
    /// (which get `maxDeadline` when they ask for none); a Watch runs until cancelled unless
    /// it asked for a deadline.
    private func deadline(_ method: Method, _ timeoutMs: UInt32) -> Duration? {
        let requested = timeoutMs > 0 ? Duration.milliseconds(Int64(timeoutMs)) : nil
        return method == .watch ? requested : min(requested ?? limits.maxDeadline, limits.maxDeadline)
    }

    // MARK: endings

    private mutating func end(_ id: UInt32, _ status: RPCError) -> [Action] {
        guard var stream = streams[id] else { return [] }
        activeSinceIdleCheck = true
        let outcome = stream.finish(status)
        streams[id] = stream
        timeouts[id] = nil
        switch outcome {
        case .ignore: return []
        case .held: return [.cancelTimer(.stream(id))]
        case .writeStatus(let s):
            streams[id] = nil
            return [.cancelTimer(.stream(id)), .write(Self.statusFrame(id, s))]
        }
    }

    private mutating func goAway(_ error: RPCError) -> [Action] {
        var actions: [Action] = []
        switch phase {
        case .goingAway, .closed: return []
        case .awaitingPreface: actions.append(.writePreface)
        case .open: break
        }
        actions += cancelAll()
        phase = .goingAway
        let payload = WireMessages.encodeGoAway(lastStreamID: lastStreamID, error.code, Self.bounded(error.message))
        return actions + [.goAway(Frame(type: .goAway, streamID: 0, payload: payload)), .schedule(.goAwayClose, limits.goAwayTimeout)]
    }

    private mutating func close() -> [Action] {
        guard phase != .closed else { return [] }
        let actions = cancelAll()
        phase = .closed
        return actions + [.cancelTimer(.goAwayClose), .close]
    }

    private mutating func cancelAll() -> [Action] {
        var actions: [Action] = []
        for id in streams.keys.sorted() {
            if streams[id]?.state == .running { actions.append(.cancelCall(id)) }
            actions.append(.cancelTimer(.stream(id)))
        }
        streams.removeAll()
        timeouts.removeAll()
        stallArmed = false
        return actions + [.cancelTimer(.handshake), .cancelTimer(.idle), .cancelTimer(.writeStall)]
    }

    /// A STATUS frame; its message is cut to 1 KiB (it may echo what the peer sent).
    public static func statusFrame(_ id: UInt32, _ status: RPCError) -> Frame {
        Frame(type: .status, flags: .endStream, streamID: id, payload: WireMessages.encodeStatus(status.code, bounded(status.message)))
    }

    /// At most 1 KiB of a message, on a character boundary.
    static func bounded(_ message: String) -> String {
        guard message.utf8.count > 1024 else { return message }
        var out = ""
        for c in message {
            guard out.utf8.count + c.utf8.count <= 1021 else { break }
            out.append(c)
        }
        return out + "…"
    }
}

/// Compares secrets in time independent of where they differ.
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var diff = UInt8(a.count == b.count ? 0 : 1)
    for i in 0..<max(a.count, b.count) {
        diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
    }
    return diff == 0
}

extension TimeAmount {
    /// The same span, in nanoseconds (saturating).
    init(_ d: Duration) {
        let (s, atto) = d.components
        let (ns, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        self = .nanoseconds(overflow ? .max : ns.addingReportingOverflow(atto / 1_000_000_000).partialValue)
    }
}
