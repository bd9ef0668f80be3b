internal import SpateProtos
#if canImport(Glibc)
import Glibc
#endif

/// Scratch memory for building protobuf-c messages from Swift values, and the protobuf-c
/// allocator for unpacking into. One per conversion; freed at once.
final class ProtoArena {
    let raw: OpaquePointer

    init() {
        guard let a = spate_arena_create(16 << 10) else { fatalError("ProtoArena: out of memory") }
        raw = a
    }

    deinit { spate_arena_destroy(raw) }

    var allocator: UnsafeMutablePointer<ProtobufCAllocator> { spate_arena_allocator(raw) }

    func make<T>(_: T.Type, _ initialize: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let p = spate_arena_alloc(raw, MemoryLayout<T>.stride)!.bindMemory(to: T.self, capacity: 1)
        initialize(p)
        return p
    }

    func array<T>(_: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        spate_arena_alloc(raw, MemoryLayout<T>.stride * max(1, count))!.bindMemory(to: T.self, capacity: max(1, count))
    }

    /// A NUL-terminated copy of `s` (NUL bytes inside `s` end the C string).
    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        var s = s
        return s.withUTF8 { u in u.withMemoryRebound(to: CChar.self) { spate_arena_strndup(raw, $0.baseAddress, $0.count)! } }
    }

    /// A C array of pointers built from `values`.
    func pointers<V, T>(_ values: [V], _ build: (V) -> UnsafeMutablePointer<T>) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<T>?>?) {
        guard !values.isEmpty else { return (0, nil) }
        let a = array(UnsafeMutablePointer<T>?.self, count: values.count)
        for (i, v) in values.enumerated() { a[i] = build(v) }
        return (values.count, a)
    }

    func strings(_ values: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        pointers(values) { string($0) }
    }
}

/// Packs a message given its protobuf-c size and pack functions.
func pack<T>(_ message: UnsafeMutablePointer<T>, _ size: (UnsafePointer<T>) -> Int, _ pack: (UnsafePointer<T>, UnsafeMutablePointer<UInt8>) -> Int) -> [UInt8] {
    let n = size(message)
    return [UInt8](unsafeUninitializedCapacity: max(1, n)) { buffer, count in
        count = pack(message, buffer.baseAddress!)
    }
}

/// Unpacks `bytes` with protobuf-c into `arena` and converts the result; malformed input is
/// INVALID_ARGUMENT.
func unpack<T, R>(
    _ bytes: [UInt8], _ name: String, _ arena: ProtoArena,
    _ unpacker: (UnsafeMutablePointer<ProtobufCAllocator>, Int, UnsafePointer<UInt8>) -> UnsafeMutablePointer<T>?,
    _ convert: (UnsafeMutablePointer<T>) throws -> R
) throws -> R {
    var zero: UInt8 = 0
    let message = bytes.withUnsafeBufferPointer { b in
        withUnsafePointer(to: &zero) { z in unpacker(arena.allocator, b.count, b.baseAddress ?? z) }
    }
    guard let message else { throw RPCError(.invalidArgument, "malformed \(name) message (\(bytes.count) bytes)") }
    return try convert(message)
}

/// A Swift String from a protobuf-c string field (invalid UTF-8 is repaired).
func text(_ p: UnsafeMutablePointer<CChar>?) -> String {
    guard let p else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: p, count: strlen(p)), as: UTF8.self)
}

/// The elements of a protobuf-c repeated field.
func elements<T>(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?) -> [UnsafeMutablePointer<T>] {
    guard let p else { return [] }
    return (0..<n).compactMap { p[$0] }
}

func stringElements(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
    guard let p else { return [] }
    return (0..<n).map { text(p[$0]) }
}
