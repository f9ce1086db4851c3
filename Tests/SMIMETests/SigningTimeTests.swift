import Foundation
import Gateway
import MIME
import TestSupport
import Testing

@testable import SMIME

/// Mail signed more than `SigningTimeSkew` from its Date is signed without the signingTime
/// attribute; the structure stays one that OpenSSL, gpgsm and NSS verify.
@Suite struct SigningTimeTests {
    static func message(dateSecondsAgo: TimeInterval) -> [UInt8] {
        let date = DateText.rfc5322(Date(timeIntervalSinceNow: -dateSecondsAgo), offset: 0)
        return Array(
            ("From: stttt@dienbien.gov.vn\r\nTo: ubnd@muonglay.dienbien.gov.vn\r\nDate: \(date)\r\nSubject: waited\r\n"
                + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                + "Báo cáo gửi lại khi token được cắm vào.\r\n").utf8)
    }

    /// `openssl cms -cmsout -print` of a DER signature.
    static func printed(_ signature: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString).der").path
        try Data(signature).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try TestPKI.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", path])
        #expect(result.status == 0, "\(result.output)")
        return result.output
    }

    @Test func mailThatWaitedIsSignedWithoutSigningTimeAndVerifiesEverywhere() throws {
        let signer = try Fixtures.tokenSigner("STTTT-DienBien", "unit-seal")
        let signed = try Signing.sign(
            message: Self.message(dateSecondsAgo: 3 * 3600), signer: signer, digest: .sha256, signingTimeSkew: 3600)
        let (content, signature) = try Fixtures.parts(signed)
        let printed = try Self.printed(signature)
        #expect(!printed.contains("signingTime") && printed.contains("messageDigest"), "\(printed)")

        let openssl = try Fixtures.tools.opensslVerify(message: signed)
        #expect(openssl.ok, "openssl cms: \(openssl.output)")
        let gpgsm = try Fixtures.tools.gpgsmVerify(signature: signature, content: content)
        #expect(gpgsm.ok, "gpgsm: \(gpgsm.output)")
        let nss = try Fixtures.tools.nssVerify(signature: signature, content: content)
        #expect(nss.ok, "cmsutil: \(nss.output)")

        let verdict = try Fixtures.verdict(signed, from: "stttt@dienbien.gov.vn")
        #expect(verdict.result == .pass, "\(verdict.reason)")
        #expect(verdict.signingTime == nil)
    }

    @Test func freshMailKeepsItsSigningTime() throws {
        let signer = try Fixtures.tokenSigner("STTTT-DienBien", "unit-seal")
        let signed = try Signing.sign(
            message: Self.message(dateSecondsAgo: 120), signer: signer, digest: .sha256, signingTimeSkew: 3600)
        let (_, signature) = try Fixtures.parts(signed)
        #expect(try Self.printed(signature).contains("signingTime"))
        let verdict = try Fixtures.verdict(signed, from: "stttt@dienbien.gov.vn")
        #expect(verdict.signingTime.map { abs($0.timeIntervalSinceNow) < 600 } == true)
    }

    @Test func cmsSigningWithoutATimeLeavesTheAttributeOut() throws {
        let signer = try Fixtures.fileSigner("vanphong")
        let without = try CMSSigning.sign(content: Fixtures.entity, signer: signer, digest: .sha256, signingTime: nil)
        let with = try CMSSigning.sign(content: Fixtures.entity, signer: signer, digest: .sha256, signingTime: Date())
        #expect(!(try Self.printed(without)).contains("signingTime"))
        #expect(try Self.printed(with).contains("signingTime"))
        let verdict = try Fixtures.verdict(Fixtures.wrap(content: Fixtures.entity, signature: without))
        #expect(verdict.result == .pass && verdict.signingTime == nil, "\(verdict.reason)")
    }
}
