import Foundation
import Gateway
import MIME
import TestSupport
import Testing
import Token

@testable import SMIME

/// Every way a signature can be wrong gets its own result (RFC 7281 / RFC 8601).
@Suite struct VerifierTests {
    static let entity = Fixtures.entity

    func signed(by name: String, from: String) throws -> [UInt8] {
        try Fixtures.signed(by: name, from: from)
    }

    @Test func aGoodSignaturePassesWithTheSignerDescribed() throws {
        let verdict = try Fixtures.verdict(signed(by: "vanphong", from: "vanphong.ubnd@dienbien.gov.vn"))
        #expect(verdict.result == .pass)
        #expect(verdict.organization == "Văn phòng UBND tỉnh Điện Biên")
        #expect(verdict.issuer == "CN=TEST Cơ quan chứng thực số Chính phủ,O=Ban Cơ yếu Chính phủ (TEST),C=VN")
        #expect(verdict.chain.count == 3)
        #expect(verdict.signingTime.map { abs($0.timeIntervalSinceNow) < 600 } == true)
        #expect(verdict.serial?.isEmpty == false)
    }

    @Test func oneChangedByteFails() throws {
        var message = try signed(by: "vanphong", from: "vanphong.ubnd@dienbien.gov.vn")
        let text = String(decoding: message, as: UTF8.self)
        let offset = try #require(text.range(of: "thang 11")).lowerBound.utf16Offset(in: text)
        message[offset] = UInt8(ascii: "T")
        let verdict = try Fixtures.verdict(message)
        #expect(verdict.result == .fail)
        #expect(verdict.reason.contains("altered"))
    }

    @Test func anExpiredCertificateIsPolicy() throws {
        let verdict = try Fixtures.verdict(signed(by: "expired", from: "hethan@dienbien.gov.vn"))
        #expect(verdict.result == .policy)
        #expect(verdict.reason.contains("expired"))
    }

    @Test func aRevokedCertificateFails() throws {
        let verdict = try Fixtures.verdict(signed(by: "revoked", from: "thuhoi@dienbien.gov.vn"))
        #expect(verdict.result == .fail)
        #expect(verdict.reason.contains("revoked"))
    }

    @Test func aRevokedCertificatePassesWhenRevocationIsNotChecked() throws {
        let verdict = try Fixtures.verdict(
            signed(by: "revoked", from: "thuhoi@dienbien.gov.vn"), verifier: Fixtures.verifier(revocation: .none))
        #expect(verdict.result == .pass)
    }

    @Test func anUntrustedRootIsPolicy() throws {
        let verdict = try Fixtures.verdict(signed(by: "untrusted", from: "stttt@dienbien.gov.vn"))
        #expect(verdict.result == .policy)
        #expect(verdict.reason.contains("not issued by a trusted CA"))
    }

    @Test func aCertificateWithoutEmailProtectionIsPolicy() throws {
        let verdict = try Fixtures.verdict(signed(by: "wrong-eku", from: "maychu@dienbien.gov.vn"))
        #expect(verdict.result == .policy)
        #expect(verdict.reason.contains("emailProtection"))
    }

    @Test func aFromAddressNotInTheCertificateIsPolicy() throws {
        let verdict = try Fixtures.verdict(signed(by: "vanphong", from: "giamdoc@dienbien.gov.vn"))
        #expect(verdict.result == .policy)
        #expect(verdict.reason.contains("giamdoc@dienbien.gov.vn"))
        let caseOfDomain = try Fixtures.verdict(signed(by: "vanphong", from: "vanphong.ubnd@DienBien.Gov.VN"))
        #expect(caseOfDomain.result == .pass)
    }

    @Test func garbageAndTruncatedCMSArePermerror() throws {
        let garbage = Fixtures.wrap(content: Self.entity, signature: Array("this is not DER at all".utf8))
        #expect(try Fixtures.verdict(garbage).result == .permerror)
        let good = try CMSSigning.sign(
            content: Self.entity, signer: Fixtures.fileSigner("vanphong"), digest: .sha256, signingTime: Date())
        let truncated = Fixtures.wrap(content: Self.entity, signature: Array(good.prefix(good.count / 2)))
        #expect(try Fixtures.verdict(truncated).result == .permerror)
    }

