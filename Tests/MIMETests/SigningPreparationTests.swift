import Foundation
import TestSupport
import Testing

@testable import MIME

@Suite struct SigningPreparationTests {
    /// Messages that are already signed or encrypted are never prepared (the gateway skips them).
    static let preparable = Corpus.names.filter { !$0.contains("signed") }

    @Test(arguments: preparable)
    func theInnerEntityIsSevenBitCRLFAndWithinLineLimits(name: String) throws {
        let (headers, body) = try Corpus.split(Corpus.bytes(name))
        let prepared = try SigningPreparation(headers: headers, body: body)
        let inner = prepared.inner
        #expect(inner.allSatisfy { $0 < 0x80 && $0 != 0 }, "8-bit or NUL octets left")
        var lineLength = 0
        for (index, byte) in inner.enumerated() {
            if byte == 0x0A {
                #expect(index > 0 && inner[index - 1] == 0x0D, "bare LF at \(index)")
                lineLength = 0
            } else if byte == 0x0D {
                #expect(index + 1 < inner.count && inner[index + 1] == 0x0A, "bare CR at \(index)")
            } else {
                lineLength += 1
                #expect(lineLength <= 998)
            }
        }
        let text = String(decoding: inner, as: UTF8.self)
        #expect(!text.contains("\r\nFrom "), "an unprotected From line")
        #expect(!text.contains(" \r\n") && !text.contains("\t\r\n"), "trailing white space")
    }

    @Test(arguments: preparable)
    func theInnerEntityDecodesToTheOriginalContent(name: String) throws {
        let bytes = try Corpus.bytes(name)
        let (headers, body) = try Corpus.split(bytes)
        let prepared = try SigningPreparation(headers: headers, body: body)
        let original = try Message(bytes: bytes)
        let inner = try Message(bytes: prepared.inner)
        #expect(Corpus.leaves(inner) == Corpus.leaves(original))
    }

    @Test func contentFieldsMoveInsideAndMIMEVersionIsEnsured() throws {
        let (headers, body) = try Corpus.split(Corpus.bytes("05-pdf-attachment.eml"))
        let prepared = try SigningPreparation(headers: headers, body: body)
        #expect(prepared.movedHeaders.map(\.name) == ["Content-Type"])
        #expect(!prepared.needsMIMEVersion)
        let inner = try Message(bytes: prepared.inner)
        #expect(inner.root.contentType.value == "multipart/mixed")
        #expect(inner.root.headers.map(\.name) == ["Content-Type"])
        #expect(inner.root.parts[0].header("Content-Transfer-Encoding")?.value == "quoted-printable")
    }

