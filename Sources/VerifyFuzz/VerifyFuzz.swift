// The verifying path under libFuzzer: message bytes to verdict and header fields, as the
// gateway handles an incoming message (Date and address parsing, RFC 2047, CMS extraction,
// S/MIME verification, Authentication-Results and the readable header in both languages).
//
// Built with -DFUZZING and -sanitize=fuzzer,address (`make fuzz`), this file only exports
// libFuzzer's entry point. Built normally, it is a reproducer: `VerifyFuzz FILE...` runs the same
// code over each file. Either way the trust anchors are the PEM file named by
// SMIME_FUZZ_TRUST (the seed corpus's trust.pem, from scripts/make-verify-seeds.sh); revocation
// is off, so nothing is fetched.
import Foundation
import FuzzDriver
import Gateway
import Logging
import MIME
import SMIME

/// The gateway's state directory: nothing is written there with revocation off (its empty
/// crl-cache directory is made). One of this process's own, so that two runs at once do not
/// share it; removed when the process exits.
let stateDirectory: String = {
    var template = Array((FileManager.default.temporaryDirectory.path + "/smime-milter-verify-fuzz.XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else {
        fatalError("cannot make a directory in \(FileManager.default.temporaryDirectory.path): errno \(errno)")
    }
    atexit { try? FileManager.default.removeItem(atPath: stateDirectory) }
    return String(cString: made)
}()

/// The gateway, made once as the daemon makes it at start-up: verify only, revocation off.
let gateway: Gateway = {
    guard let trust = ProcessInfo.processInfo.environment["SMIME_FUZZ_TRUST"] else {
        fatalError("set SMIME_FUZZ_TRUST to the PEM file of the trust anchors (Tests/FuzzSeeds/Verify/trust.pem)")
    }
    var configuration = Configuration()
    configuration.mode = "v"
    configuration.authservID = "mx.dienbien.gov.vn"
    configuration.trustAnchors = [trust]
    configuration.revocationCheck = .none
    configuration.stateDirectory = stateDirectory
    configuration.subjectTag = "[Chữ ký sai]"
    configuration.headerLanguage = .vi
    configuration.localDomains = ["dienbien.gov.vn"]
    let quiet = Logger(label: "verify-fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    do {
        return try Gateway.load(configuration, statistics: Statistics(), logger: quiet)
    } catch {
        fatalError("loading the fuzz configuration failed: \(error)")
    }
}()

let envelope = Envelope(
    clientAddress: "192.0.2.25", daemonName: "smtpd", authType: nil, authLogin: nil, sender: "a@example.org",
    recipients: ["ubnd@muonglay.dienbien.gov.vn", "x@example.org"], queueID: "4ABC123")

/// A header value the milter may hand to the MTA: no NUL, and every line break folds (CRLF or
/// LF followed by white space).
func checkHeaderValue(_ name: String, _ value: String) {
    let bytes = Array(value.utf8)
    precondition(!bytes.contains(0), "NUL in \(name)")
    for (index, byte) in bytes.enumerated() where byte == 0x0A || byte == 0x0D {
        if byte == 0x0D {
            precondition(index + 1 < bytes.count && bytes[index + 1] == 0x0A, "bare CR in \(name)")
            continue
        }
        precondition(
            index + 1 < bytes.count && (bytes[index + 1] == 0x20 || bytes[index + 1] == 0x09),
            "unfolded line break in \(name)")
    }
}

/// One input: split into header fields and body as the milter receives them, decide, and
/// render every header field and log line the verdict makes.
func exercise(_ bytes: [UInt8]) {
    guard let message = try? Message(bytes: bytes) else { return }
    let headers = message.root.headers
    let body = Array(message.bytes[message.root.bodyRange])
    let decision = gateway.decide(envelope: envelope, headers: headers, body: body)
    _ = decision.summary
    for action in decision.actions {
        if case .header(let edit) = action {
            switch edit {
            case .insert(_, let name, let value): checkHeaderValue(name, value)
            case .change(let name, _, let value): checkHeaderValue(name, value)
            default: break
            }
        }
    }
    if case .verified(let verdict) = decision.outcome {
        for language in VerdictReason.Language.allCases {
            checkHeaderValue("readable", VerificationHeaders.readable(verdict, language: language))
        }
        checkHeaderValue(
            "Authentication-Results",
            VerificationHeaders.authenticationResults(verdict, authservID: gateway.configuration.authservID))
    }
}

#if FUZZING
@_cdecl("VerifyFuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    _ = gateway
    return runLibFuzzer(argc, argv) { exercise($0) }
}
#else
@main
struct Reproducer {
    static func main() throws {
        try reproduce { bytes in
            exercise(bytes)
            let message = try Message(bytes: bytes)
            return gateway.decide(
                envelope: envelope, headers: message.root.headers, body: Array(message.bytes[message.root.bodyRange])
            ).summary
        }
    }
}
#endif
