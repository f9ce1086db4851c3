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
        let good = try CMSSigning.sign(content: Self.entity, signer: Fixtures.fileSigner("vanphong"))
        let truncated = Fixtures.wrap(content: Self.entity, signature: Array(good.prefix(good.count / 2)))
        #expect(try Fixtures.verdict(truncated).result == .permerror)
    }

    @Test func anUnsignedMessageIsNone() throws {
        #expect(try Fixtures.verdict(Fixtures.corpus("05-pdf-attachment.eml")).result == .none)
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
        let trust = try TrustStore(anchors: [TestPKI.repositoryRoot + "/conf/trust"])
        #expect(trust.anchors.count == 1)
        #expect(trust.anchors[0].commonName == "Co quan chung thuc so chuyen dung Chinh phu (RootCA)")
    }
}
