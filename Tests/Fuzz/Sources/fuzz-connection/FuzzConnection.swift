// fuzz-connection: the server's FrameDecoder and ConnectionStateMachine over arbitrary bytes
// and an arbitrary interleaving of what else happens to a connection.
//
// The input's first byte picks the setting (with or without a token, the preface sent by the
// harness or left to the input); the rest is the connection's byte stream, decoded in chunks
// by `FrameDecoder` (whose frame limit follows the machine's `authenticated` action), and
// between items the harness injects events from a generator seeded by the input: timers
// firing, calls producing answers or finishing, writability changing, time passing. The
// machine's actions are checked against the protocol's rules: exactly one STATUS per call,
// nothing written or started after GOAWAY or close, no answer for a call that did not start
// or already ended, no frame above the outbound limit, never more calls than the stream limit,
// and when the channel closes every started call is ended or cancelled. A decoder error must
// be `NotSpateProtocolError` or an `RPCError`. A crash, a trap, an ASan report or a broken
// rule is a bug.
import FuzzSupport
import NIOCore
import SpateServer
import SpateWire

/// Small limits, so that inputs of a few KB cross every one of them (the outbound limit stays
/// above the 1 KiB a STATUS message is cut to, as the real 4 MiB is).
func limits(token: Bool) -> ServerLimits {
    ServerLimits(
        maxFrameSize: 2048, maxPreAuthFrameSize: 256, maxOutboundFrameSize: 1536, maxRequestSize: 256, maxStreams: 4,
        maxMetadataEntries: 4, maxDeadline: .seconds(60), requestTimeout: .seconds(10), handshakeTimeout: .seconds(10),
        idleTimeout: .seconds(300), maxFailedTokens: 3, minPingInterval: .seconds(1), maxPingStrikes: 2,
        writeStallTimeout: .seconds(30), goAwayTimeout: .seconds(1), token: token ? "tok" : nil)
}

/// SplitMix64, seeded from the input so that a crash reproduces from its file alone.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
}

/// What the harness knows of the connection, to check the machine's actions.
struct Model {
    let limits: ServerLimits
    /// Calls started whose STATUS has not been written and that were not cancelled.
    var running: Set<UInt32> = []
    /// Call tasks alive: started, not finished (the harness says when) and not cancelled.
    var tasks: Set<UInt32> = []
    var ended: Set<UInt32> = []
    var over = false
    var closed = false

    mutating func apply(_ actions: [ConnectionStateMachine.Action], limit: FrameLimit) {
        for action in actions {
            switch action {
            case .writePreface:
                precondition(!over, "preface after GOAWAY or close")
            case .write(let frame):
                precondition(!over, "\(frame.type) written after GOAWAY or close")
                precondition(frame.payload.count <= limits.maxOutboundFrameSize, "a frame of \(frame.payload.count) bytes")
                switch frame.type {
                case .status:
                    precondition(frame.payload.count <= 1100, "a STATUS of \(frame.payload.count) bytes")
                    precondition(!ended.contains(frame.streamID), "a second STATUS on stream \(frame.streamID)")
                    ended.insert(frame.streamID)
                    running.remove(frame.streamID)
                case .data:
                    precondition(running.contains(frame.streamID), "DATA on stream \(frame.streamID), which is not running")
                case .ping:
                    precondition(frame.flags.contains(.ack) && frame.streamID == 0, "a PING that is not an answer")
                default:
                    preconditionFailure("the server wrote \(frame.type) as a plain write")
                }
            case .startCall(let id, _, _):
                precondition(!over, "a call started after GOAWAY or close")
                precondition(!running.contains(id) && !ended.contains(id), "stream \(id) started twice")
                running.insert(id)
                tasks.insert(id)
                precondition(running.count <= limits.maxStreams, "\(running.count) calls running")
            case .cancelCall(let id):
                precondition(tasks.contains(id), "cancelling stream \(id), whose task is not alive")
                tasks.remove(id)  // its STATUS may still follow (CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED)
            case .goAway:
                precondition(!over, "a second GOAWAY")
                over = true
            case .close:
                over = true
                closed = true
            case .authenticated(let frameLimit):
                limit.value = frameLimit
            case .schedule, .cancelTimer:
                break
            }
        }
    }
}

