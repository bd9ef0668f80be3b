import NIOCore
import SpateServer
import SpateWire
import Testing

@Suite("Connection state machine (no I/O)")
struct ConnectionStateMachineTests {
    typealias Action = ConnectionStateMachine.Action

    @Test("accept arms the handshake timer; the preface is answered and, without a token, authenticates")
    func preface() {
        var m = ConnectionStateMachine(limits: .defaults)
        #expect(m.activate() == [.schedule(.handshake, .seconds(10))])
        let a = m.receive(.preface, now: T.t0)
        #expect(a == [.writePreface, .schedule(.idle, .seconds(300)), .authenticated(frameLimit: 4 << 20), .cancelTimer(.handshake)])
        #expect(m.authenticated)
    }

    @Test("with a token the preface does not authenticate; the first valid token raises the frame limit")
    func authenticates() {
        var m = T.open()
        #expect(!m.authenticated)
        let a = m.receive(.frame(T.headers(1)), now: T.t0)
        #expect(a.contains(.authenticated(frameLimit: 4 << 20)))
        #expect(a.contains(.cancelTimer(.handshake)))
        #expect(a.contains(.startCall(streamID: 1, method: .listViews, request: [])))
        #expect(m.authenticated)
    }

    @Test("a missing or wrong token is UNAUTHENTICATED; the third failure is GOAWAY UNAUTHENTICATED")
    func failedTokens() {
        var m = T.open()
        let first = m.receive(.frame(T.headers(1, token: nil)), now: T.t0)
        #expect(T.statuses(first).map(\.1.code) == [.unauthenticated])
        #expect(T.statuses(first).first?.1.message == "a token is required")
        let second = m.receive(.frame(T.headers(3, token: "wrong")), now: T.t0)
        #expect(T.statuses(second).map(\.1.message) == ["the token is not valid"])
        let third = m.receive(.frame(T.headers(5, token: "wrong")), now: T.t0)
        #expect(T.goAway(third)?.code == .unauthenticated)
        #expect(third.contains(.schedule(.goAwayClose, .seconds(1))))
        #expect(m.isClosing)
        #expect(m.receive(.frame(T.headers(7)), now: T.t0).isEmpty, "nothing is read after GOAWAY")
    }

    @Test("a token followed by NUL and junk, and two authorization entries, are refused", arguments: [
        [("authorization", "Bearer s3cret\u{0}junk")],
        [("authorization", "Bearer s3cret"), ("authorization", "Bearer other")],
        [("authorization", "Bearer other"), ("authorization", "Bearer s3cret")],
    ])
    func strictMetadata(_ metadata: [(String, String)]) {
        var m = T.open()
        let a = m.receive(.frame(T.headers(1, metadata: metadata.map { (key: $0.0, value: $0.1) })), now: T.t0)
        #expect(T.statuses(a).map(\.1.code) == [.invalidArgument])
        #expect(!a.contains { if case .startCall = $0 { true } else { false } })
        #expect(!m.authenticated)
    }

    @Test("the handshake timer closes a connection that sent no preface, and GOAWAYs one that sent no valid token")
    func handshakeTimeout() {
        var silent = ConnectionStateMachine(limits: T.limits)
        _ = silent.activate()
        #expect(silent.timerFired(.handshake).last == .close)
        var unauthenticated = T.open()
        _ = unauthenticated.receive(.frame(T.headers(1, token: nil)), now: T.t0)
        #expect(T.goAway(unauthenticated.timerFired(.handshake))?.code == .unauthenticated)
        var good = T.open(authenticate: true)
        #expect(good.timerFired(.handshake).isEmpty)
    }

    @Test("a call whose request never arrives ends at the request timeout with DEADLINE_EXCEEDED")
    func requestNeverArrives() {
        var m = T.open()
        let a = m.receive(.frame(T.headers(1, method: "Query", timeoutMs: 60_000, endStream: false)), now: T.t0)
        #expect(a.contains(.schedule(.stream(1), .seconds(10))))
        #expect(m.openStreams == 1)
        let fired = m.timerFired(.stream(1))
        #expect(T.statuses(fired).map(\.1.code) == [.deadlineExceeded])
        #expect(m.openStreams == 0)
        // A shorter deadline wins over the request timeout.
        let b = m.receive(.frame(T.headers(3, method: "Query", timeoutMs: 1000, endStream: false)), now: T.t0)
        #expect(b.contains(.schedule(.stream(3), .seconds(1))))
    }

    @Test("the request starts the call with its deadline; a finished call cancels its timer")
    func deadlineLifecycle() {
        var m = T.open()
        _ = m.receive(.frame(T.headers(1, method: "Query", timeoutMs: 5000, endStream: false)), now: T.t0)
        let started = m.receive(.frame(T.data(1)), now: T.t0)
        #expect(started == [.startCall(streamID: 1, method: .query, request: [1, 2]), .schedule(.stream(1), .seconds(5))])
        #expect(m.receive(.frame(T.data(1)), now: T.t0).isEmpty, "a second request message is ignored")
        let done = m.callFinished(1, RPCError(.ok, ""))
        #expect(done.first == .cancelTimer(.stream(1)))
        #expect(T.statuses(done).map(\.1.code) == [.ok])
        #expect(m.openStreams == 0)
        #expect(m.timerFired(.stream(1)).isEmpty)
        #expect(m.callFinished(1, RPCError(.ok, "")).isEmpty, "exactly one STATUS")
    }

