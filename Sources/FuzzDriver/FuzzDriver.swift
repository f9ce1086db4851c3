// What the libFuzzer targets (MIMEFuzz, VerifyFuzz, ConfigFuzz) share: handing over from the
// executable's entry point to libFuzzer's driver, the entry point libFuzzer calls for each input,
// and, in a normal build, the reproducer that runs the same code over files.
import Foundation
import Synchronization

/// The target's code for one input, set once before libFuzzer's driver starts.
private let exercise = Mutex<(@Sendable ([UInt8]) -> Void)?>(nil)

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// Runs libFuzzer's driver with the process's arguments, `body` called for each input. SwiftPM
/// links an executable's entry point as `<Target>_main` and points `main` at it, so libFuzzer's
/// own `main` is not used: each target's `<Target>_main` calls this.
public func runLibFuzzer(
    _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ body: @escaping @Sendable ([UInt8]) -> Void
) -> Int32 {
    exercise.withLock { $0 = body }
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in
        guard let data else { return 0 }
        return fuzzOneInput(data, size)
    }
}

/// libFuzzer's own `main` (linked from its archive) looks for this symbol too.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let body = exercise.withLock { $0 }
    body?(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#endif

/// The reproducer of a normal build: runs `body` over each file named on the command line and
/// prints what it says of each, so that an input the fuzzer found can be replayed in a debugger.
public func reproduce(_ body: ([UInt8]) throws -> String) throws {
    for path in CommandLine.arguments.dropFirst() {
        print("\(path): \(try body(Array(try Data(contentsOf: URL(fileURLWithPath: path)))))")
    }
}