    /// Python's `email` as an independent parser: the signed entity has the parts the message
    /// had, with the same decoded contents, for every message of the corpus (malformed ones too:
    /// a part without header lines, an inner multipart reusing its parent's boundary).
    @Test(arguments: preparable)
    func anIndependentParserSeesTheSamePartsAfterPreparation(name: String) throws {
        let original = try Corpus.bytes(name)
        let (headers, body) = try Corpus.split(original)
        let prepared = try SigningPreparation(headers: headers, body: body)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("smime-milter-parts-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data(original).write(to: URL(fileURLWithPath: directory + "/original.eml"))
        try Data(prepared.inner).write(to: URL(fileURLWithPath: directory + "/inner.eml"))
        let script = Corpus.directory.deletingLastPathComponent().appendingPathComponent("email_parts.py").path
        let before = try TestPKI.run(["python3", script, directory + "/original.eml"])
        let after = try TestPKI.run(["python3", script, directory + "/inner.eml"])
        #expect(before.status == 0 && after.status == 0, "\(before.output)\(after.output)")
        #expect(after.output == before.output, "before:\n\(before.output)after:\n\(after.output)")
    }

    @Test func aMessageWithoutContentTypeGetsPlainUSASCII() throws {
        let (headers, body) = try Corpus.split(Corpus.bytes("20-no-content-type.eml"))
        let prepared = try SigningPreparation(headers: headers, body: body)
        #expect(prepared.movedHeaders.isEmpty)
        #expect(prepared.needsMIMEVersion)
        #expect(String(decoding: prepared.inner, as: UTF8.self).hasPrefix("Content-Type: text/plain; charset=us-ascii\r\n\r\n"))
    }

    /// An 8-bit body with no Content-Type: its charset is unknown, so none is asserted; the body
    /// is encoded all the same and decodes to the sender's bytes.
    @Test func anEightBitBodyWithoutContentTypeIsEncodedButNotLabelled() throws {
        let body = Array("Kính gửi Ủy ban nhân dân.\r\n".utf8)
        let headers = [HeaderField(name: "From", value: " a@dienbien.gov.vn"), HeaderField(name: "Subject", value: " x")]
        let prepared = try SigningPreparation(headers: headers, body: body)
        let text = String(decoding: prepared.inner, as: UTF8.self)
        #expect(!text.lowercased().contains("content-type"), "\(text)")
        #expect(text.hasPrefix("Content-Transfer-Encoding: quoted-printable\r\n\r\n"), "\(text)")
        let inner = try Message(bytes: prepared.inner)
        #expect(inner.decodedBody(of: inner.root) == body)
    }

    @Test func severalContentFieldsAreDeletedLastOccurrenceFirst() throws {
        let headers = [
            HeaderField(name: "Content-Type", value: "text/plain"), HeaderField(name: "Subject", value: "x"),
            HeaderField(name: "Content-Description", value: "d"), HeaderField(name: "content-type", value: "text/html"),
        ]
        let prepared = try SigningPreparation(headers: headers, body: Array("hi\r\n".utf8))
        #expect(prepared.movedHeaders.map(\.name) == ["content-type", "Content-Description", "Content-Type"])
        #expect(prepared.movedHeaders.map(\.occurrence) == [2, 1, 1])
    }

    @Test func eightBitParametersBecomeRFC2231() throws {
        let (headers, body) = try Corpus.split(Corpus.bytes("19-raw-utf8-filename.eml"))
        let inner = try Message(bytes: SigningPreparation(headers: headers, body: body).inner)
        let attachment = inner.root.parts[1]
        let disposition = try #require(attachment.header("Content-Disposition"))
        #expect(disposition.rawValue.allSatisfy { $0 < 0x80 })
        #expect(ContentType(parsing: disposition.value)["filename"] == "Công văn số 5.pdf")
        #expect(attachment.header("Content-Description")?.decodedValue == "Công văn")
    }

    @Test func binaryContentBecomesBase64AndTextQuotedPrintable() throws {
        let (headers, body) = try Corpus.split(Corpus.bytes("14-binary-part.eml"))
        let inner = try Message(bytes: SigningPreparation(headers: headers, body: body).inner)
        #expect(inner.root.parts[1].transferEncoding == "base64")
        let (h2, b2) = try Corpus.split(Corpus.bytes("12-from-lines.eml"))
        let text = String(decoding: try SigningPreparation(headers: h2, body: b2).inner, as: UTF8.self)
        #expect(text.contains("=46rom the office:"))
        #expect(text.contains(">From quoted"))
    }
}

@Suite struct FuzzFindings {
    /// Found by `make fuzz`: an 8-bit octet inside the media type itself.
    @Test func anEightBitMediaTypeIsNotWrittenRaw() throws {
        let headers = [HeaderField(name: "Content-Type", rawValue: [0x74, 0x65, 0x78, 0x74, 0x2F, 0x70, 0xE1])]
        let inner = try SigningPreparation(headers: headers, body: Array("x\r\n".utf8)).inner
        #expect(inner.allSatisfy { $0 < 0x80 })
        #expect(String(decoding: inner, as: UTF8.self).hasPrefix("Content-Type: application/octet-stream"))
    }
}

extension FuzzFindings {
    /// Found by `make fuzz`: an unknown, 8-bit transfer encoding on a part that needs no re-encoding.
    @Test func anEightBitTransferEncodingValueIsNotWrittenRaw() throws {
        let text = "Content-Type: multipart/alternative; boundary=\"a\"\r\n\r\n--a\r\nContent-Type: text/plain\r\n"
            + "Content-Transfer-Encoding: 8bi\u{1}Lào\r\n--a--\r\n"
        let (headers, body) = try Corpus.split(Array(text.utf8))
        let inner = try SigningPreparation(headers: headers, body: body).inner
        #expect(inner.allSatisfy { $0 < 0x80 })
    }
}
