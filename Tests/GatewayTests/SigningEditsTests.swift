import Foundation
import Gateway
import MIME
import SMIME
import TestSupport
import Testing

/// The header edits a signature asks of the MTA: the first top-level Content-Type becomes the
/// multipart/signed one where it stands (one modification, not a delete and an add), every other
/// `Content-*` field goes, MIME-Version is added when missing; the message they make verifies.
@Suite struct SigningEditsTests {
    static func sign(_ header: String) throws -> (edits: [HeaderEdit], signed: [UInt8], contentType: String) {
        let pki = try TestPKI.shared
        let signer = try PEMKeySigner(keyFile: pki.path("certs/vanphong.key"), certificateFile: pki.path("certs/vanphong.pem"))
        let text = "From: vanphong.ubnd@dienbien.gov.vn\r\nTo: a@b.example\r\n" + header + "\r\nNội dung.\r\n"
        let message = try Message(bytes: Array(text.utf8))
        let body = Array(message.bytes[message.root.bodyRange])
        let result = try Signing.sign(
            headers: message.root.headers, body: body, signer: signer, digest: .sha256, signingTimeSkew: 3600)
        let signed = try Signing.sign(message: Array(text.utf8), signer: signer, digest: .sha256, signingTimeSkew: 3600)
        let contentType = result.headerEdits.compactMap { edit -> String? in
            switch edit {
            case .change(_, _, let value), .add("Content-Type", let value): value
            default: nil
            }
        }
        return (result.headerEdits, signed, contentType.first ?? "")
    }

    static func verifies(_ signed: [UInt8]) throws -> Bool {
        let message = try Message(bytes: signed)
        guard case .detached(let content, let signature, _) = try SignedContent.find(in: message) else { return false }
        let pki = try TestPKI.shared
        let trust = try TrustStore(
            anchors: [pki.path("ca/root.pem")], intermediates: [pki.path("ca/chain.pem")], crlDirectory: nil,
            revocation: .none, fetchTimeout: 5, fetchHosts: [], cacheDirectory: nil, gracePeriod: 0)
        let verdict = Verifier(trust: trust, signingTimeSkew: 3600, allowSHA1Signatures: false)
            .verify(cms: signature, detachedContent: content, from: "vanphong.ubnd@dienbien.gov.vn")
        #expect(verdict.result == .pass, "\(verdict.reason)")
        return verdict.result == .pass
    }

    @Test func theContentTypeIsChangedInPlaceAndTheOtherContentFieldsGo() throws {
        let (edits, signed, contentType) = try Self.sign(
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
        #expect(
            edits == [
                .delete(name: "Content-Transfer-Encoding", occurrence: 1),
                .change(name: "Content-Type", occurrence: 1, value: contentType),
            ])
        #expect(contentType.hasPrefix("multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256"))
        let top = try Message(bytes: signed).root.headers.map(\.name)
        #expect(top == ["From", "To", "MIME-Version", "Content-Type"])
        #expect(try Self.verifies(signed))
    }

    @Test func aSecondContentTypeIsDeletedAndTheFirstChanged() throws {
        let (edits, signed, contentType) = try Self.sign(
            "Content-Type: text/plain\r\nContent-Description: x\r\ncontent-type: text/html\r\n")
        #expect(
            edits == [
                .delete(name: "content-type", occurrence: 2), .delete(name: "Content-Description", occurrence: 1),
                .change(name: "Content-Type", occurrence: 1, value: contentType), .add(name: "MIME-Version", value: "1.0"),
            ])
        let top = try Message(bytes: signed).root.headers.map(\.name)
        #expect(top == ["From", "To", "Content-Type", "MIME-Version"])
        #expect(try Self.verifies(signed))
    }

    @Test func withoutAContentTypeOneIsAdded() throws {
        let (edits, signed, contentType) = try Self.sign("Subject: x\r\n")
        #expect(edits == [.add(name: "MIME-Version", value: "1.0"), .add(name: "Content-Type", value: contentType)])
        let top = try Message(bytes: signed).root.headers.map(\.name)
        #expect(top == ["From", "To", "Subject", "MIME-Version", "Content-Type"])
        #expect(try Self.verifies(signed))
    }
}
