import NIOCore
import SpateServer
import SpateWire

/// Frames and limits shared by the server tests.
enum T {
    static let token = "s3cret"
    static var limits: ServerLimits {
        var l = ServerLimits.defaults
        l.token = token
        return l
    }
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    static func headers(
        _ id: UInt32, method: String = "ListViews", token: String? = T.token, timeoutMs: UInt32 = 0, endStream: Bool = true,
        metadata: [(key: String, value: String)]? = nil
    ) -> Frame {
        let md = metadata ?? (token.map { [("authorization", "Bearer \($0)")] } ?? [])
        return Frame(type: .headers, flags: endStream ? .endStream : [], streamID: id, payload: encodeHead(method, timeoutMs, md))
    }

    /// A RequestHeaders encoding written by hand, so it can carry what the client's encoder
    /// would never produce (duplicates, NUL).
    static func encodeHead(_ method: String, _ timeoutMs: UInt32, _ metadata: [(key: String, value: String)]) -> [UInt8] {
        var out: [UInt8] = []
        func varint(_ v: UInt64) {
            var v = v
            while v >= 0x80 {
                out.append(UInt8(v & 0x7f) | 0x80)
                v >>= 7
            }
            out.append(UInt8(v))
        }
        func field(_ n: UInt64, _ bytes: [UInt8]) {
            varint(n << 3 | 2)
            varint(UInt64(bytes.count))
            out += bytes
        }
        field(1, Array(method.utf8))
        if timeoutMs > 0 {
            varint(2 << 3)
            varint(UInt64(timeoutMs))
        }
        for (k, v) in metadata {
            var entry: [UInt8] = []
            swap(&entry, &out)
            field(1, Array(k.utf8))
            field(2, Array(v.utf8))
            swap(&entry, &out)
            field(3, entry)
        }
        return out
    }

    static func data(_ id: UInt32, _ payload: [UInt8] = [1, 2]) -> Frame { Frame(type: .data, flags: .endStream, streamID: id, payload: payload) }
    static func ping(_ n: UInt8 = 0) -> Frame { Frame(type: .ping, streamID: 0, payload: [0, 0, 0, 0, 0, 0, 0, n]) }

    /// The STATUS frames among `actions`, as (stream, error).
    static func statuses(_ actions: [ConnectionStateMachine.Action]) -> [(UInt32, RPCError)] {
        actions.compactMap { a -> (UInt32, RPCError)? in
            guard case .write(let f) = a, f.type == .status, let e = try? WireMessages.decodeStatus(f.payload) else { return nil }
            return (f.streamID, e)
        }
    }

    /// The GOAWAY among `actions`, decoded.
    static func goAway(_ actions: [ConnectionStateMachine.Action]) -> RPCError? {
        for a in actions {
            if case .goAway(let f) = a { return try? WireMessages.decodeGoAway(f.payload).error }
        }
        return nil
    }

    /// A machine past the preface (and, with a token, past a first valid call on stream 1 that finished).
    static func open(_ limits: ServerLimits = T.limits, authenticate: Bool = false) -> ConnectionStateMachine {
        var m = ConnectionStateMachine(limits: limits)
        _ = m.activate()
        _ = m.receive(.preface, now: t0)
        if authenticate {
            _ = m.receive(.frame(headers(1)), now: t0)
            _ = m.callFinished(1, RPCError(.ok, ""))
        }
        return m
    }
}