    @Test("a request message above max_request_size is INVALID_ARGUMENT before anything decodes it")
    func requestSize() {
        var m = T.open()
        _ = m.receive(.frame(T.headers(1, method: "Query", endStream: false)), now: T.t0)
        let a = m.receive(.frame(T.data(1, [UInt8](repeating: 0x12, count: (64 << 10) + 1))), now: T.t0)
        #expect(T.statuses(a).map(\.1.code) == [.invalidArgument])
        #expect(!a.contains { if case .startCall = $0 { true } else { false } })
        #expect(m.openStreams == 0)
    }

    @Test("a unary call without a deadline gets max_deadline; a Watch without one runs until cancelled")
    func deadlines() {
        var m = T.open()
        #expect(m.receive(.frame(T.headers(1)), now: T.t0).contains(.schedule(.stream(1), .seconds(60))))
        #expect(m.receive(.frame(T.headers(3, timeoutMs: 3_600_000)), now: T.t0).contains(.schedule(.stream(3), .seconds(60))))
        let watch = m.receive(.frame(T.headers(5, method: "Watch")), now: T.t0)
        #expect(!watch.contains { if case .schedule(.stream, _) = $0 { true } else { false } })
    }

    @Test("an expired deadline cancels the call and ends it with DEADLINE_EXCEEDED")
    func deadlineFires() {
        var m = T.open(authenticate: true)
        _ = m.receive(.frame(T.headers(3)), now: T.t0)
        let a = m.timerFired(.stream(3))
        #expect(a.first == .cancelCall(3))
        #expect(T.statuses(a).map(\.1.code) == [.deadlineExceeded])
        #expect(m.callFinished(3, RPCError(.cancelled, "")).isEmpty)
    }

    @Test("CANCEL stops the call and confirms with CANCELLED")
    func cancel() {
        var m = T.open(authenticate: true)
        _ = m.receive(.frame(T.headers(3)), now: T.t0)
        let a = m.receive(.frame(Frame(type: .cancel, streamID: 3)), now: T.t0)
        #expect(a.first == .cancelCall(3))
        #expect(a.contains(.cancelTimer(.stream(3))))
        #expect(T.statuses(a).map(\.1.code) == [.cancelled])
        #expect(m.receive(.frame(Frame(type: .cancel, streamID: 3)), now: T.t0).isEmpty)
    }

    @Test("PINGs are answered; more than max_ping_strikes too close together end with GOAWAY too_many_pings")
    func pingFlood() {
        var m = T.open()
        var acks = 0
        var goAway: RPCError?
        for i in 0..<1000 {
            let a = m.receive(.frame(T.ping(UInt8(i % 256))), now: T.t0 + .milliseconds(Int64(i)))
            acks += a.filter { if case .write(let f) = $0 { f.type == .ping && f.flags.contains(.ack) } else { false } }.count
            if let g = T.goAway(a) {
                goAway = g
                break
            }
        }
        #expect(acks == 3)
        #expect(goAway == RPCError(.resourceExhausted, "too_many_pings"))
        // Spaced PINGs are fine.
        var calm = T.open()
        for i in 0..<100 {
            #expect(T.goAway(calm.receive(.frame(T.ping()), now: T.t0 + .seconds(Int64(i) * 2))) == nil)
        }
    }

    @Test("idle means no calls and no call frames: PINGs alone do not keep a connection")
    func idle() {
        var m = T.open()
        _ = m.receive(.frame(T.ping()), now: T.t0)
        #expect(T.goAway(m.timerFired(.idle))?.code == .unavailable)
        var busy = T.open(authenticate: true)
        #expect(busy.timerFired(.idle) == [.schedule(.idle, .seconds(300))], "a call frame since the last check")
        _ = busy.receive(.frame(T.headers(3, method: "Watch")), now: T.t0)
        #expect(busy.timerFired(.idle) == [.schedule(.idle, .seconds(300))], "a call in progress")
        _ = busy.callFinished(3, RPCError(.ok, ""))
        #expect(busy.timerFired(.idle) == [.schedule(.idle, .seconds(300))])
        #expect(T.goAway(busy.timerFired(.idle))?.code == .unavailable)
    }

