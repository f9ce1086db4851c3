import Foundation
import Gateway
import MIME
import TestSupport
import Testing

@testable import SMIME

/// Revocation against a certificate authority's web server at its worst: silent, slow, answering
/// HTML, truncated or huge lists, lists from another CA, stale lists, and an OCSP responder
/// (`openssl ocsp`) that answers, answers about another certificate, or signs without authority.
/// The test PKI's certificates name 127.0.0.1 ports chosen when it is made (`crlPort` for CRLs and CA
/// issuers, `ocspPort` for OCSP), so the
/// tests of this suite run one after another and own those two ports.
@Suite(.serialized) struct RevocationTests {
    let pki: TestPKI
    let good: [UInt8]
    let revoked: [UInt8]

    init() throws {
        pki = try TestPKI.shared
        good = try Fixtures.signed(by: "vanphong", from: "vanphong.ubnd@dienbien.gov.vn")
        revoked = try Fixtures.signed(by: "revoked", from: "thuhoi@dienbien.gov.vn")
    }

    func verifier(
        _ mode: RevocationCheck, budget: Int = 2, crlDirectory: String? = nil, cacheDirectory: String? = nil,
        grace: TimeInterval = 86400, intermediates: Bool = false, maximumDownload: Int = 64 << 20
    ) throws -> Verifier {
        Verifier(
            trust: try TrustStore(
                anchors: [pki.path("ca/root.pem")], intermediates: intermediates ? [pki.path("ca/chain.pem")] : [],
                crlDirectory: crlDirectory, revocation: mode, fetchTimeout: budget, fetchHosts: pki.fetchHosts,
                cacheDirectory: cacheDirectory,
                gracePeriod: grace, maximumDownload: maximumDownload),
            signingTimeSkew: 3600, allowSHA1Signatures: false)
    }

    /// A directory the CA server publishes: the PKI's own files, with `intermediate.crl` replaced.
    func publishing(intermediateCRL: [UInt8]) throws -> String {
        let root = try pki.temporaryDirectory("www")
        try FileManager.default.createDirectory(atPath: root + "/crl", withIntermediateDirectories: true)
        try Data(intermediateCRL).write(to: URL(fileURLWithPath: root + "/crl/intermediate.crl"))
        try FileManager.default.copyItem(atPath: pki.path("crl/root.crl"), toPath: root + "/crl/root.crl")
        return root
    }

    func timed(_ body: () throws -> Verdict) rethrows -> (Verdict, TimeInterval) {
        let start = Date()
        let verdict = try body()
        return (verdict, Date().timeIntervalSince(start))
    }

    // MARK: a CA that does not answer

    /// Accepting and never answering: the first message waits the budget once (both
    /// distribution points at the same time, not one after the other), the next ones nothing.
    @Test func aSilentCAServerCostsTheFirstMessageItsBudgetAndTheNextOnesNothing() throws {
        let silent = try SilentServer(port: pki.crlPort)
        defer { silent.close() }
        let budget = 3
        let verifier = try verifier(.crlFetch, budget: budget)
        let (first, firstTook) = try timed { try Fixtures.verdict(good, verifier: verifier) }
        #expect(first.result == .temperror, "\(first.reason)")
        #expect(first.reason.contains("http://127.0.0.1:\(pki.crlPort)/crl/intermediate.crl"))
        // Both distribution points waited for at the same time: one after the other would take
        // twice the budget.
        #expect(firstTook < TimeInterval(2 * budget), "took \(firstTook) s")
        for _ in 0..<40 {
            let (verdict, took) = try timed { try Fixtures.verdict(good, verifier: verifier) }
            #expect(verdict.result == .temperror)
            // Waiting for the download in flight or backing off would take the budget: the
            // silent server never answers. How fast they are is measured by `make bench`.
            #expect(took < TimeInterval(budget), "a download in flight or backing off is not waited for again: \(took) s")
        }
    }

    @Test func aSlowCAServerAnswersLaterMessagesFromTheCache() throws {
        let server = try CAServer.publishing(pki, delay: 1.5)
        defer { server.stop() }
        let verifier = try verifier(.crlFetch, budget: 1)
        let (first, took) = try timed { try Fixtures.verdict(good, verifier: verifier) }
        #expect(first.result == .temperror && took < 1.5, "\(first.result) after \(took) s")
        Thread.sleep(forTimeInterval: 1.5)  // the download, still going, lands in the cache
        #expect(try Fixtures.verdict(good, verifier: verifier).result == .pass)
        #expect(try Fixtures.verdict(revoked, verifier: verifier).result == .fail)
    }

    // MARK: the CA up, then gone

