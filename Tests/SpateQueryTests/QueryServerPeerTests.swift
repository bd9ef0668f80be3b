import Foundation
import NIOCore
import SpateClient
import SpateModel
import SpateTestSupport
import SpateWire
import Testing

/// What a raw peer reads: the server's preface, then frames.
extension RawConnection {
    /// The next frame, or nil when the server closed or `timeout` passed.
    func nextFrame(timeout: Duration = .seconds(10)) -> Frame? {
        guard let header = try? read(count: FrameCodec.headerSize, timeout: timeout) else { return nil }
        let length = Int(header[8]) << 24 | Int(header[9]) << 16 | Int(header[10]) << 8 | Int(header[11])
        guard let payload = length == 0 ? [] : try? read(count: length, timeout: timeout) else { return nil }
        var buffer = ByteBuffer(bytes: header + payload)
        return try? FrameCodec.decode(&buffer, maxFrameSize: 64 << 20)
    }

    /// Sends the preface and checks the server's.
    func open() throws {
        try send(FrameCodec.preface)
        #expect(try read(count: 8, timeout: .seconds(10)) == FrameCodec.preface)
    }

    /// True when the server closes the connection within `timeout` (what it sent is dropped).
    func closes(within timeout: Duration) -> Bool {
        _ = try? readUntilClosed(timeout: timeout)
        return closedByPeer
    }
}

func headers(_ id: UInt32, _ method: String = "ListViews", token: String?, timeoutMs: UInt32 = 0, endStream: Bool = true) -> [UInt8] {
    FrameCodec.encode(
        Frame(
            type: .headers, flags: endStream ? .endStream : [], streamID: id,
            payload: WireMessages.encode(CallHeaders(method: method, timeoutMs: timeoutMs, metadata: token.map { ["authorization": "Bearer \($0)"] } ?? [:]))))
}

/// A ListViews HEADERS frame with `metadata` exactly as given (repeats and NUL included).
func rawHeaders(_ id: UInt32, _ metadata: [(String, String)]) -> [UInt8] {
    func field(_ n: UInt8, _ b: [UInt8]) -> [UInt8] { [n << 3 | 2, UInt8(b.count)] + b }
    let payload = field(1, Array("ListViews".utf8)) + metadata.flatMap { k, v in field(3, field(1, Array(k.utf8)) + field(2, Array(v.utf8))) }
    return FrameCodec.encode(Frame(type: .headers, flags: .endStream, streamID: id, payload: payload))
}

/// The token of the nodes these tests start.
let token = "t0ps3cret"

func status(_ f: Frame?) -> RPCError? { f.flatMap { $0.type == .status ? try? WireMessages.decodeStatus($0.payload) : nil } }
func goAway(_ f: Frame?) -> RPCError? { f.flatMap { $0.type == .goAway ? try? WireMessages.decodeGoAway($0.payload).error : nil } }

/// Issue 11's attacks against a real node with a token: each peer is refused or closed with the
/// documented code, and the node keeps answering.
@Suite("Query server: hostile peers against a node with a token", .serialized, .timeLimit(.minutes(5)))
struct QueryServerPeerTests {

