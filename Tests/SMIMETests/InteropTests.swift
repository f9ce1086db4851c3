import Foundation
import Gateway
import MIME
import SMIME
import TestSupport
import Testing
import Token

/// Our signatures, made with the SoftHSM token, checked by three independent verifiers; and
/// signatures made by those implementations checked by ours.
@Suite struct InteropTests {
    struct Key: CustomStringConvertible, Sendable {
        let token: String
        let object: String
        let scheme: SignatureScheme
        let email: String
        var description: String { "\(scheme.rawValue) \(token)/\(object)" }
    }

    static let keys = [
        Key(token: "STTTT-DienBien", object: "unit-seal", scheme: .rsaPKCS1, email: "stttt@dienbien.gov.vn"),
        Key(token: "UBND-MuongLay", object: "unit-seal", scheme: .ecdsa, email: "ubnd.muonglay@dienbien.gov.vn"),
        Key(token: "STTTT-DienBien", object: "vanthu", scheme: .rsaPSS, email: "vanthu.stttt@dienbien.gov.vn"),
    ]
    static let messages = ["01-plain-ascii.eml", "02-utf8-8bit-vietnamese.eml", "14-binary-part.eml"]

    @Test(arguments: keys, messages)
    func ourSignatureVerifiesInOpenSSLGpgsmAndNSS(key: Key, message: String) throws {
        let signer = try Fixtures.tokenSigner(key.token, key.object, scheme: key.scheme)
        let signed = try Signing.sign(
            message: Fixtures.corpus(message), signer: signer, digest: .sha256, signingTimeSkew: 3600)
        let tools = try Fixtures.tools

        let openssl = try tools.opensslVerify(message: signed)
        #expect(openssl.ok, "openssl cms: \(openssl.output)")
        let (content, signature) = try Fixtures.parts(signed)
        let gpgsm = try tools.gpgsmVerify(signature: signature, content: content)
        #expect(gpgsm.ok, "gpgsm: \(gpgsm.output)")
        let nss = try tools.nssVerify(signature: signature, content: content)
        #expect(nss.ok, "cmsutil: \(nss.output)")
        let ours = try Fixtures.verdict(signed, from: key.email)
        #expect(ours.result == .pass, "\(ours.reason)")
    }

    @Test func theIndependentVerifiersNoticeTampering() throws {
        let signed = try Signing.sign(
            message: Fixtures.corpus("01-plain-ascii.eml"), signer: Fixtures.tokenSigner("STTTT-DienBien", "unit-seal"),
            digest: .sha256, signingTimeSkew: 3600)
        var (content, signature) = try Fixtures.parts(signed)
        content[content.count - 3] ^= 0x01
        #expect(try !Fixtures.tools.gpgsmVerify(signature: signature, content: content).ok)
        #expect(try !Fixtures.tools.nssVerify(signature: signature, content: content).ok)
        let text = String(decoding: signed, as: UTF8.self).replacingOccurrences(of: "plain text", with: "plain test")
        #expect(try !Fixtures.tools.opensslVerify(message: Array(text.utf8)).ok)
    }

    /// Malformed shapes real mail has (a multipart whose close delimiter is missing, an inner
    /// multipart reusing its parent's boundary): the signed message verifies in `openssl cms`,
    /// gpgsm and NSS, and the content openssl verified has the parts, with the same decoded contents, that
    /// Python's `email` reads in the message as it was sent.
    @Test(arguments: [
        "10-missing-close-boundary.eml", "39-nested-same-boundary.eml", "40-unclosed-no-final-newline.eml",
        "41-unclosed-trailing-blank-lines.eml", "42-unclosed-base64.eml", "43-unclosed-inside-mixed.eml",
        "44-nested-same-boundary-8bit.eml",
    ])
    func malformedShapesKeepTheirContentThroughSigningAndOpenSSL(name: String) throws {
        let original = try Fixtures.corpus(name)
        let signed = try Signing.sign(
            message: original, signer: Fixtures.tokenSigner("STTTT-DienBien", "unit-seal"), digest: .sha256,
            signingTimeSkew: 3600)
        let directory = try Fixtures.pki.temporaryDirectory("malformed")
        try Data(original).write(to: URL(fileURLWithPath: directory + "/original.eml"))
        try Data(signed).write(to: URL(fileURLWithPath: directory + "/signed.eml"))
        let verified = try TestPKI.run([
            "openssl", "cms", "-verify", "-in", directory + "/signed.eml", "-CAfile", Fixtures.pki.path("ca/root.pem"),
            "-out", directory + "/content.eml",
        ])
        #expect(verified.status == 0 && verified.output.contains("Verification successful"), "\(verified.output)")
        let script = TestPKI.repositoryRoot + "/Tests/MIMETests/email_parts.py"
        let before = try TestPKI.run(["python3", script, directory + "/original.eml"])
        let after = try TestPKI.run(["python3", script, directory + "/content.eml"])
        #expect(before.status == 0 && after.status == 0, "\(before.output)\(after.output)")
        #expect(after.output == before.output, "sent:\n\(before.output)verified by openssl:\n\(after.output)")
        let (content, signature) = try Fixtures.parts(signed)
        let tools = try Fixtures.tools
        let gpgsm = try tools.gpgsmVerify(signature: signature, content: content)
        #expect(gpgsm.ok, "gpgsm: \(gpgsm.output)")
        let nss = try tools.nssVerify(signature: signature, content: content)
        #expect(nss.ok, "cmsutil: \(nss.output)")
    }

    // MARK: signed elsewhere, verified here

    static let entity = Array("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nK=C3=ADnh g=E1=BB=ADi.\r\n".utf8)

    @Test(arguments: [false, true], [false, true])
    func opensslSignaturesPass(opaque: Bool, smimeCommand: Bool) throws {
        let signed = try Fixtures.tools.opensslSign(entity: Self.entity, opaque: opaque, smimeCommand: smimeCommand)
        let verdict = try Fixtures.verdict(signed)
        #expect(verdict.result == .pass, "\(verdict.reason)")
        #expect(verdict.emailAddresses == ["vanphong.ubnd@dienbien.gov.vn"])
        #expect(verdict.commonName == "Văn phòng Ủy ban nhân dân tỉnh")
    }

    @Test func gpgsmSignaturesPass() throws {
        let signature = try Fixtures.tools.gpgsmSign(content: Self.entity)
        let verdict = try Fixtures.verdict(Fixtures.wrap(content: Self.entity, signature: signature))
        #expect(verdict.result == .pass, "\(verdict.reason)")
    }

    @Test func nssSignaturesPass() throws {
        let signature = try Fixtures.tools.nssSign(content: Self.entity)
        let verdict = try Fixtures.verdict(Fixtures.wrap(content: Self.entity, signature: signature))
        #expect(verdict.result == .pass, "\(verdict.reason)")
        #expect(verdict.signingTime != nil)
    }
}
