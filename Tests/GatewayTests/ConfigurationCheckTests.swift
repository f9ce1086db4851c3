import Foundation
import Gateway
import SMIME
import TestSupport
import Testing

/// `smime-milter check-config` over good and broken configurations, through the executable.
@Suite struct ConfigurationCheckTests {
    let pki: TestPKI

    init() throws {
        pki = try TestPKI.shared
    }

    func write(table: String, extra: String = "") throws -> String {
        let directory = try pki.temporaryDirectory("check")
        try table.write(toFile: directory + "/signing-table", atomically: true, encoding: .utf8)
        // A PKCS11Module line of the test's own replaces the usual one.
        let module = extra.hasPrefix("PKCS11Module") ? "# PKCS11Module given below" : "PKCS11Module    \(pki.softHSMModule)"
        // Local CRLs only: the test certificates name 127.0.0.1:crlPort, which RevocationTests own
        // while these tests run beside them.
        try """
            SigningTable    \(directory)/signing-table
            \(module)
            TrustAnchors    \(pki.path("ca/root.pem"))
            CRLDirectory    \(pki.path("crl"))
            RevocationCheck crl
            StateDirectory  \(directory)
            \(extra)
            """.write(toFile: directory + "/smime-milter.conf", atomically: true, encoding: .utf8)
        return directory + "/smime-milter.conf"
    }

    func checkConfig(_ path: String) throws -> (status: Int32, output: String) {
        try TestPKI.run([TestPKI.executable, "check-config", "--config", path])
    }

