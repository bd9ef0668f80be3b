// fuzz-frame: FrameCodec.decode over arbitrary bytes, fed the way a socket may deliver them.
//
// The input is a byte stream as read from a connection (after the preface). It is decoded
// whole, byte by byte, split once at a point derived from the input, and in pseudo-random
// chunks seeded by the input — each time the way QueryConnectionHandler does it: append the
// chunk, decode frames until one is incomplete or an error is thrown, discard read bytes.
// Every chunking must give the same frames, then the same error (or, without an error, the
// same number of bytes left waiting). An error is an expected outcome; a crash, a trap, an
// ASan report or a disagreement between chunkings is a bug. Each decoded frame must also
// re-encode and decode to itself.
import FuzzSupport
import NIOCore
import SpateWire

/// The smallest `query.max_frame_size` the node accepts (QueryConfiguration), so that frames
/// both over and under the limit fit in libFuzzer's inputs.
let maxFrameSize = 1024

struct Outcome: Equatable {
    var frames: [Frame] = []
    var error: RPCError?
    /// Bytes buffered at the end when no error ended the stream.
    var pending = 0
}

/// Decodes `stream` delivered in chunks of the sizes `next()` gives (each ≥ 1).
func decode(_ stream: UnsafeBufferPointer<UInt8>, chunks next: () -> Int) -> Outcome {
    var out = Outcome()
    var buffer = ByteBufferAllocator().buffer(capacity: 0)
    var i = 0
    repeat {
        let n = min(max(1, next()), stream.count - i)
        buffer.writeBytes(UnsafeBufferPointer(rebasing: stream[i..<(i + n)]))
        i += n
        do {
            while let frame = try FrameCodec.decode(&buffer, maxFrameSize: maxFrameSize) { out.frames.append(frame) }
        } catch let e as RPCError {
            out.error = e
            return out
        } catch {
            fatalError("FrameCodec.decode threw \(type(of: error)): \(error)")
        }
        buffer.discardReadBytes()
    } while i < stream.count
    out.pending = buffer.readableBytes
    return out
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
}

func check(_ stream: UnsafeBufferPointer<UInt8>) {
    let whole = decode(stream) { stream.count }
    // Frames decoded before an error are the ones a server would have handled.
    for frame in whole.frames {
        precondition(frame.payload.count <= maxFrameSize, "frame of \(frame.payload.count) bytes passed the \(maxFrameSize) limit")
        var again = ByteBuffer(bytes: FrameCodec.encode(frame))
        let back = try? FrameCodec.decode(&again, maxFrameSize: maxFrameSize)
        precondition(back == frame && again.readableBytes == 0, "\(frame) does not survive encode/decode: \(String(describing: back))")
    }
    func same(_ other: Outcome, _ how: String) {
        precondition(other == whole, "\(how) decodes differently:\n whole: \(whole)\n \(how): \(other)")
    }
    guard stream.count > 1 else { return }
    same(decode(stream) { 1 }, "byte by byte")
    // One split, at a point taken from the last byte (usually payload, so the fuzzer can move it).
    let cut = 1 + Int(stream[stream.count - 1]) % (stream.count - 1)
    var first = true
    same(
        decode(stream) {
            defer { first = false }
            return first ? cut : stream.count
        }, "split at \(cut)")
    // Chunks of 1...31 bytes, from a generator seeded by a hash of the input.
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in stream { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
    var rng = SplitMix64(state: hash)
    same(decode(stream) { 1 + Int(rng.next() % 31) }, "random chunks (seed \(hash))")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    check(UnsafeBufferPointer(start: data, count: size))
    return 0
}

/// The executable's entry point (see `runLibFuzzer`).
@_cdecl("fuzz_frame_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runLibFuzzer(argc, argv) { data, size in
        guard let data else { return fuzz(UnsafePointer(bitPattern: 1)!, 0) }
        return fuzz(data, size)
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    exportIfAsked(seeds: seeds(), dictionary: [])
    return 0
}

/// The golden frames of docs/PROTOCOL.md (Tests/SpateWireTests/FrameCodecTests.swift), each
/// alone and all in one stream, plus the edge cases the decoder has branches for.
func seeds() -> [(String, [UInt8])] {
    let golden: [(String, Frame)] = [
        ("headers", Frame(type: .headers, streamID: 1, payload: WireMessages.encode(CallHeaders(method: "Query", timeoutMs: 5000, metadata: ["authorization": "Bearer s3cret"])))),
        ("data", Frame(type: .data, flags: .endStream, streamID: 1, payload: [0x0a, 0x04, 0x18, 0xa0, 0xf7, 0x36, 0x62, 0x00])),
        ("status-ok", Frame(type: .status, flags: .endStream, streamID: 1, payload: WireMessages.encodeStatus(.ok, ""))),
        ("status-unauthenticated", Frame(type: .status, flags: .endStream, streamID: 3, payload: WireMessages.encodeStatus(.unauthenticated, "a token is required"))),
        ("cancel", Frame(type: .cancel, streamID: 5)),
        ("ping", Frame(type: .ping, streamID: 0, payload: [0, 0, 0, 0, 0, 0, 0, 42])),
        ("ping-ack", Frame(type: .ping, flags: .ack, streamID: 0, payload: [0, 0, 0, 0, 0, 0, 0, 42])),
        ("goaway", Frame(type: .goAway, streamID: 0, payload: WireMessages.encodeGoAway(lastStreamID: 3, .resourceExhausted, "frame of 16777216 bytes exceeds the limit of 4194304"))),
    ]
    var out = golden.map { ("golden-" + $0.0, FrameCodec.encode($0.1)) }
    out.append(("golden-stream", golden.flatMap { FrameCodec.encode($0.1) }))
    out.append(("unknown-type-then-cancel", [1, 0x63, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0xaa, 0xbb] + FrameCodec.encode(Frame(type: .cancel, streamID: 1))))
    out.append(("data-at-limit", FrameCodec.encode(Frame(type: .data, streamID: 7, payload: (0..<maxFrameSize).map { UInt8($0 & 0xff) }))))
    out.append(("oversized", [1, 2, 0, 0, 0, 0, 0, 1, 0, 0, 4, 1]))
    out.append(("incomplete", Array(FrameCodec.encode(golden[0].1).dropLast(3))))
    out.append(("version-2", [2, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]))
    out.append(("ping-short", [1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]))
    out.append(("headers-stream-0", [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
    return out
}
