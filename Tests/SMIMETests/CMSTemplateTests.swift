import Foundation
import TestSupport
import Testing
import Token

@testable import SMIME

/// The signer's SignedData made once and filled in per message gives the structure OpenSSL
/// builds for every message, octet for octet.
@Suite struct CMSTemplateTests {
    static let content = Array("Content-Type: text/plain; charset=utf-8\r\n\r\nBáo cáo tháng 11.\r\n".utf8)
    static let times: [Date?] = [
        Date(), Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 1_733_356_799.75), nil,
    ]

    /// RSA PKCS#1 v1.5 signatures are deterministic: the same attributes give the same octets,
    /// so the two ways of building the structure must agree exactly (token key and PEM key).
    @Test(arguments: times)
    func theTemplateWritesWhatOpenSSLBuilds(time: Date?) throws {
        let signers: [any Signer] = [
            try Fixtures.tokenSigner("STTTT-DienBien", "unit-seal"), try Fixtures.fileSigner("vanphong"),
        ]
        for signer in signers {
            let template = try CMSTemplates.shared.template(for: signer, digest: .sha256, timed: time != nil)
            #expect(template != nil)
            let filled = try #require(try template?.sign(content: Self.content, signer: signer, signingTime: time))
            let built = try CMSSigning.signWithOpenSSL(content: Self.content, signer: signer, digest: .sha256, signingTime: time)
            #expect(filled == built)
            #expect(try CMSSigning.sign(content: Self.content, signer: signer, digest: .sha256, signingTime: time) == built)
        }
    }

    @Test(arguments: [DigestAlgorithm.sha384, .sha512])
    func otherDigestsToo(digest: DigestAlgorithm) throws {
        let signer = try Fixtures.fileSigner("vanphong")
        let time = Date()
        let template = try #require(try CMSTemplates.shared.template(for: signer, digest: digest, timed: true))
        #expect(
            try template.sign(content: Self.content, signer: signer, signingTime: time)
                == CMSSigning.signWithOpenSSL(content: Self.content, signer: signer, digest: digest, signingTime: time))
    }

    /// Every scheme the interoperability tests sign with goes through a template (so they check
    /// the template's structure in openssl, gpgsm and NSS); ECDSA and RSA-PSS signatures are not
    /// deterministic, so here they are verified.
    @Test(arguments: [("UBND-MuongLay", "unit-seal", SignatureScheme.ecdsa), ("STTTT-DienBien", "vanthu", .rsaPSS)])
    func randomisedSchemesGoThroughTheTemplateAndVerify(token: String, object: String, scheme: SignatureScheme) throws {
        let signer = try Fixtures.tokenSigner(token, object, scheme: scheme)
        #expect(try CMSTemplates.shared.template(for: signer, digest: .sha256, timed: true) != nil)
        let signature = try CMSSigning.sign(content: Fixtures.entity, signer: signer, digest: .sha256, signingTime: Date())
        let email = scheme == .ecdsa ? "ubnd.muonglay@dienbien.gov.vn" : "vanthu.stttt@dienbien.gov.vn"
        let verdict = try Fixtures.verdict(Fixtures.wrap(content: Fixtures.entity, signature: signature, from: email))
        #expect(verdict.result == .pass, "\(verdict.reason)")
    }

    /// From 2050 signingTime is a GeneralizedTime, longer than the template's placeholder: such a
    /// message goes through OpenSSL.
    @Test func aTimeNoUTCTimeHoldsIsLeftToOpenSSL() throws {
        let signer = try Fixtures.fileSigner("vanphong")
        let later = Date(timeIntervalSince1970: 2_600_000_000)  // 2052
        let template = try #require(try CMSTemplates.shared.template(for: signer, digest: .sha256, timed: true))
        #expect(try template.sign(content: Self.content, signer: signer, signingTime: later) == nil)
        #expect(
            try CMSSigning.sign(content: Self.content, signer: signer, digest: .sha256, signingTime: later)
                == CMSSigning.signWithOpenSSL(content: Self.content, signer: signer, digest: .sha256, signingTime: later))
    }

    @Test func utcTimeIsWrittenAsOpenSSLWritesIt() {
        #expect(CMSTemplate.utcTime(Date(timeIntervalSince1970: 1_733_356_799.75)) == Array("241204235959Z".utf8))
        #expect(CMSTemplate.utcTime(Date(timeIntervalSince1970: -631_152_000)) == Array("500101000000Z".utf8))
        #expect(CMSTemplate.utcTime(Date(timeIntervalSince1970: 2_524_608_000)) == nil)  // 2050-01-01
    }
}