    @Test func aGoodConfigurationExitsZeroAfterSigningWithEveryKey() throws {
        let path = try write(table: """
            *@stttt.dienbien.gov.vn  \(pki.keyURI(token: "STTTT-DienBien", object: "unit-seal")) chain=\(pki.path("ca/chain.pem"))
            *                        \(pki.path("certs/vanphong.key")) cert=\(pki.path("certs/vanphong.pem")) chain=\(pki.path("ca/chain.pem"))
            """)
        let result = try checkConfig(path)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("ok: signing table line 1 (*@stttt.dienbien.gov.vn): signs as Sở Thông tin và Truyền thông <stttt@dienbien.gov.vn>, chain verifies"))
        #expect(result.output.contains("ok: signing table line 2 (*): signs as Văn phòng Ủy ban nhân dân tỉnh"))
        #expect(result.output.contains("configuration would run (0 warnings)"))
    }

    struct Broken: CustomTestStringConvertible, Sendable {
        let name: String
        let table: String
        let extra: String
        let expected: String
        var testDescription: String { name }
    }

    static func brokenCases() throws -> [Broken] {
        let pki = try TestPKI.shared
        return [
            Broken(name: "a bad configuration line", table: "", extra: "Mode sign", expected: "smime-milter.conf:7: Mode 'sign' is unknown; use s, v or sv"),
            Broken(name: "a bad table line", table: "*@x.vn", extra: "", expected: "signing-table:1: '*@x.vn' has no key"),
            Broken(
                name: "a socket whose port is no port", table: "", extra: "Socket inet:notaport@127.0.0.1",
                expected: "smime-milter.conf:7: socket inet:notaport@127.0.0.1: 'notaport' is not a port from 1 to 65535"),
            Broken(
                name: "a user that does not exist", table: "", extra: "UserID no-such-user",
                expected: "UserID no-such-user: no user no-such-user; create it (systemd-sysusers) or fix UserID"),
            Broken(
                name: "a module path that does not exist", table: "", extra: "PKCS11Module /nonexistent/vendor.so",
                expected: "PKCS11Module /nonexistent/vendor.so does not exist or cannot be read"),
            Broken(name: "a size that is no size", table: "", extra: "MaximumSignSize lots", expected: "smime-milter.conf:7:"),
            Broken(name: "a duration that is no number", table: "", extra: "SigningTimeout forever", expected: "smime-milter.conf:7: 'forever' is not a whole number"),
            Broken(
                name: "a wrong PIN", table: "* pkcs11:token=PIN-Test;object=pin-test;type=private?pin-value=000000", extra: "",
                expected: "CKR_PIN_INCORRECT"),
            Broken(
                name: "an absent token", table: "* pkcs11:token=Absent;object=x;type=private?pin-value=1", extra: "",
                expected: "signing table line 1 (*)"),
            Broken(
                name: "a key with another's certificate",
                table: "* \(pki.path("certs/vanphong.key")) cert=\(pki.path("certs/revoked.pem"))", extra: "",
                expected: "signing table line 1 (*)"),
            Broken(
                name: "a chain that does not reach the anchors",
                table: "* \(pki.path("certs/untrusted.key")) cert=\(pki.path("certs/untrusted.pem"))", extra: "",
                expected: "add the issuing CA to chain= or TrustAnchors"),
            Broken(
                name: "an expired certificate",
                table: "* \(pki.path("certs/expired.key")) cert=\(pki.path("certs/expired.pem")) chain=\(pki.path("ca/chain.pem"))",
                extra: "", expected: "expired on 2021-01-01"),
        ]
    }

    /// What `run` refuses at start, `check-config` refuses first, in the same words.
    @Test(arguments: [
        ("Socket inet:notaport@127.0.0.1", "'notaport' is not a port"), ("UserID no-such-user", "no user no-such-user"),
        ("Units /nonexistent/units", "cannot read the units table"),
        // Once a crash (an index out of range on the empty split of ':').
        ("UserID :", "UserID ':' is not user or user:group"),
    ])
    func runRefusesWhatCheckConfigRefusesWithTheSameMessage(line: String, words: String) throws {
        let path = try write(table: "", extra: line)
        if !line.hasPrefix("Socket") {
            // A socket run can open, so that it gets as far as switching user.
            let socket = "Socket local:" + URL(fileURLWithPath: path).deletingLastPathComponent().path + "/milter.sock\n"
            try (String(contentsOfFile: path, encoding: .utf8) + "\n" + socket).write(
                toFile: path, atomically: true, encoding: .utf8)
        }
        let checked = try checkConfig(path)
        let run = try TestPKI.run([TestPKI.executable, "run", "--config", path, "--stderr"])
        #expect(checked.status == 1 && run.status != 0, "\(checked.output)\n\(run.output)")
        let message = checked.output.split(separator: "\n").first { $0.contains(words) }.map(String.init) ?? "none"
        #expect(message.hasPrefix("error: "), "\(checked.output)")
        // The message from the offending words on (check-config puts the file before it).
        let clause = message.range(of: words).map { String(message[$0.lowerBound...]) } ?? message
        #expect(run.output.contains(clause), "\(clause)\n\(run.output)")
    }

    @Test(arguments: try brokenCases())
    func aBrokenConfigurationExitsOneAndSaysWhy(broken: Broken) throws {
        let result = try checkConfig(try write(table: broken.table, extra: broken.extra))
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("error: ") && result.output.contains(broken.expected), "\(result.output)")
        #expect(result.output.contains("configuration would NOT run"))
        #expect(!result.output.contains("000000"), "a PIN must never be printed")
    }

    @Test func certificatesExpiringWithinThirtyDaysAreWarnedOf() throws {
        let path = try write(table: "* \(pki.path("certs/vanphong.key")) cert=\(pki.path("certs/vanphong.pem")) chain=\(pki.path("ca/chain.pem"))")
        let certificate = try #require(try Certificate.load(pemFile: pki.path("certs/vanphong.pem")).first)
        let findings = ConfigurationCheck.run(configurationFile: path, now: certificate.notAfter.addingTimeInterval(-10 * 86400 - 60))
        let warning = try #require(findings.first { $0.severity == .warning })
        #expect(warning.message.contains("certificate \"Văn phòng Ủy ban nhân dân tỉnh\" expires in 10 days"))
        #expect(!findings.contains { $0.severity == .error }, "\(findings)")
    }

    @Test func statsPrintsTheSavedCounters() throws {
        let directory = try pki.temporaryDirectory("stats")
        let statistics = Statistics()
        statistics.count("signed", units: ["stttt.dienbien.gov.vn"])
        statistics.count("verified.pass", units: ["stttt.dienbien.gov.vn", "ubnd.dienbien.gov.vn"])
        try statistics.write(to: directory + "/statistics.json")
        let result = try TestPKI.run([TestPKI.executable, "stats", "--file", directory + "/statistics.json"])
        #expect(result.status == 0)
        #expect(result.output.contains("stttt.dienbien.gov.vn       1              1"), "\(result.output)")
        #expect(result.output.contains("total                       1              2"), "\(result.output)")
        let missing = try TestPKI.run([TestPKI.executable, "stats", "--file", directory + "/none.json"])
        #expect(missing.status == 2 && missing.output.contains("does not exist yet"))
    }
}