    @Test("a reader that stalls gets only the newest answer when it drains, then the status")
    func newestOnly() {
        var m = T.open(authenticate: true)
        _ = m.receive(.frame(T.headers(3, method: "Watch")), now: T.t0)
        #expect(m.callProduced(3, [1]) == [.write(Frame(type: .data, streamID: 3, payload: [1]))])
        #expect(m.writabilityChanged(false).isEmpty)
        #expect(m.callProduced(3, [2]) == [.schedule(.writeStall, .seconds(30))])
        for v in 3...100 { #expect(m.callProduced(3, [UInt8(v)]).isEmpty) }
        #expect(m.callFinished(3, RPCError(.cancelled, "x")) == [.cancelTimer(.stream(3))])
        let drained = m.writabilityChanged(true)
        #expect(drained.first == .cancelTimer(.writeStall))
        #expect(drained.contains(.write(Frame(type: .data, streamID: 3, payload: [100]))))
        #expect(T.statuses(drained).map(\.1.code) == [.cancelled])
        #expect(m.openStreams == 0)
    }

    @Test("a peer that does not read for write_stall_timeout gets GOAWAY and is closed after goaway_timeout")
    func stall() {
        var m = T.open(authenticate: true)
        _ = m.receive(.frame(T.headers(3, method: "Watch")), now: T.t0)
        _ = m.writabilityChanged(false)
        _ = m.callProduced(3, [1])
        let a = m.timerFired(.writeStall)
        #expect(a.first == .cancelCall(3))
        #expect(T.goAway(a)?.code == .resourceExhausted)
        #expect(m.timerFired(.goAwayClose).last == .close)
    }

    @Test("an answer larger than the outbound frame limit ends the call with RESOURCE_EXHAUSTED")
    func tooLarge() {
        var limits = T.limits
        limits.maxOutboundFrameSize = 1024
        var m = T.open(limits, authenticate: true)
        _ = m.receive(.frame(T.headers(3)), now: T.t0)
        let a = m.callProduced(3, [UInt8](repeating: 0, count: 1025))
        #expect(a.first == .cancelCall(3))
        #expect(T.statuses(a).map(\.1.code) == [.resourceExhausted])
        #expect(!a.contains { if case .write(let f) = $0 { f.type == .data } else { false } })
    }

    @Test("a status message that echoes a huge name is cut to 1 KiB")
    func boundedStatus() {
        let frame = ConnectionStateMachine.statusFrame(1, RPCError(.notFound, "unknown view '\(String(repeating: "é", count: 2 << 20))'"))
        #expect(frame.payload.count < 1100)
        #expect((try? WireMessages.decodeStatus(frame.payload))?.code == .notFound)
    }

    @Test("stream ids must increase; STATUS from a client and a late preface are protocol errors")
    func protocolErrors() {
        var m = T.open(authenticate: true)
        #expect(T.goAway(m.receive(.frame(T.headers(1)), now: T.t0))?.code == .invalidArgument)
        var n = T.open()
        #expect(T.goAway(n.receive(.frame(Frame(type: .status, streamID: 1)), now: T.t0))?.code == .invalidArgument)
        var p = T.open()
        #expect(T.goAway(p.receive(.preface, now: T.t0))?.code == .invalidArgument)
        var q = ConnectionStateMachine(limits: T.limits)
        let early = q.protocolError(RPCError(.resourceExhausted, "frame too big"))
        #expect(early.first == .writePreface, "a GOAWAY before the preface is preceded by the server's preface")
        #expect(q.notSpate().last == .close, "after GOAWAY the machine still closes")
    }

    @Test("at most max_streams concurrent calls; the next is RESOURCE_EXHAUSTED and the connection stays")
    func streamLimit() {
        var limits = T.limits
        limits.maxStreams = 2
        var m = T.open(limits)
        _ = m.receive(.frame(T.headers(1, method: "Watch")), now: T.t0)
        _ = m.receive(.frame(T.headers(3, method: "Watch")), now: T.t0)
        let a = m.receive(.frame(T.headers(5, method: "Watch")), now: T.t0)
        #expect(T.statuses(a).map(\.1.code) == [.resourceExhausted])
        #expect(!m.isClosing)
        #expect(T.statuses(m.receive(.frame(T.headers(7, method: "Nope")), now: T.t0)).isEmpty == false)
    }

    @Test("unknown methods are UNIMPLEMENTED")
    func unknownMethod() {
        var m = T.open()
        #expect(T.statuses(m.receive(.frame(T.headers(1, method: "Explode")), now: T.t0)).map(\.1.code) == [.unimplemented])
    }

    @Test("shutdown and a closed channel cancel every call and timer")
    func endings() {
        var m = T.open(authenticate: true)
        _ = m.receive(.frame(T.headers(3, method: "Watch")), now: T.t0)
        let a = m.shutdown()
        #expect(a.first == .cancelCall(3))
        #expect(T.goAway(a)?.code == .unavailable)
        var c = T.open(authenticate: true)
        _ = c.receive(.frame(T.headers(3, method: "Watch")), now: T.t0)
        let closed = c.channelClosed()
        #expect(closed.contains(.cancelCall(3)) && closed.contains(.cancelTimer(.idle)))
        #expect(c.channelClosed().isEmpty)
    }
}
