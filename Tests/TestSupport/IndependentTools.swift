import Foundation
import Synchronization

private let agentHomes = Mutex<[String]>([])

/// OpenSSL, gpgsm and NSS as independent verifiers and signers, each with a home of its own in
/// a test directory, trusting the test root.
public final class IndependentTools: @unchecked Sendable {
    public let pki: TestPKI
    public let directory: String
    public let gnupgHome: String
    public let nssDatabase: String

    /// Sets up a gpgsm home and an NSS database that trust the test root and hold the file-only
    /// `vanphong` key (for signing as another implementation).
    public init(pki: TestPKI) throws {
        self.pki = pki
        directory = try pki.temporaryDirectory("tools")
        gnupgHome = directory + "/gnupg"
        nssDatabase = directory + "/nss"
        try FileManager.default.createDirectory(atPath: gnupgHome, withIntermediateDirectories: true)
        chmod(gnupgHome, 0o700)
        try "disable-crl-checks\ndisable-policy-checks\n".write(toFile: gnupgHome + "/gpgsm.conf", atomically: true, encoding: .utf8)
        try "allow-loopback-pinentry\n".write(toFile: gnupgHome + "/gpg-agent.conf", atomically: true, encoding: .utf8)
        let fingerprint = try Self.check(
            TestPKI.run(["openssl", "x509", "-in", pki.path("ca/root.pem"), "-noout", "-fingerprint", "-sha1"]))
            .split(separator: "=").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        try "\(fingerprint) S\n".write(toFile: gnupgHome + "/trustlist.txt", atomically: true, encoding: .utf8)
        // Start the agent with its standard streams on /dev/null: started by gpgsm it would
        // inherit the test runner's output and keep it open after the tests end.
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: "/usr/bin/gpg-connect-agent")
        agent.arguments = ["--homedir", gnupgHome, "/bye"]
        agent.standardInput = FileHandle.nullDevice
        agent.standardOutput = FileHandle.nullDevice
        agent.standardError = FileHandle.nullDevice
        try agent.run()
        agent.waitUntilExit()
        Self.stopAgentAtExit(home: gnupgHome)
        try Self.check(gpgsm(["--import", pki.path("ca/root.pem"), pki.path("ca/intermediate.pem")]))
        let p12 = try importIntoGpgsm(pki: pki)
        try FileManager.default.createDirectory(atPath: nssDatabase, withIntermediateDirectories: true)
        try Self.check(TestPKI.run(["certutil", "-N", "-d", "sql:" + nssDatabase, "--empty-password"]))
        try Self.check(
            TestPKI.run(["certutil", "-A", "-d", "sql:" + nssDatabase, "-n", "root", "-t", "C,C,C", "-i", pki.path("ca/root.pem")]))
        try Self.check(TestPKI.run(["pk12util", "-i", p12, "-d", "sql:" + nssDatabase, "-W", "test"]))
        let listing = try TestPKI.run(["certutil", "-L", "-d", "sql:" + nssDatabase]).output
        if let line = listing.split(separator: "\n").first(where: { $0.hasSuffix("u,u,u") }) {
            let nickname = line.replacingOccurrences(of: "u,u,u", with: "").trimmingCharacters(in: .whitespaces)
            try Self.check(
                TestPKI.run(["certutil", "--rename", "-n", nickname, "--new-n", "vanphong", "-d", "sql:" + nssDatabase]))
        }
    }

    /// One set per test process, shared by the tests (gpgsm's agent serves them all). Made on
    /// first use; if that fails, every test that uses it fails with the tools' output.
    public static var shared: IndependentTools {
        get throws { try sharedResult.get() }
    }

    private static let sharedResult = Result { try IndependentTools(pki: TestPKI.shared) }

    /// How the `vanphong` PKCS#12 file is protected: the legacy PKCS#12 algorithms gpgsm 2.2
    /// reads (it cannot read OpenSSL 3's PBES2 with an HMAC-SHA-256 PRF), the certificates
    /// unencrypted so that only the key bag needs a 3DES key.
    static let pkcs12Protection = ["-keypbe", "PBE-SHA1-3DES", "-certpbe", "NONE", "-macalg", "sha1"]

    /// Makes the `vanphong` PKCS#12 file and imports it into gpgsm, returning its path.
    ///
    /// gpgsm 2.2 derives a wrong 3DES key for about one salt in 128 (the fault is described in
    /// `scripts/pkcs12-gpgsm-check.py`, which predicts it from the file alone), and then refuses
    /// that file every time. A file with such a salt is replaced by a new one before gpgsm sees
    /// it; a refusal of a file the check passed is a real fault and fails at once with gpgsm's
    /// output.
    private func importIntoGpgsm(pki: TestPKI) throws -> String {
        let check = TestPKI.repositoryRoot + "/scripts/pkcs12-gpgsm-check.py"
        for attempt in 1...20 {
            let p12 = directory + "/vanphong-\(attempt).p12"
            try Self.check(
                TestPKI.run(
                    [
                        "openssl", "pkcs12", "-export", "-inkey", pki.path("certs/vanphong.key"), "-in",
                        pki.path("certs/vanphong.pem"), "-certfile", pki.path("ca/intermediate.pem"), "-passout",
                        "pass:test", "-out", p12,
                    ] + Self.pkcs12Protection))
            let checked = try TestPKI.run(["python3", check, p12, "test"])
            if checked.status == 1 { continue }
            try Self.check(checked)
            try Self.check(gpgsm(["--pinentry-mode", "loopback", "--passphrase-fd", "0", "--import", p12], input: "test"))
            return p12
        }
        throw NSError(
            domain: "IndependentTools", code: 1,
            userInfo: [NSLocalizedDescriptionKey: "twenty new PKCS#12 files in a row had a salt gpgsm 2.2 cannot use"])
    }

    /// The agent of this home is stopped by its home directory when the test process exits
    /// (a shared instance is never deinitialised), so no agent outlives the tests.
    static func stopAgentAtExit(home: String) {
        agentHomes.withLock { homes in
            homes.append(home)
            guard homes.count == 1 else { return }
            atexit {
                for home in agentHomes.withLock({ $0 }) {
                    _ = system("gpgconf --homedir '\(home)' --kill all >/dev/null 2>&1")
                }
            }
        }
    }

    @discardableResult
    static func check(_ result: (status: Int32, output: String)) throws -> String {
        guard result.status == 0 else {
            throw NSError(domain: "IndependentTools", code: Int(result.status), userInfo: [NSLocalizedDescriptionKey: result.output])
        }
        return result.output
    }

    public func gpgsm(_ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String) {
        try TestPKI.run(
            ["gpgsm", "--batch"] + arguments, input: input.map { Array($0.utf8) }, environment: ["GNUPGHOME": gnupgHome])
    }

    private func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = directory + "/" + UUID().uuidString + "-" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    // MARK: verifying

    /// `openssl cms -verify` over a whole MIME message.
    public func opensslVerify(message: [UInt8]) throws -> (ok: Bool, output: String) {
        let path = try write(message, "message.eml")
        let result = try TestPKI.run([
            "openssl", "cms", "-verify", "-in", path, "-CAfile", pki.path("ca/root.pem"), "-out", "/dev/null",
        ])
        return (result.status == 0 && result.output.contains("Verification successful"), result.output)
    }

    /// `gpgsm --verify` of a detached signature over its content.
    public func gpgsmVerify(signature: [UInt8], content: [UInt8]) throws -> (ok: Bool, output: String) {
        let result = try gpgsm(["--verify", try write(signature, "sig.der"), try write(content, "content")])
        return (result.status == 0 && result.output.contains("Good signature"), result.output)
    }

    /// NSS `cmsutil -D` of a detached signature over its content.
    public func nssVerify(signature: [UInt8], content: [UInt8]) throws -> (ok: Bool, output: String) {
        let result = try TestPKI.run([
            "cmsutil", "-D", "-d", "sql:" + nssDatabase, "-i", try write(signature, "sig.der"), "-c",
            try write(content, "content"), "-u", "4", "-o", "/dev/null",
        ])
        return (result.status == 0 && !result.output.contains("problem decoding"), result.output)
    }

    // MARK: signing as other implementations (the vanphong file key)

    /// `openssl cms -sign` (or `openssl smime -sign`) of a whole MIME entity: detached
    /// multipart/signed, or opaque application/pkcs7-mime.
    public func opensslSign(entity: [UInt8], opaque: Bool, smimeCommand: Bool = false) throws -> [UInt8] {
        let input = try write(entity, "entity")
        let output = directory + "/" + UUID().uuidString + ".eml"
        var arguments = [
            "openssl", smimeCommand ? "smime" : "cms", "-sign", "-in", input, "-signer", pki.path("certs/vanphong.pem"),
            "-inkey", pki.path("certs/vanphong.key"), "-certfile", pki.path("ca/intermediate.pem"), "-out", output,
            "-from", "vanphong.ubnd@dienbien.gov.vn", "-subject", "signed elsewhere",
        ]
        if opaque { arguments.append("-nodetach") }
        try Self.check(TestPKI.run(arguments))
        return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
    }

    /// `gpgsm --detach-sign` of `content` (DER).
    public func gpgsmSign(content: [UInt8]) throws -> [UInt8] {
        let output = directory + "/" + UUID().uuidString + ".der"
        try Self.check(
            gpgsm(
                ["--pinentry-mode", "loopback", "--passphrase-fd", "0", "-u", "vanphong.ubnd@dienbien.gov.vn",
                 "--detach-sign", "-o", output, try write(content, "content")], input: "test"))
        return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
    }

    /// NSS `cmsutil -S -T` (detached) of `content`, with signing time and capabilities.
    public func nssSign(content: [UInt8]) throws -> [UInt8] {
        let output = directory + "/" + UUID().uuidString + ".der"
        try Self.check(
            TestPKI.run([
                "cmsutil", "-S", "-d", "sql:" + nssDatabase, "-N", "vanphong", "-Y", "NONE", "-G", "-P", "-T", "-i",
                try write(content, "content"), "-o", output,
            ]))
        return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
    }
}