    /// Fetched lists are written under the state directory: a fresh process (the command line
    /// tool) with the server gone still gets pass and fail from them.
    @Test func fetchedCRLsAnswerAfterARestartWithTheServerGone() throws {
        let state = try pki.temporaryDirectory("crl-state")
        let configuration = state + "/smime-milter.conf"
        try """
            TrustAnchors     \(pki.path("ca/root.pem"))
            RevocationCheck  crl+fetch
            CRLFetchTimeout  2
            FetchHosts       \(pki.fetchHosts.joined(separator: ", "))
            StateDirectory   \(state)
            """.write(toFile: configuration, atomically: true, encoding: .utf8)
        func verify(_ message: [UInt8]) throws -> String {
            let file = try pki.temporaryDirectory("message") + "/message.eml"
            try Data(message).write(to: URL(fileURLWithPath: file))
            return try TestPKI.run([TestPKI.executable, "verify", "--config", configuration, file]).output
        }
        let server = try CAServer.publishing(pki)
        #expect(try verify(good).contains("smime=pass"))
        #expect(try verify(revoked).contains("smime=fail"))
        let listed = try TestPKI.run([TestPKI.executable, "crl", "--config", configuration])
        #expect(listed.status == 0 && listed.output.contains("http://127.0.0.1:\(pki.crlPort)/crl/intermediate.crl"))
        #expect(listed.output.contains("1 revoked") && listed.output.contains("(current)"), "\(listed.output)")
        let refreshed = try TestPKI.run([TestPKI.executable, "crl", "--refresh", "--config", configuration])
        #expect(refreshed.status == 0 && refreshed.output.contains("intermediate.crl: fetched"), "\(refreshed.output)")
        server.stop()
        let kept = try FileManager.default.contentsOfDirectory(atPath: state + "/crl-cache")
        #expect(kept.filter { $0.hasSuffix(".der") }.count == 2, "\(kept)")
        #expect(try verify(good).contains("smime=pass"))
        #expect(try verify(revoked).contains("smime=fail"))

        // A damaged file is ignored (and removed), never a crash.
        for name in kept where name.hasSuffix(".der") {
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: state + "/crl-cache/" + name))
        }
        #expect(try verify(good).contains("smime=temperror"))
    }

    // MARK: bad answers

    @Test(arguments: ["html", "truncated", "another CA", "huge"])
    func aBadAnswerIsNeverAPassForARevokedCertificate(kind: String) throws {
        let crl = Array(try Data(contentsOf: URL(fileURLWithPath: pki.path("crl/intermediate.crl"))))
        let answer: [UInt8]
        switch kind {
        case "html": answer = Array("<html><body>Service Unavailable</body></html>".utf8)
        case "truncated": answer = Array(crl.prefix(crl.count / 2))
        case "another CA":
            let out = try pki.temporaryDirectory("other-ca") + "/other.crl"
            let made = try TestPKI.run([
                "openssl", "ca", "-gencrl", "-config", pki.path("ca/untrusted.cnf"), "-out", out + ".pem",
            ])
            #expect(made.status == 0, "\(made.output)")
            _ = try TestPKI.run(["openssl", "crl", "-in", out + ".pem", "-outform", "DER", "-out", out])
            answer = Array(try Data(contentsOf: URL(fileURLWithPath: out)))
        default:
            answer = [0x30, 0x84, 0x0B, 0xEB, 0xC2, 0x00]  // a DER SEQUENCE of 200,000,000 octets
        }
        let root = try publishing(intermediateCRL: answer)
        if kind == "huge" {
            // 200 MB on disk without writing them: the rest of the file is a hole of zeros.
            #expect(truncate(root + "/crl/intermediate.crl", 200_000_006) == 0)
        }
        let server = try CAServer(port: pki.crlPort, ["--root", root])
        defer { server.stop() }
        let verifier = try verifier(.crlFetch, budget: 2)
        for message in [good, revoked] {
            let verdict = try Fixtures.verdict(message, verifier: verifier)
            #expect(verdict.result == .temperror, "\(kind): \(verdict.result) \(verdict.reason)")
            #expect(verdict.reason.contains("http://127.0.0.1:\(pki.crlPort)/crl/intermediate.crl"), "\(verdict.reason)")
        }
    }

    @Test func aCRLPastItsNextUpdateServesWithinTheGracePeriodAndNotBeyond() throws {
        let directory = try pki.temporaryDirectory("stale-crl")
        let made = try TestPKI.run([
            "openssl", "ca", "-gencrl", "-config", pki.path("ca/intermediate.cnf"), "-crl_lastupdate",
            "20250101000000Z", "-crl_nextupdate", "20250102000000Z", "-out", directory + "/intermediate.crl.pem",
        ])
        #expect(made.status == 0, "\(made.output)")
        try FileManager.default.copyItem(atPath: pki.path("crl/root.crl"), toPath: directory + "/root.crl")
        let lenient = try verifier(.crl, crlDirectory: directory, grace: 5 * 366 * 86400)
        let stale = try Fixtures.verdict(good, verifier: lenient)
        #expect(stale.result == .pass && stale.reason.contains("stale since 2025-01-02"), "\(stale.reason)")
        #expect(try Fixtures.verdict(revoked, verifier: lenient).result == .fail)
        let strict = try Fixtures.verdict(good, verifier: try verifier(.crl, crlDirectory: directory, grace: 86400))
        #expect(strict.result == .temperror, "\(strict.reason)")
    }

    /// Only the leaf's issuer has a local CRL: the CA certificate above it is not a reason for
    /// temperror, and the reason says it was not checked.
    @Test func aCACertificateWithNoRevocationSourceIsNotedNotTemperror() throws {
        let directory = try pki.temporaryDirectory("leaf-crl-only")
        try FileManager.default.copyItem(atPath: pki.path("crl/intermediate.crl"), toPath: directory + "/intermediate.crl")
        let verifier = try verifier(.crl, crlDirectory: directory)
        let verdict = try Fixtures.verdict(good, verifier: verifier)
        #expect(verdict.result == .pass, "\(verdict.reason)")
        #expect(verdict.reason.contains("TEST Cơ quan chứng thực số Chính phủ"), "\(verdict.reason)")
        #expect(try Fixtures.verdict(revoked, verifier: verifier).result == .fail)
    }

    // MARK: OCSP

    /// `openssl ocsp` answering, no CRL server: the leaf by OCSP, the CA certificate by the root's
    /// local CRL.
    @Test func ocspAnswersWithNoCRLServer() throws {
        let responder = try CAServer.ocsp(pki)
        defer { responder.stop() }
        let directory = try pki.temporaryDirectory("root-crl-only")
        try FileManager.default.copyItem(atPath: pki.path("crl/root.crl"), toPath: directory + "/root.crl")
        let verifier = try verifier(.ocsp, crlDirectory: directory)
        let pass = try Fixtures.verdict(good, verifier: verifier)
        #expect(pass.result == .pass, "\(pass.reason)")
        let fail = try Fixtures.verdict(revoked, verifier: verifier)
        #expect(fail.result == .fail && fail.reason.contains("OCSP"), "\(fail.reason)")
    }

    @Test func anOCSPAnswerFromAResponderTheCADidNotAuthoriseIsRefused() throws {
        let responder = try CAServer.ocsp(pki, signer: "vanphong")
        defer { responder.stop() }
        let verdict = try Fixtures.verdict(revoked, verifier: try verifier(.ocsp, budget: 2))
        #expect(verdict.result == .temperror, "\(verdict.reason)")
        #expect(verdict.reason.contains("not signed by the CA or a responder it authorised"), "\(verdict.reason)")
    }

    @Test func anOCSPAnswerAboutAnotherCertificateIsRefused() throws {
        // The responder's answer for the good certificate, replayed for the revoked one.
        let directory = try pki.temporaryDirectory("replay")
        let request = try TestPKI.run([
            "openssl", "ocsp", "-issuer", pki.path("ca/intermediate.pem"), "-cert", pki.path("certs/vanphong.pem"),
            "-no_nonce", "-reqout", directory + "/request.der",
        ])
        #expect(request.status == 0, "\(request.output)")
        let answered = try TestPKI.run([
            "openssl", "ocsp", "-index", pki.path("ca/intermediate.db/index.txt"), "-CA", pki.path("ca/intermediate.pem"),
            "-rsigner", pki.path("certs/ocsp.pem"), "-rkey", pki.path("certs/ocsp.key"), "-nmin", "10", "-reqin",
            directory + "/request.der", "-respout", directory + "/response.der",
        ])
        #expect(answered.status == 0, "\(answered.output)")
        let responder = try CAServer(port: pki.ocspPort, ["--ocsp-file", directory + "/response.der"])
        defer { responder.stop() }
        let verdict = try Fixtures.verdict(revoked, verifier: try verifier(.ocsp, budget: 2))
        #expect(verdict.result == .temperror, "\(verdict.reason)")
        #expect(verdict.reason.contains("about another certificate"), "\(verdict.reason)")
    }

    // MARK: missing intermediates

    @Test func aMissingIntermediateIsFetchedFromTheCAIssuersAddress() throws {
        let server = try CAServer.publishing(pki)
        defer { server.stop() }
        let bare = try Fixtures.signed(by: "vanphong", from: "vanphong.ubnd@dienbien.gov.vn", chain: false)
        let verdict = try Fixtures.verdict(bare, verifier: try verifier(.crlFetch, budget: 2))
        #expect(verdict.result == .pass, "\(verdict.reason)")
        let without = try Fixtures.verdict(bare, verifier: try verifier(.crl, crlDirectory: pki.path("crl")))
        #expect(without.result == .policy, "without fetching, the chain cannot be built: \(without.reason)")
    }
}
