import Foundation
import Testing

@testable import MIME

@Suite struct MultipartSignedTests {
    let inner = Array("Content-Type: text/plain; charset=us-ascii\r\n\r\nHello.\r\n".utf8)
    let signature: [UInt8] = (0..<300).map { UInt8($0 & 0xFF) }

    @Test func theSignedEntityComesBackExactlyAndTheSignatureDecodes() throws {
        let signed = MultipartSigned(inner: inner, signatureDER: signature, micalg: "sha-256")
        let message = try Message(
            bytes: Array("Content-Type: \(signed.contentType)\r\nMIME-Version: 1.0\r\n\r\n".utf8) + signed.body)
        #expect(message.root.contentType["protocol"] == "application/pkcs7-signature")
        #expect(message.root.contentType["micalg"] == "sha-256")
        #expect(message.root.parts[1].contentType.value == "application/pkcs7-signature")
        #expect(try SignedContent.find(in: message) == .detached(content: inner, signature: signature, part: nil))
    }

    @Test func nothingFollowsTheCloseDelimiter() {
        let signed = MultipartSigned(inner: inner, signatureDER: signature, micalg: "sha-256")
        #expect(String(decoding: signed.body, as: UTF8.self).hasSuffix("--\(signed.boundary)--\r\n"))
    }

    @Test func theBoundaryNeverOccursInTheContent() {
        let hostile = Array("------=_smime_taken\r\n".utf8) + inner + Array("\r\n--also-taken--\r\n".utf8)
        var drawn = ["----=_smime_taken", "also-taken", "----=_smime_free"]
        let signed = MultipartSigned(inner: hostile, signatureDER: signature, micalg: "sha-256") { drawn.removeFirst() }
        #expect(signed.boundary == "----=_smime_free")
        #expect(drawn.isEmpty)
        #expect(signed.contentType.hasSuffix("boundary=\"----=_smime_free\""))
        #expect(!MultipartSigned.contains(hostile, Array(("--" + signed.boundary).utf8)))
    }

    @Test func drawnBoundariesAreLongAndDiffer() {
        let first = MultipartSigned.newBoundary()
        #expect(first.count == 40)
        #expect(first != MultipartSigned.newBoundary())
    }
}

@Suite struct SignedContentTests {
    @Test func unsignedMessagesHaveNone() throws {
        #expect(try SignedContent.find(in: Message(bytes: Corpus.bytes("05-pdf-attachment.eml"))) == nil)
    }

    @Test func topLevelDetachedSignatureIsFound() throws {
        let found = try SignedContent.find(in: Message(bytes: Corpus.bytes("29-already-signed.eml")))
        #expect(
            found
                == .detached(
                    content: Array("Content-Type: text/plain\r\n\r\nSigned text.".utf8),
                    signature: [0x30, 0x03, 0x02, 0x01, 0x01], part: nil))
    }

    @Test func opaqueSignedDataIsFound() throws {
        let found = try SignedContent.find(in: Message(bytes: Corpus.bytes("30-opaque-signed.eml")))
        #expect(found == .opaque(cms: [0x30, 0x03, 0x02, 0x01, 0x01], part: nil))
    }

    @Test func aSignatureOneLevelInsideMixedReportsItsPart() throws {
        let found = try SignedContent.find(in: Message(bytes: Corpus.bytes("31-signed-inside-mixed.eml")))
        #expect(found?.part == "1")
    }

    @Test func aSignedMultipartWithOnePartIsMalformed() throws {
        let text = "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n"
        #expect(throws: MIMEError.self) { try SignedContent.find(in: Message(bytes: Array(text.utf8))) }
    }
}
