// The MIME parser and signing preparation under libFuzzer.
//
// Built with -DFUZZING and -sanitize=fuzzer,address (`make fuzz`), this file only exports
// libFuzzer's entry point. Built normally, it is a reproducer: `MIMEFuzz FILE...` runs the same
// code over each file, so a crash input found by the fuzzer can be replayed in a debugger.
import MIME

/// One input: parse, write back (must be identical), look for a signature, prepare for signing.
func exercise(_ bytes: [UInt8]) {
    let limits = MIMELimits(maximumHeaderBytes: 64 << 10, maximumHeaderCount: 500, maximumDepth: 16, maximumParts: 500)
    guard let message = try? Message(bytes: bytes, limits: limits) else { return }
    precondition(message.serialized() == bytes, "round trip changed the message")
    _ = try? SignedContent.find(in: message)
    if let prepared = try? SigningPreparation(
        headers: message.root.headers, body: Array(message.bytes[message.root.bodyRange]), limits: limits)
    {
        precondition(prepared.inner.allSatisfy { $0 < 0x80 }, "8-bit octet in the prepared entity")
    }
}

#if FUZZING
// SwiftPM links an executable's entry point as MIMEFuzz_main and points `main` at it, so
// libFuzzer's own main is not used: hand over to its driver from here instead.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

@_cdecl("MIMEFuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in
        guard let data else { return 0 }
        return fuzzOneInput(data, size)
    }
}

/// libFuzzer's own main (linked from its archive) looks for this symbol too.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    exercise(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
import Foundation

@main
struct Reproducer {
    static func main() throws {
        for path in CommandLine.arguments.dropFirst() {
            exercise(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
            print("ok: \(path)")
        }
    }
}
#endif