    /// A digest algorithm OpenSSL does not know (the SHA-256 OID with one arc changed, as
    /// VerifyFuzz found it): no pass, the reason names it, and under `make test-asan` nothing
    /// leaks (OpenSSL 3.0's CMS_verify leaked its copy of a memory BIO holding the content).
    @Test func anUnknownDigestAlgorithmIsNeutralAndLeaksNothing() throws {
        var signature = try CMSSigning.sign(
            content: Self.entity, signer: Fixtures.fileSigner("vanphong"), digest: .sha256, signingTime: Date())
        let sha256: [UInt8] = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]
        let range = try #require(signature.firstRange(of: sha256))
        signature[range.lowerBound + 5] = 0x02
        let verdict = try Fixtures.verdict(Fixtures.wrap(content: Self.entity, signature: signature))
        #expect(verdict.result == .neutral, "\(verdict.result) \(verdict.reason)")
        #expect(verdict.reason.contains("unknown digest algorithm"), "\(verdict.reason)")
    }

    @Test func anUnsignedMessageIsNone() throws {
        #expect(try Fixtures.verdict(Fixtures.corpus("05-pdf-attachment.eml")).result == .none)
    }

    // MARK: no author, no pass

    /// A good signature on a message with no From (or several From and no Sender) vouches for
    /// nobody the recipient sees: policy, with the reason.
    @Test(arguments: ["", "From: a@dienbien.gov.vn, vanphong.ubnd@dienbien.gov.vn\r\n"])
    func aSignedMessageWithoutOneAuthorIsPolicy(from: String) throws {
        let signed = try signed(by: "vanphong", from: "vanphong.ubnd@dienbien.gov.vn")
        let text = String(decoding: signed, as: UTF8.self)
            .replacingOccurrences(of: "From: vanphong.ubnd@dienbien.gov.vn\r\n", with: from)
        let verdict = try Fixtures.verdict(Array(text.utf8))
        #expect(verdict.result == .policy)
        #expect(verdict.reason.contains("no From address"), "\(verdict.reason)")
    }

    // MARK: the signing time and several signers

    /// Thunderbird shows a signature whose signing time is more than an hour from the Date
    /// header as not valid; so does the verdict, with the reason.
    @Test func aSigningTimeFarFromTheDateHeaderIsPolicy() throws {
        let message = try signed(by: "vanphong", from: "vanphong.ubnd@dienbien.gov.vn")
        let now = Array("Date: \(Self.rfc5322(Date()))\r\n".utf8) + message
        #expect(try Fixtures.verdict(now).result == .pass)
        let old = Array("Date: \(Self.rfc5322(Date(timeIntervalSinceNow: -2 * 3600)))\r\n".utf8) + message
        let verdict = try Fixtures.verdict(old)
        #expect(verdict.result == .policy)
        #expect(verdict.reason.contains("minutes from the message's Date header"), "\(verdict.reason)")
        #expect(DateText.parseRFC5322("Sun, 29 Nov 2026 20:53:36 +0700 (ICT)") == Date(timeIntervalSince1970: 1795960416))
        #expect(DateText.parseRFC5322("29 Nov 2026 13:53 GMT") != nil)
    }

    static func rfc5322(_ date: Date) -> String {
        DateText.rfc5322(date, offset: 0)
    }

    /// Two signers, the first from an untrusted CA: the message passes on the second, which the
    /// headers then name.
    @Test func everySignerIsCheckedAndOneGoodSignerPasses() throws {
        let directory = try Fixtures.pki.temporaryDirectory("two-signers")
        try Data(Self.entity).write(to: URL(fileURLWithPath: directory + "/content"))
        let pki = try Fixtures.pki
        let made = try TestPKI.run([
            "openssl", "cms", "-sign", "-binary", "-in", directory + "/content", "-outform", "DER", "-out",
            directory + "/signature", "-signer", pki.path("certs/untrusted.pem"), "-inkey", pki.path("certs/untrusted.key"),
            "-signer", pki.path("certs/vanphong.pem"), "-inkey", pki.path("certs/vanphong.key"), "-certfile",
            pki.path("ca/chain.pem"),
        ])
        #expect(made.status == 0, "\(made.output)")
        let signature = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/signature")))
        let both = try Fixtures.verdict(Fixtures.wrap(content: Self.entity, signature: signature))
        #expect(both.result == .pass, "\(both.reason)")
        #expect(both.emailAddresses == ["vanphong.ubnd@dienbien.gov.vn"])
        let untrustedOnly = try Fixtures.verdict(
            Fixtures.wrap(content: Self.entity, signature: signature, from: "stttt@dienbien.gov.vn"))
        #expect(untrustedOnly.result == .policy && untrustedOnly.reason.contains("not issued by a trusted CA"))
    }

    // MARK: the Government CA profile

    static let vgca = TestPKI.repositoryRoot + "/Tests/SMIMETests/vgca/"

    @Test func governmentCertificatesGiveNameOrganizationAndAddress() throws {
        let opencps = try #require(try Certificate.load(pemFile: Self.vgca + "vgca-ee-opencps-2015.pem").first)
        #expect(opencps.commonName == "Nguyễn Tô An")
        #expect(opencps.organization == "Bộ Giao thông Vận tải")
        #expect(opencps.emailAddresses == ["annt@vr.org.vn"])
        let mobile = try #require(try Certificate.load(pemFile: Self.vgca + "vgca-ee-mobiletest03-2016.pem").first)
        #expect(mobile.commonName == "Mobile Test 03")
        #expect(mobile.organization == "Ban Cơ yếu Chính phủ")
        #expect(mobile.emailAddresses == ["test3@ca.gov.vn"])
    }

    @Test(arguments: ["vgca-ee-opencps-2015.pem", "vgca-ee-mobiletest03-2016.pem"])
    func governmentKeyUsageIsAccepted(file: String) throws {
        let handle = try #require(try X509Handle.load(pemFile: Self.vgca + file).first)
        #expect(Verifier.usageProblem(handle.pointer) == nil)
    }

    @Test func theShippedGovernmentRootLoadsAsATrustAnchor() throws {
        let trust = try TrustStore(
            anchors: [TestPKI.repositoryRoot + "/conf/trust"], intermediates: [], crlDirectory: nil, revocation: .none, fetchTimeout: 5,
            fetchHosts: [], cacheDirectory: nil, gracePeriod: 86400)
        #expect(trust.anchors.count == 1)
        #expect(trust.anchors[0].commonName == "Co quan chung thuc so chuyen dung Chinh phu (RootCA)")
    }
}
