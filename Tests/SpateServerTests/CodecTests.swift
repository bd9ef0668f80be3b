import NIOCore
import SpateServer
import SpateWire
import Testing

@Suite("Server frame decoder and request heads")
struct CodecTests {
    static func stream(_ frames: [Frame]) -> [UInt8] { FrameCodec.preface + frames.flatMap { FrameCodec.encode($0) } }

    static func decodeAll(_ chunks: [[UInt8]], limit: Int = 4 << 20) throws -> [ServerInbound] {
        var decoder = FrameDecoder(limit: FrameLimit(limit))
        var buffer = ByteBuffer()
        var out: [ServerInbound] = []
        for c in chunks {
            buffer.writeBytes(c)
            while let item = try decoder.next(&buffer) { out.append(item) }
        }
        return out
    }

    @Test("the preface and frames come out the same fed whole, byte by byte, or in chunks")
    func chunking() throws {
        let frames = [T.headers(1), T.data(1, Array(repeating: 7, count: 3000)), T.ping(3), Frame(type: .cancel, streamID: 1)]
        let bytes = Self.stream(frames)
        let expected = [ServerInbound.preface] + frames.map { .frame($0) }
        #expect(try Self.decodeAll([bytes]) == expected)
        #expect(try Self.decodeAll(bytes.map { [$0] }) == expected)
        var rng = SystemRandomNumberGenerator()
        var chunks: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            let n = Int.random(in: 1...700, using: &rng)
            chunks.append(Array(bytes[i..<min(bytes.count, i + n)]))
            i += n
        }
        #expect(try Self.decodeAll(chunks) == expected)
    }

    @Test("a wrong preface is not this protocol, found at its first wrong byte")
    func wrongPreface() {
        #expect(throws: NotSpateProtocolError.self) { try Self.decodeAll([Array("GET / HTTP/1.1\r\n".utf8)]) }
        #expect(throws: NotSpateProtocolError.self) { try Self.decodeAll([Array("SPX".utf8)]) }
        #expect((try? Self.decodeAll([Array("SPA".utf8)])) == [])
    }

    @Test("before authentication a frame above the small limit is refused from its header alone")
    func preAuthLimit() throws {
        // 4 MiB − 1 announced, 100 bytes sent: refused without waiting for the rest.
        let header: [UInt8] = [1, 1, 0, 0, 0, 0, 0, 1, 0x00, 0x3f, 0xff, 0xff]
        let e = #expect(throws: RPCError.self) { try Self.decodeAll([FrameCodec.preface + header + Array(repeating: 0, count: 100)], limit: 16 << 10) }
        #expect(e?.code == .resourceExhausted)
        // Raised after authentication, the same frame is awaited.
        #expect(try Self.decodeAll([FrameCodec.preface + header + Array(repeating: 0, count: 100)]) == [.preface])
    }

    @Test("after a large frame the buffer shrinks back")
    func shrinks() throws {
        var decoder = FrameDecoder(limit: FrameLimit(4 << 20))
        var buffer = ByteBuffer()
        buffer.writeBytes(Self.stream([T.data(1, Array(repeating: 1, count: 2 << 20)), T.ping()]) + [1, 5, 0])
        #expect(buffer.capacity >= 2 << 20)
        #expect(try decoder.next(&buffer) == .preface)
        #expect(try decoder.next(&buffer) != nil)
        #expect(buffer.capacity <= 64 << 10, "capacity \(buffer.capacity) kept after a 2 MiB frame")
        #expect(try decoder.next(&buffer) == .frame(T.ping()))
        #expect(try decoder.next(&buffer) == nil)
        #expect(buffer.readableBytes == 3)
    }

    @Test("request heads from the client's own encoder are read back")
    func clientEncoding() throws {
        let bytes = WireMessages.encode(CallHeaders(method: "Query", timeoutMs: 5000, metadata: ["authorization": "Bearer s3cret", "x": "y"]))
        let head = try RequestHead(decoding: bytes, maxMetadataEntries: 16)
        #expect(head.method == "Query" && head.timeoutMs == 5000)
        #expect(head.value("authorization") == "Bearer s3cret" && head.value("x") == "y")
    }

    @Test("NUL, bad UTF-8, repeated keys, too many entries and truncation are INVALID_ARGUMENT", arguments: [
        T.encodeHead("Status\u{0}", 0, []),
        T.encodeHead("Status", 0, [("a", "1"), ("a", "2")]),
        T.encodeHead("Status", 0, (0..<17).map { (key: "k\($0)", value: "v") }),
        [0x0a, 0x02, 0xff, 0xfe],
        [0x0a, 0x05, 0x41],
        [0x10],
        [0x1a, 0x03, 0x0a, 0x09, 0x41],
        [0x0f],
        [0x00],
        Array(repeating: 0xff, count: 20),
    ])
    func strict(_ bytes: [UInt8]) {
        let e = #expect(throws: RPCError.self) { _ = try RequestHead(decoding: bytes, maxMetadataEntries: 16) }
        #expect(e?.code == .invalidArgument)
    }

    @Test("random bytes never trap the head reader")
    func randomHeads() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? RequestHead(decoding: bytes, maxMetadataEntries: 16)
        }
    }
}

@Suite("Stream state machine (no I/O)")
struct StreamStateMachineTests {
    @Test("request, answers, status: one of each in order")
    func happyPath() {
        var s = StreamStateMachine(method: .query)
        #expect(s.state == .awaitingRequest)
        #expect(s.produce([1], writable: true, maxSize: 10) == .ignore, "no answer before the request")
        let first = s.receiveRequest()
        let second = s.receiveRequest()
        #expect(first && !second)
        #expect(s.produce([1], writable: true, maxSize: 10) == .write([1]))
        #expect(s.finish(RPCError(.ok, "")) == .writeStatus(RPCError(.ok, "")))
        #expect(s.finish(RPCError(.internal, "")) == .ignore)
        #expect(s.produce([2], writable: true, maxSize: 10) == .ignore)
    }

    @Test("while the peer does not read only the newest answer is kept, and the status waits behind it")
    func newest() {
        var s = StreamStateMachine(method: .watch)
        _ = s.receiveRequest()
        #expect(s.produce([1], writable: false, maxSize: 10) == .held)
        #expect(s.produce([2], writable: false, maxSize: 10) == .held)
        #expect(s.produce([3], writable: true, maxSize: 10) == .held, "order: nothing overtakes a held answer")
        #expect(s.replaced == 2)
        #expect(s.finish(RPCError(.cancelled, "")) == .held)
        let (answer, status) = s.drain()
        #expect(answer == [3] && status == RPCError(.cancelled, ""))
        #expect(s.state == .closed)
    }

    @Test("too large an answer is refused; a cancelled stream drops everything")
    func limits() {
        var s = StreamStateMachine(method: .query)
        _ = s.receiveRequest()
        #expect(s.produce([1, 2, 3], writable: true, maxSize: 2) == .tooLarge(3))
        _ = s.produce([1], writable: false, maxSize: 2)
        s.cancel()
        #expect(!s.isHolding)
        #expect(s.finish(RPCError(.ok, "")) == .ignore)
    }

    @Test("a request that never came still ends with one status")
    func neverStarted() {
        var s = StreamStateMachine(method: .query)
        #expect(s.finish(RPCError(.deadlineExceeded, "")) == .writeStatus(RPCError(.deadlineExceeded, "")))
    }
}
