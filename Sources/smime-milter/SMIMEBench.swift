import ArgumentParser
import Foundation
import Gateway
import MIME
import SMIME
import Token

/// Messages per second for signing (next to the token's raw signature rate) and for verifying
/// (next to `openssl cms -verify` run over the same messages), at several sizes, in one run.
struct SMIMEBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smime", abstract: "Sign and verify whole messages; compare with the token and openssl cms.")

    @Option(name: .long, help: "Key URI (pkcs11:...?pin-source=file:/PATH).")
    var key: String

    @Option(name: .long, help: "PKCS#11 module path when the URI has none.")
    var module: String?

    @Option(name: .long, help: "Intermediate CA PEM file to include.")
    var chain: String?

    @Option(name: .long, help: "Take StateDirectory (where refused PINs are recorded) from this configuration file.")
    var config: String?

    @Option(name: .long, help: "Where refused PINs are recorded (default: the configuration's StateDirectory).")
    var stateDirectory: String?

    @Option(name: .long, help: "Trust anchor PEM file for verification.")
    var trust: String

    @Option(name: .long, help: "Seconds per measurement.")
    var seconds: Double = 2

    @Option(name: .long, help: "Rounds of openssl cms -verify per size.")
    var opensslRounds: Int = 20

    func run() throws {
        // The key table's defaults, as a configuration that sets none of these would have.
        let defaults = Configuration()
        let tokenKey = try TokenKey(
            uri: PKCS11URI(parsing: key), modulePath: module, poolSize: defaults.sessionPoolSize,
            waitTimeout: Double(defaults.signingTimeout),
            pinGuard: CommandPINGuard.make(config: config, stateDirectory: stateDirectory))
        let signer = try TokenSigner(key: tokenKey, chainFile: chain)
        let verifier = Verifier(
            trust: try TrustStore(
                anchors: [trust], intermediates: [], crlDirectory: nil, revocation: .none,
                fetchTimeout: defaults.crlFetchTimeout, fetchHosts: [], cacheDirectory: nil,
                gracePeriod: TimeInterval(defaults.crlGracePeriod)),
            signingTimeSkew: TimeInterval(defaults.signingTimeSkew),
            allowSHA1Signatures: defaults.allowSHA1Signatures)
        let skew = TimeInterval(defaults.signingTimeSkew)
        let raw = try tokenKey.measureRawSigning(seconds: seconds, data: [UInt8](repeating: 0x31, count: 200), scheme: signer.scheme)
        print("token: \(tokenKey.keyType) raw C_Sign \(String(format: "%.0f", raw))/s")
        let ratio = try Self.signingVersusRaw(
            key: tokenKey, signer: signer, digest: defaults.digestAlgorithm, skew: skew, seconds: seconds)
        print(
            String(
                format: "in-process signing at 4 KB / raw C_Sign: %.2f (target at least 0.90; %d slices of each in turn, this thread's CPU time)",
                ratio.ratio, ratio.slices))
        print(row("size", "sign/s", "vs token", "verify/s", "re-parsed/s", "openssl/s", "ratio"))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("smime-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (label, size) in [("4 KB", 4 << 10), ("100 KB", 100 << 10), ("10 MB", 10 << 20)] {
            let message = Self.message(size: size)
            func sign() throws -> [UInt8] {
                try Signing.sign(message: message, signer: signer, digest: defaults.digestAlgorithm, signingTimeSkew: skew)
            }
            let signRate = try rate(seconds) { _ = try sign() }
            let signed = try sign()
            // As the milter holds it: header fields one by one, the body apart.
            let whole = try Message(bytes: signed)
            let headers = whole.root.headers
            let body = Array(whole.bytes[whole.root.bodyRange])
            func verify(_ message: Message) throws {
                let verdict = Verification.verify(message: message, from: Verification.authorAddress(headers), verifier: verifier)
                guard verdict.result == .pass else { throw CommandFailure("verification gave \(verdict.result): \(verdict.reason)") }
            }
            let verifyRate = try rate(seconds) { try verify(Message(headers: headers, body: body)) }
            // Baseline: the whole message written out again and parsed from the start.
            let reparsedRate = try rate(seconds) {
                try verify(Message(bytes: headers.flatMap(\.canonicalBytes) + [0x0D, 0x0A] + body))
            }
            let path = directory + "/signed-\(size).eml"
            try Data(signed).write(to: URL(fileURLWithPath: path))
            let rounds = size > 1 << 20 ? max(3, opensslRounds / 4) : opensslRounds
            let start = Date()
            for _ in 0..<rounds {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
                process.arguments = ["cms", "-verify", "-in", path, "-CAfile", trust, "-out", "/dev/null"]
                process.standardError = FileHandle.nullDevice
                try process.run()
                process.waitUntilExit()
                guard process.terminationStatus == 0 else { throw CommandFailure("openssl cms -verify failed on \(label)") }
            }
            let opensslRate = Double(rounds) / Date().timeIntervalSince(start)
            print(
                row(
                    label, String(format: "%.0f", signRate), String(format: "%.2f", signRate / raw),
                    String(format: "%.0f", verifyRate), String(format: "%.0f", reparsedRate), String(format: "%.1f", opensslRate),
                    String(format: "%.1fx", verifyRate / opensslRate)))
        }
    }

    /// Whole 4 KB messages signed per CPU second against raw `C_Sign`s per CPU second, measured
    /// in slices taken in turn (so that a change in the machine's speed touches both), on this
    /// thread's CPU clock (the token, SoftHSM, runs on the calling thread: a machine loaded by
    /// other work takes wall time from both, not CPU time).
    static func signingVersusRaw(
        key: TokenKey, signer: any Signer, digest: DigestAlgorithm, skew: TimeInterval, seconds: Double
    ) throws -> (ratio: Double, slices: Int) {
        let message = Self.message(size: 4 << 10)
        let data = [UInt8](repeating: 0x31, count: 200)
        func cpu() -> Double {
            var now = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
            return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        }
        // Slices of about a tenth of `seconds` each, sized from one warm-up slice.
        var start = cpu()
        try key.signRaw(count: 20, data: data, scheme: signer.scheme)
        let perSignature = max(1e-6, (cpu() - start) / 20)
        let count = max(20, Int(seconds / 10 / perSignature))
        let slices = 10
        var raw = 0.0
        var signing = 0.0
        for _ in 0..<slices {
            start = cpu()
            try key.signRaw(count: count, data: data, scheme: signer.scheme)
            raw += cpu() - start
            start = cpu()
            for _ in 0..<count {
                _ = try Signing.sign(message: message, signer: signer, digest: digest, signingTimeSkew: skew)
            }
            signing += cpu() - start
        }
        return (raw / signing, slices)
    }

    /// Runs `work` for about `seconds` and returns how many times per second it ran.
    /// A message of about `size` octets: 8-bit Vietnamese text and a base64 attachment.
    static func message(size: Int) -> [UInt8] {
        let text = "Kính gửi Ủy ban nhân dân thị xã Mường Lay, Sở Thông tin và Truyền thông báo cáo.\r\n"
        var out = "From: stttt@dienbien.gov.vn\r\nTo: ubnd.muonglay@dienbien.gov.vn\r\nSubject: bench\r\n"
        out += "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
        out += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        out += String(repeating: text, count: max(1, min(size, 2048) / text.utf8.count))
        out += "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        let payload = (0..<max(0, (size - out.utf8.count) * 3 / 4)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        return Array(out.utf8) + Base64.encode(payload) + Array("--b--\r\n".utf8)
    }
}
