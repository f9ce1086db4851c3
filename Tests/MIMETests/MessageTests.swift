import Foundation
import Testing

@testable import MIME

@Suite struct MessageTests {
    @Test func theCorpusHasAtLeastThirtyMessages() {
        #expect(Corpus.names.count >= 30)
    }

    @Test(arguments: Corpus.names)
    func everyMessageRoundTripsByteForByte(name: String) throws {
        let bytes = try Corpus.bytes(name)
        let message = try Message(bytes: bytes)
        #expect(message.serialized() == bytes)
    }

    /// The milter already holds the header fields: a message made from them and the body alone
    /// has the same tree over its body and the same signed content as the whole message parsed.
    @Test(arguments: Corpus.names)
    func aMessageFromHeldHeadersAndBodyMatchesTheWholeParse(name: String) throws {
        let whole = try Message(bytes: Corpus.bytes(name))
        let body = Array(whole.bytes[whole.root.bodyRange])
        let held = try Message(headers: whole.root.headers, body: body)
        #expect(held.bytes == body)
        #expect(held.serialized() == body)
        #expect(held.root.headers == whole.root.headers)
        func shape(_ entity: Entity, in message: Message) -> [String] {
            [entity.contentType.value + " " + String(decoding: message.body(of: entity), as: UTF8.self).prefix(64)]
                + entity.parts.flatMap { shape($0, in: message) }
        }
        #expect(shape(held.root, in: held) == shape(whole.root, in: whole))
        func signed(_ message: Message) -> String {
            do { return "\(String(describing: try SignedContent.find(in: message)))" } catch { return "\(error)" }
        }
        #expect(signed(held) == signed(whole))
    }

    /// `sign` reads a message file's header section alone and hands the body on: the same
    /// fields and the same body start as the whole parse, for every message of the corpus.
    @Test(arguments: Corpus.names)
    func theHeaderSectionAloneIsTheWholeParsesHeaderSection(name: String) throws {
        let bytes = try Corpus.bytes(name)
        let whole = try Message(bytes: bytes)
        let section = try Message.headerSection(bytes)
        #expect(section.headers == whole.root.headers)
        #expect(section.bodyStart == whole.root.bodyRange.lowerBound)
    }

    @Test func multipartPartsExcludeTheLineBreakBeforeTheDelimiter() throws {
        let message = try Message(bytes: Corpus.bytes("05-pdf-attachment.eml"))
        #expect(message.root.contentType.value == "multipart/mixed")
        #expect(message.root.parts.count == 2)
        let text = message.bytes(of: message.root.parts[0])
        #expect(text.last == UInt8(ascii: "."))
        let pdf = message.decodedBody(of: message.root.parts[1])
        #expect(pdf.starts(with: Array("%PDF-1.4".utf8)))
        #expect(message.root.parts[1].header("Content-Disposition").map { ContentType(parsing: $0.value)["filename"] } == "bao-cao.pdf")
    }

    @Test func nestedMultipartsAndEncapsulatedMessagesAreWalked() throws {
        let nested = try Message(bytes: Corpus.bytes("06-mixed-alternative-related.eml"))
        #expect(nested.root.parts.count == 2)
        let alternative = nested.root.parts[0]
        #expect(alternative.contentType.value == "multipart/alternative")
        #expect(alternative.parts[1].contentType.value == "multipart/related")
        #expect(alternative.parts[1].parts[1].contentType.value == "image/png")
        let forwarded = try Message(bytes: Corpus.bytes("07-message-rfc822.eml"))
        let inner = try #require(forwarded.root.parts[1].encapsulated?.entity)
        #expect(inner.header("Subject")?.value == "Original")
    }

