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

    /// The search for a drawn boundary finds a needle wherever it lies (first, last, the whole
    /// haystack, after partial matches) and nowhere else: compared with a plain search over
    /// inputs made of a few octets, where matches and near misses are common.
    @Test func theBoundarySearchAgreesWithAPlainSearch() {
        func plain(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
            guard !needle.isEmpty, haystack.count >= needle.count else { return false }
            return (0...haystack.count - needle.count).contains { Array(haystack[$0..<$0 + needle.count]) == needle }
        }
        var generator = SystemRandomNumberGenerator()
        let octets: [UInt8] = Array("--ab".utf8)
        var found = 0
        for _ in 0..<20_000 {
            let haystack = (0..<Int.random(in: 0...24, using: &generator)).map { _ in octets.randomElement(using: &generator)! }
            let needle = (0..<Int.random(in: 0...5, using: &generator)).map { _ in octets.randomElement(using: &generator)! }
            let expected = plain(haystack, needle)
            #expect(MultipartSigned.contains(haystack, needle) == expected, "\(haystack) \(needle)")
            if expected { found += 1 }
        }
        // Both answers were tried many times.
        #expect(found > 2_000 && found < 18_000)
        #expect(MultipartSigned.contains(Array("x--b".utf8), Array("--b".utf8)))
        #expect(!MultipartSigned.contains(Array("x--".utf8), Array("--b".utf8)))
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
