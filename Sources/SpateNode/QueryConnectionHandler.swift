import Foundation
import Logging
import NIOCore
import SpateWire
import Synchronization

/// What the server does for each call: decode the request, answer with zero or more
/// messages (`emit`), finish or throw an `RPCError`.
protocol CallHandler: Sendable {
    func handle(method: Method, request: [UInt8], emit: @escaping @Sendable ([UInt8]) -> Void) async throws
}

/// Limits and secrets of the query listener, shared by every connection.
struct ServerLimits: Sendable {
    var maxFrameSize: Int
    var maxStreams: Int
    var maxDeadline: Duration
    var token: String?
}

/// One client connection of the query protocol (docs/PROTOCOL.md): checks the preface,
/// decodes frames — rejecting an oversized length before buffering its payload — runs each
/// call as a task, enforces deadlines, stream limits and authentication, answers pings, and
/// ends with GOAWAY on protocol errors or idleness. Runs on its channel's event loop; call
/// tasks come back to it through `eventLoop.execute`.
final class QueryConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State { case preface, open, closing }

    private struct Call {
        var headers: CallHeaders
        var method: Method
        var task: Task<Void, Never>?
        var requestComplete = false
    }

    private let handler: any CallHandler
    private let limits: ServerLimits
    private let logger: Logger
    private var state = State.preface
    private var buffer: ByteBuffer?
    private var calls: [UInt32: Call] = [:]
    private var lastStreamID: UInt32 = 0
    private var channel: (any Channel)?
    private var eventLoop: (any EventLoop)?

    init(handler: any CallHandler, limits: ServerLimits, logger: Logger) {
        self.handler = handler
        self.limits = limits
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        channel = context.channel
        eventLoop = context.eventLoop
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        for (_, call) in calls { call.task?.cancel() }
        calls.removeAll()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if calls.isEmpty {
                goAway(context, RPCError(.unavailable, "idle for too long"))
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("query connection error: \(error)")
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard state != .closing else { return }
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        if state == .preface {
            guard buffer!.readableBytes >= FrameCodec.preface.count else {
                // A prefix that can no longer become the preface is not our protocol.
                if !FrameCodec.preface.starts(with: buffer!.readableBytesView) { context.close(promise: nil) }
                return
            }
            let got = buffer!.readBytes(length: FrameCodec.preface.count)!
            guard got == FrameCodec.preface else {
                state = .closing
                context.close(promise: nil)
                return
            }
            state = .open
            var out = context.channel.allocator.buffer(capacity: FrameCodec.preface.count)
            out.writeBytes(FrameCodec.preface)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
        do {
            while state == .open, let frame = try FrameCodec.decode(&buffer!, maxFrameSize: limits.maxFrameSize) {
                try handle(context, frame)
            }
            buffer!.discardReadBytes()
        } catch let e as RPCError {
            goAway(context, e)
        } catch {
            goAway(context, RPCError(.internal, "\(error)"))
        }
    }

    private func handle(_ context: ChannelHandlerContext, _ frame: Frame) throws {
        switch frame.type {
        case .headers:
            guard frame.streamID > lastStreamID else {
                throw RPCError(.invalidArgument, "stream \(frame.streamID) is not above the last one (\(lastStreamID))")
            }
            lastStreamID = frame.streamID
            guard calls.count < limits.maxStreams else {
                writeStatus(frame.streamID, RPCError(.resourceExhausted, "more than \(limits.maxStreams) concurrent calls on this connection"))
                return
            }
            let headers: CallHeaders
            do { headers = try WireMessages.decodeHeaders(frame.payload) } catch let e as RPCError {
                writeStatus(frame.streamID, e)
                return
            }
            if let token = limits.token {
                let presented = headers.metadata["authorization"] ?? ""
                guard constantTimeEquals(Array(presented.utf8), Array("Bearer \(token)".utf8)) else {
                    writeStatus(frame.streamID, RPCError(.unauthenticated, presented.isEmpty ? "a token is required" : "the token is not valid"))
                    return
                }
            }
            guard let method = Method(rawValue: headers.method) else {
                writeStatus(frame.streamID, RPCError(.unimplemented, "unknown method '\(headers.method)'"))
                return
            }
            calls[frame.streamID] = Call(headers: headers, method: method)
            if frame.flags.contains(.endStream) { start(frame.streamID, request: []) }
        case .data:
            guard var call = calls[frame.streamID], !call.requestComplete else { return }  // cancelled or finished: ignore
            call.requestComplete = true
            calls[frame.streamID] = call
            start(frame.streamID, request: frame.payload)
        case .cancel:
            if let call = calls.removeValue(forKey: frame.streamID) {
                call.task?.cancel()
                writeStatus(frame.streamID, RPCError(.cancelled, "cancelled by the client"))
            }
        case .ping:
            guard !frame.flags.contains(.ack) else { return }
            write(Frame(type: .ping, flags: .ack, streamID: 0, payload: frame.payload))
        case .goAway:
            state = .closing
            context.close(promise: nil)
        case .status:
            throw RPCError(.invalidArgument, "clients do not send STATUS frames")
        }
    }

    /// Runs a call in a task; its deadline is a timer on the event loop that ends the call with
    /// DEADLINE_EXCEEDED at once and cancels the task (which aborts its store requests). The
    /// first of the two to finish writes the one STATUS frame.
    private func start(_ streamID: UInt32, request: [UInt8]) {
        guard var call = calls[streamID], let eventLoop else { return }
        let requested = call.headers.timeoutMs > 0 ? Duration.milliseconds(Int64(call.headers.timeoutMs)) : nil
        let deadline: Duration? = call.method == .watch ? requested : min(requested ?? limits.maxDeadline, limits.maxDeadline)
        let handler = self.handler
        let method = call.method
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let task = Task {
            let outcome: RPCError
            do {
                try await handler.handle(method: method, request: request) { message in
                    eventLoop.execute { loopBound.value.emit(streamID, message) }
                }
                outcome = RPCError(.ok, "")
            } catch let e as RPCError {
                outcome = e
            } catch is CancellationError {
                outcome = RPCError(.cancelled, "cancelled")
            } catch {
                outcome = RPCError(.internal, "\(error)")
            }
            eventLoop.execute { loopBound.value.finish(streamID, outcome) }
        }
        call.task = task
        calls[streamID] = call
        if let deadline {
            let nanos = Int64(deadline.components.seconds) * 1_000_000_000 + Int64(deadline.components.attoseconds / 1_000_000_000)
            eventLoop.scheduleTask(in: .nanoseconds(nanos)) {
                task.cancel()
                loopBound.value.finish(streamID, RPCError(.deadlineExceeded, "deadline of \(deadline) exceeded"))
            }
        }
    }

    private func emit(_ streamID: UInt32, _ message: [UInt8]) {
        guard calls[streamID] != nil else { return }
        write(Frame(type: .data, streamID: streamID, payload: message))
    }

    private func finish(_ streamID: UInt32, _ status: RPCError) {
        guard calls.removeValue(forKey: streamID) != nil else { return }
        writeStatus(streamID, status)
    }

    private func writeStatus(_ streamID: UInt32, _ status: RPCError) {
        write(Frame(type: .status, flags: .endStream, streamID: streamID, payload: WireMessages.encodeStatus(status.code, status.message)))
    }

    private func write(_ frame: Frame) {
        guard let channel else { return }
        var out = channel.allocator.buffer(capacity: FrameCodec.headerSize + frame.payload.count)
        FrameCodec.encode(frame, into: &out)
        channel.writeAndFlush(out, promise: nil)
    }

    private func goAway(_ context: ChannelHandlerContext, _ error: RPCError) {
        guard state != .closing else { return }
        if state == .preface {
            var out = context.channel.allocator.buffer(capacity: 8)
            out.writeBytes(FrameCodec.preface)
            context.write(wrapOutboundOut(out), promise: nil)
        }
        state = .closing
        for (_, call) in calls { call.task?.cancel() }
        calls.removeAll()
        var out = context.channel.allocator.buffer(capacity: 64)
        FrameCodec.encode(
            Frame(type: .goAway, streamID: 0, payload: WireMessages.encodeGoAway(lastStreamID: lastStreamID, error.code, error.message)), into: &out)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Sends GOAWAY and closes: used when the connection is over the limit (a fresh
    /// connection: the server's preface goes first) or the server stops.
    static func reject(_ channel: any Channel, _ error: RPCError, withPreface: Bool) {
        var out = channel.allocator.buffer(capacity: 64)
        if withPreface { out.writeBytes(FrameCodec.preface) }
        FrameCodec.encode(Frame(type: .goAway, streamID: 0, payload: WireMessages.encodeGoAway(lastStreamID: 0, error.code, error.message)), into: &out)
        channel.writeAndFlush(out).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// Compares secrets in time independent of where they differ.
func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var diff = UInt8(a.count == b.count ? 0 : 1)
    let n = max(a.count, b.count)
    for i in 0..<n {
        diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
    }
    return diff == 0
}