    static func withNode(_ name: String, _ extra: [String: String] = [:], _ body: (String, NodeTestBed) async throws -> Void) async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: name) { bed in
            let tokenFile = bed.directory + "/token"
            try "\(token)\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            var query = ["token_file": tokenFile, "handshake_timeout": "1s"]
            query.merge(extra) { _, new in new }
            let (_, address) = try await startQueryNode(bed, query: query)
            try await body(address, bed)
            // Whatever was tried, a legitimate client is still answered.
            let client = try await SpateClient.connect(try ClientConfiguration(address: address, token: token))
            #expect(try await client.views().isEmpty == false)
            await client.close()
        }
    }

    @Test("before the token, a HEADERS announcing 4 MiB − 1 gets GOAWAY RESOURCE_EXHAUSTED without its body being read")
    func bigHeadersBeforeToken() async throws {
        try await Self.withNode("peer-big") { address, _ in
            let c = try RawConnection(address: address)
            try c.open()
            try c.send([1, 1, 0, 0, 0, 0, 0, 1, 0x00, 0x3f, 0xff, 0xff] + Array(repeating: 0, count: 100))
            #expect(goAway(c.nextFrame())?.code == .resourceExhausted)
            #expect(c.closes(within: .seconds(5)))
        }
    }

    @Test("a PING flood that never reads its answers ends with GOAWAY too_many_pings and a close")
    func pingFlood() async throws {
        try await Self.withNode("peer-ping") { address, _ in
            let c = try RawConnection(address: address)
            try c.open()
            let ping = FrameCodec.encode(Frame(type: .ping, streamID: 0, payload: [0, 0, 0, 0, 0, 0, 0, 1]))
            try? c.send(Array([[UInt8]](repeating: ping, count: 50_000).joined()))
            var frames: [Frame] = []
            while let f = c.nextFrame(timeout: .seconds(5)) { frames.append(f) }
            #expect(goAway(frames.last)?.message == "too_many_pings")
            #expect(frames.count <= 4)
            #expect(c.closes(within: .seconds(5)))
        }
    }

    @Test("a NUL after the token and two authorization entries are INVALID_ARGUMENT; the third bad call closes the connection")
    func badTokens() async throws {
        try await Self.withNode("peer-tokens") { address, _ in
            let c = try RawConnection(address: address)
            try c.open()
            // Encoded by hand: the client's protobuf-c encoder would cut the string at the NUL.
            try c.send(rawHeaders(1, [("authorization", "Bearer \(token)\u{0}junk")]))
            #expect(status(c.nextFrame())?.code == .invalidArgument)
            try c.send(rawHeaders(3, [("authorization", "Bearer \(token)"), ("authorization", "Bearer wrong")]))
            #expect(status(c.nextFrame())?.code == .invalidArgument)
            try c.send((0..<20).flatMap { headers(5 + 2 * $0, token: "wrong") })
            #expect(goAway(c.nextFrame())?.code == .unauthenticated)
            #expect(c.closes(within: .seconds(5)))
        }
    }

    @Test("silent connections, and connections that never present a token, are closed at handshake_timeout")
    func handshakeDeadline() async throws {
        try await Self.withNode("peer-silent") { address, _ in
            let silent = try RawConnection(address: address)
            let noToken = try RawConnection(address: address)
            try noToken.open()
            #expect(silent.closes(within: .seconds(10)))
            #expect(try silent.readUntilClosed(timeout: .milliseconds(1)).isEmpty)
            #expect(goAway(noToken.nextFrame())?.code == .unauthenticated)
            #expect(noToken.closes(within: .seconds(10)))
        }
    }

    @Test("beyond max_unauthenticated_connections a new connection gets GOAWAY RESOURCE_EXHAUSTED; slots free at handshake_timeout")
    func unauthenticatedCap() async throws {
        try await Self.withNode("peer-cap", ["max_unauthenticated_connections": "4"]) { address, _ in
            // startQueryNode's probe connection may still hold its slot for a moment.
            try await Task.sleep(for: .milliseconds(500))
            var held: [RawConnection] = []
            for _ in 0..<4 { held.append(try RawConnection(address: address)) }
            try await Task.sleep(for: .milliseconds(200))
            let refused = try RawConnection(address: address)
            let reply = try refused.readUntilClosed(timeout: .seconds(5))
            #expect(Array(reply.prefix(8)) == FrameCodec.preface, "\(reply)")
            var rest = ByteBuffer(bytes: reply.dropFirst(8))
            #expect(goAway(try FrameCodec.decode(&rest))?.code == .resourceExhausted)
            #expect(held.allSatisfy { $0.closes(within: .seconds(10)) })
        }
    }

    @Test("100 calls whose request never comes end with DEADLINE_EXCEEDED and free their stream slots")
    func requestNeverComes() async throws {
        try await Self.withNode("peer-nodata") { address, _ in
            let c = try RawConnection(address: address)
            try c.open()
            try c.send((0..<100).flatMap { headers(1 + 2 * UInt32($0), "Query", token: token, timeoutMs: 1000, endStream: false) })
            var codes: [StatusCode] = []
            for _ in 0..<100 { codes.append(status(c.nextFrame())?.code ?? .unknown) }
            #expect(codes.allSatisfy { $0 == .deadlineExceeded }, "\(Set(codes))")
            try c.send(headers(201, token: token))
            var answered: RPCError?
            while answered == nil, let f = c.nextFrame() { answered = status(f) }
            #expect(answered?.code == .ok)
        }
    }

    @Test("a request above max_request_size (400k quantiles) is INVALID_ARGUMENT; an unknown view's echo stays under 1 KiB")
    func bigRequests() async throws {
        try await Self.withNode("peer-bigreq") { address, _ in
            let client = try await SpateClient.connect(try ClientConfiguration(address: address, token: token))
            let many = await #expect(throws: RPCError.self) {
                _ = try await client.query(Query(range: .last(ms: 60_000), kind: .rttQuantiles(Array(repeating: 0.5, count: 400_000))))
            }
            #expect(many?.code == .invalidArgument)
            let name = String(repeating: "v", count: 60_000)
            let unknown = await #expect(throws: RPCError.self) { _ = try await client.query(Query(range: .last(ms: 60_000), view: name, kind: .totals)) }
            #expect(unknown?.code == .notFound)
            #expect((unknown?.message.utf8.count ?? 0) <= 1024)
            await client.close()
        }
    }

    @Test("TLS connections that never finish the handshake are closed at handshake_timeout")
    func tlsHandshakeDeadline() async throws {
        try await NodeTestBed.with(services: try TestServices.shared(), name: "peer-tls") { bed in
            let dir = bed.directory
            let r = try Shell.run("/usr/bin/openssl", [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                "-keyout", "\(dir)/server.key", "-out", "\(dir)/server.pem",
            ])
            #expect(r.status == 0, "\(r.output)")
            let (_, address) = try await startQueryNode(
                bed, query: ["tls_cert_file": "\(dir)/server.pem", "tls_key_file": "\(dir)/server.key", "handshake_timeout": "1s"])
            let silent = try RawConnection(address: address)
            let partial = try RawConnection(address: address)
            try partial.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])  // a ClientHello record that never completes
            #expect(silent.closes(within: .seconds(10)))
            #expect(partial.closes(within: .seconds(10)))
        }
    }
}
