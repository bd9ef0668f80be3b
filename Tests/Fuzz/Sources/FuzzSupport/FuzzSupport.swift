// What both fuzz targets share: the entry point, writing their seed corpus and dictionary
// (the export mode cluster/fuzz runs before fuzzing), and the check that a decoder
// failed the way docs/PROTOCOL.md says it may.
import CLibFuzzer
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import SpateWire

/// Runs libFuzzer with `testOneInput`. SwiftPM links an executable target's `main` to
/// `<module>_main` (on Linux, `--defsym main=fuzz_frame_main`), and `-parse-as-library` leaves
/// that undefined, so each target defines it with `@_cdecl` and calls this: the same driver
/// libFuzzer's own `main` runs, with the same command-line flags.
public func runLibFuzzer(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
    _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt {
    var argc = argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&argc, &argv, testOneInput)
}

/// The environment variable that switches a fuzz binary to export mode: when set to a
/// directory, `LLVMFuzzerInitialize` writes `<dir>/seeds/<name>` for every seed and, if there
/// are entries, `<dir>/dict` (libFuzzer's dictionary format), then exits 0 without fuzzing.
public let exportVariable = "SPATE_FUZZ_EXPORT"

/// Runs export mode if `SPATE_FUZZ_EXPORT` is set; returns otherwise.
public func exportIfAsked(seeds: [(String, [UInt8])], dictionary: [[UInt8]]) {
    guard let dir = getenv(exportVariable).map({ String(cString: $0) }), !dir.isEmpty else { return }
    mkdir(dir, 0o755)
    mkdir(dir + "/seeds", 0o755)
    for (name, bytes) in seeds { write(bytes, to: dir + "/seeds/" + name) }
    let entries = Set(dictionary.map { word in
        "\"" + word.map { b in
            b >= 0x20 && b < 0x7f && b != 0x22 && b != 0x5c ? String(UnicodeScalar(b)) : "\\x" + hex2(b)
        }.joined() + "\""
    }).sorted()
    if !entries.isEmpty { write(Array((entries.joined(separator: "\n") + "\n").utf8), to: dir + "/dict") }
    print("exported \(seeds.count) seeds and \(entries.count) dictionary entries to \(dir)")
    exit(0)
}

func hex2(_ b: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
}

func write(_ bytes: [UInt8], to path: String) {
    guard let f = fopen(path, "wb") else { fatalError("cannot create \(path)") }
    let n = bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, f) }
    fclose(f)
    guard n == bytes.count else { fatalError("cannot write \(path)") }
}

/// A decoder may only fail with an `RPCError` of the given code (INVALID_ARGUMENT for
/// messages, docs/PROTOCOL.md); anything else is a bug the fuzzer must report.
public func expectFailure(_ error: any Error, _ code: StatusCode, _ what: String) {
    guard let e = error as? RPCError else { fatalError("\(what) threw \(type(of: error)): \(error)") }
    guard e.code == code else { fatalError("\(what) threw \(e.code), expected \(code): \(e.message)") }
}
