// The MIME parser and signing preparation under libFuzzer.
//
// Built with -DFUZZING and -sanitize=fuzzer,address (`make fuzz`), this file only exports
// libFuzzer's entry point. Built normally, it is a reproducer: `MIMEFuzz FILE...` runs the same
// code over each file, so a crash input found by the fuzzer can be replayed in a debugger.
import FuzzDriver
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
@_cdecl("MIMEFuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { exercise($0) }
}
#else
@main
struct Reproducer {
    static func main() throws {
        try reproduce { bytes in
            exercise(bytes)
            return "ok"
        }
    }
}
#endif