func check(_ input: UnsafeBufferPointer<UInt8>) {
    guard let mode = input.first else { return }
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in input { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
    var rng = SplitMix64(state: hash)
    let l = limits(token: mode & 1 == 1)
    var machine = ConnectionStateMachine(limits: l)
    let limit = FrameLimit(l.initialFrameLimit)
    var decoder = FrameDecoder(limit: limit)
    var model = Model(limits: l)
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    model.apply(machine.activate(), limit: limit)

    var stream = Array(input.dropFirst())
    if mode & 2 == 0 { stream = FrameCodec.preface + stream }
    var buffer = ByteBuffer()
    var i = 0
    while i < stream.count && !model.closed {
        let n = min(stream.count - i, 1 + rng.below(64))
        buffer.writeBytes(stream[i..<(i + n)])
        i += n
        while !model.closed {
            let item: ServerInbound?
            do { item = try decoder.next(&buffer) } catch let e as RPCError {
                model.apply(machine.protocolError(e), limit: limit)
                break
            } catch is NotSpateProtocolError {
                model.apply(machine.notSpate(), limit: limit)
                break
            } catch {
                fatalError("FrameDecoder threw \(type(of: error)): \(error)")
            }
            guard let item else { break }
            if case .frame(let f) = item { precondition(f.payload.count <= limit.value, "a frame above the limit passed") }
            model.apply(machine.receive(item, now: now), limit: limit)
            inject(&machine, &model, &rng, &now, limit)
        }
        if model.over { break }
    }
    // Whatever is still running ends when the channel closes.
    model.apply(machine.channelClosed(), limit: limit)
    precondition(model.tasks.isEmpty, "call tasks \(model.tasks) neither finished nor cancelled at close")
}

/// Up to three things that happen between frames.
func inject(_ machine: inout ConnectionStateMachine, _ model: inout Model, _ rng: inout SplitMix64, _ now: inout NIODeadline, _ limit: FrameLimit) {
    for _ in 0..<rng.below(4) {
        now = now + .milliseconds(Int64(rng.below(2000)))
        let running = model.running.sorted()
        let someStream = running.isEmpty ? UInt32(rng.below(16)) : running[rng.below(running.count)]
        let actions: [ConnectionStateMachine.Action]
        switch rng.below(9) {
        case 0: actions = machine.timerFired(.handshake)
        case 1: actions = machine.timerFired(.idle)
        case 2: actions = machine.timerFired(.writeStall)
        case 3: actions = machine.timerFired(.stream(someStream))
        case 4:
            guard model.tasks.contains(someStream) else { continue }
            actions = machine.callProduced(someStream, [UInt8](repeating: 7, count: rng.below(2000)))
        case 5:
            // Only a task that is alive can finish (the handler runs one per started call).
            guard model.tasks.contains(someStream) else { continue }
            model.tasks.remove(someStream)
            actions = machine.callFinished(someStream, RPCError(StatusCode(rawValue: UInt32(rng.below(17))), String(repeating: "x", count: rng.below(3000))))
        case 6: actions = machine.writabilityChanged(rng.below(2) == 0)
        case 7: actions = machine.timerFired(.goAwayClose)
        default: actions = []
        }
        model.apply(actions, limit: limit)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    check(UnsafeBufferPointer(start: data, count: size))
    return 0
}

/// The executable's entry point (see `runLibFuzzer`).
@_cdecl("fuzz_connection_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runLibFuzzer(argc, argv) { data, size in
        guard let data else { return fuzz(UnsafePointer(bitPattern: 1)!, 0) }
        return fuzz(data, size)
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    exportIfAsked(seeds: seeds(), dictionary: [Array("authorization".utf8), Array("Bearer tok".utf8), Array("ListViews".utf8), Array("Watch".utf8)])
    return 0
}

/// Calls as a client makes them, with and without the token, and the edge cases.
func seeds() -> [(String, [UInt8])] {
    func headers(_ id: UInt32, _ method: String, token: String?, end: Bool = true, timeoutMs: UInt32 = 0) -> [UInt8] {
        FrameCodec.encode(
            Frame(
                type: .headers, flags: end ? .endStream : [], streamID: id,
                payload: WireMessages.encode(CallHeaders(method: method, timeoutMs: timeoutMs, metadata: token.map { ["authorization": "Bearer \($0)"] } ?? [:]))))
    }
    let ping = FrameCodec.encode(Frame(type: .ping, streamID: 0, payload: [0, 0, 0, 0, 0, 0, 0, 1]))
    return [
        ("token-calls", [1] + headers(1, "ListViews", token: "tok") + headers(3, "Query", token: "tok", end: false, timeoutMs: 500)
            + FrameCodec.encode(Frame(type: .data, flags: .endStream, streamID: 3, payload: [0x0a, 0x04, 0x18, 0xa0, 0xf7, 0x36, 0x62, 0x00]))
            + FrameCodec.encode(Frame(type: .cancel, streamID: 3))),
        ("no-token", [0] + headers(1, "Watch", token: nil) + headers(3, "Status", token: nil) + ping + ping),
        ("wrong-tokens", [1] + headers(1, "ListViews", token: "bad") + headers(3, "ListViews", token: nil) + headers(5, "ListViews", token: "x")),
        ("ping-flood", [0] + Array([[UInt8]](repeating: ping, count: 8).joined())),
        ("big-before-token", [1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 4, 0]),
        ("raw-preface", [3] + FrameCodec.preface + headers(1, "ListViews", token: "tok")),
        ("not-spate", [2] + Array("GET / HTTP/1.1\r\n".utf8)),
    ]
}