    @Test func aMissingCloseDelimiterKeepsTheLastPart() throws {
        let message = try Message(bytes: Corpus.bytes("10-missing-close-boundary.eml"))
        #expect(message.root.parts.count == 2)
        #expect(!message.root.isClosed)
        // The body's last line break ends the part, as a close delimiter's would (Python's
        // `email` reads it so too), and is kept as the epilogue for the round trip.
        #expect(String(decoding: message.body(of: message.root.parts[1]), as: UTF8.self) == "Second part, never closed.")
        #expect(message.bytes[message.root.epilogueRange].elementsEqual("\r\n".utf8))
    }

    @Test func preambleEpilogueAndTransportPaddingAreRecognised() throws {
        let message = try Message(bytes: Corpus.bytes("15-preamble-epilogue.eml"))
        #expect(String(decoding: message.bytes[message.root.preambleRange], as: UTF8.self).hasPrefix("This is the preamble."))
        #expect(String(decoding: message.bytes[message.root.epilogueRange], as: UTF8.self) == "This is the epilogue.\r\n")
        let padded = try Message(bytes: Corpus.bytes("24-transport-padding.eml"))
        #expect(padded.root.parts.count == 1 && padded.root.isClosed)
    }

    @Test func bareLFMessagesParse() throws {
        let message = try Message(bytes: Corpus.bytes("08-bare-lf.eml"))
        #expect(message.root.header("Content-Transfer-Encoding")?.value == "8bit")
        #expect(message.root.contentType["charset"] == "utf-8")
    }

    @Test func foldedHeadersUnfold() throws {
        let message = try Message(bytes: Corpus.bytes("33-folded-headers.eml"))
        #expect(message.root.header("Subject")?.value == "a subject  folded over\tthree lines")
        #expect(message.root.contentType["format"] == "flowed")
    }

    // MARK: limits against hostile input

    @Test func anOversizedHeaderSectionIsATypedError() {
        let huge = Array(("X-Junk: " + String(repeating: "a", count: 5000) + "\r\n").utf8)
        var bytes: [UInt8] = []
        for _ in 0..<50 { bytes += huge }
        #expect(throws: MIMEError.self) {
            try Message(bytes: bytes, limits: MIMELimits(maximumHeaderBytes: 100_000))
        }
        do {
            _ = try Message(bytes: bytes, limits: MIMELimits(maximumHeaderBytes: 100_000))
        } catch let error as MIMEError {
            #expect(error.kind == .headerTooLarge)
        } catch {}
    }

    @Test func tooManyHeaderFieldsIsATypedError() {
        let bytes = Array(String(repeating: "X-A: b\r\n", count: 300).utf8)
        #expect { try Message(bytes: bytes, limits: MIMELimits(maximumHeaderCount: 100)) } throws: {
            ($0 as? MIMEError)?.kind == .tooManyHeaders
        }
    }

    @Test func deepNestingIsATypedError() throws {
        let bytes = try Corpus.bytes("32-deep-nesting.eml")
        #expect { try Message(bytes: bytes, limits: MIMELimits(maximumDepth: 5)) } throws: {
            ($0 as? MIMEError)?.kind == .tooDeep
        }
        #expect(throws: Never.self) { try Message(bytes: bytes) }
    }

    @Test func tooManyPartsIsATypedError() {
        var text = "Content-Type: multipart/mixed; boundary=x\r\n\r\n"
        for _ in 0..<200 { text += "--x\r\n\r\npart\r\n" }
        text += "--x--\r\n"
        #expect { try Message(bytes: Array(text.utf8), limits: MIMELimits(maximumParts: 100)) } throws: {
            ($0 as? MIMEError)?.kind == .tooManyParts
        }
    }
}

extension MessageTests {
    /// Found by `make fuzz`: two delimiter lines in a row.
    @Test func adjacentDelimitersEncloseAnEmptyPart() throws {
        let bytes = Array("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b\r\n\r\nx\r\n--b--\r\n".utf8)
        let message = try Message(bytes: bytes)
        #expect(message.root.parts.count == 2)
        #expect(message.bytes(of: message.root.parts[0]).isEmpty)
        #expect(message.serialized() == bytes)
    }
}
