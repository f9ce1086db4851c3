// The configuration and table parsers under libFuzzer: the configuration file, the signing
// table, the units table, the authorized signers table and an internal hosts file. Each input
// is parsed as every one of them; any outcome but a value or a `ConfigurationError` that names
// the file, the line (when the problem is on one) and a fix is a finding.
//
// Built with -DFUZZING and -sanitize=fuzzer,address (`make fuzz`), this file only exports
// libFuzzer's entry point. Built normally, it is a reproducer: `ConfigFuzz FILE...` runs the same
// code over each file and prints what each parser says.
import Foundation
import FuzzDriver
import Gateway

/// Where an internal hosts file is written for `HostList` to read (it reads only named files).
let hostsFile = FileManager.default.temporaryDirectory.path + "/config-fuzz-hosts-\(getpid())"

/// What each parser made of the input: nil for a value, else the error's text.
func exercise(_ bytes: [UInt8]) -> [(String, String?)] {
    let text = String(decoding: bytes, as: UTF8.self)
    let lineCount = text.unicodeScalars.filter { $0 == "\n" }.count + 1
    func check(_ name: String, _ parse: () throws -> Void) -> (String, String?) {
        do {
            try parse()
            return (name, nil)
        } catch let error as ConfigurationError {
            precondition(!error.message.isEmpty && !error.hint.isEmpty, "\(name): an error without a problem or a fix")
            if let line = error.line {
                precondition((1...lineCount).contains(line), "\(name): line \(line) of \(lineCount)")
            }
            return (name, error.description)
        } catch {
            preconditionFailure("\(name): \(error) is not a ConfigurationError")
        }
    }
    _ = FileManager.default.createFile(atPath: hostsFile, contents: Data(bytes))
    defer { try? FileManager.default.removeItem(atPath: hostsFile) }
    return [
        check("configuration") { _ = try Configuration.parse(text, file: "fuzz.conf") },
        check("signing table") { _ = try SigningTable.parse(text, file: "signing.table") },
        check("units") { _ = try Units.parse(text, file: "units") },
        check("authorized signers") { _ = try AuthorizedSigners.parse(text, file: "authorized") },
        check("internal hosts") { _ = try HostList(entries: [hostsFile], file: "fuzz.conf", line: 1) },
    ]
}

#if FUZZING
@_cdecl("ConfigFuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv) { _ = exercise($0) }
}
#else
@main
struct Reproducer {
    static func main() throws {
        try reproduce { bytes in
            exercise(bytes).map { parser, error in "\(parser): \(error ?? "ok")" }.joined(separator: "; ")
        }
    }
}
#endif
