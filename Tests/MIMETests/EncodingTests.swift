import Foundation
import PropertyBased
import Testing

@testable import MIME

@Suite struct EncodingTests {
    static let bytes = Gen<UInt8>.value(in: 0...255).array(of: 0...400)
    /// Text with Vietnamese letters (Latin Extended Additional), ASCII and line breaks.
    static let text = Gen.unicodeScalar(in: "\u{20}"..."\u{1EF9}").array(of: 0...120).map { scalars in
        String(String.UnicodeScalarView(scalars))
    }

    @Test func base64RoundTrips() async {
        await propertyCheck(count: 300, input: Self.bytes) { data in
            let encoded = Base64.encode(data)
            #expect(Base64.decode(encoded) == data)
            #expect(encoded.split(separator: 0x0A).allSatisfy { $0.count <= 77 })
            #expect(Base64.encode(data, finalLineBreak: false) == Array(Data(data).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed]).utf8))
        }
    }

    @Test func base64DecodingSkipsJunk() {
        #expect(Base64.decode(Array("SGVs\r\nbG8 *=".utf8)) == Array("Hello".utf8))
    }

    @Test func quotedPrintableRoundTripsBinaryData() async {
        await propertyCheck(count: 300, input: Self.bytes) { data in
            let encoded = QuotedPrintable.encode(data, binary: true)
            #expect(encoded.allSatisfy { $0 < 0x80 })
            #expect(QuotedPrintable.decode(encoded) == data)
            #expect(encoded.split(separator: 0x0A).allSatisfy { $0.count <= 77 })
        }
    }

    @Test func quotedPrintableRoundTripsTextWithCRLFLineBreaks() async {
        let lines = Gen.unicodeScalar(in: "\u{09}"..."\u{1EF9}").array(of: 0...90).map {
            String(String.UnicodeScalarView($0.filter { $0 != "\r" && $0 != "\n" }))
        }.array(of: 0...6)
        await propertyCheck(count: 300, input: lines) { lines in
            let text = Array(lines.joined(separator: "\r\n").utf8)
            let encoded = QuotedPrintable.encode(text)
            #expect(encoded.allSatisfy { $0 < 0x80 })
            #expect(QuotedPrintable.decode(encoded) == text)
            let scan = Scan(encoded[...])
            #expect(!scan.hasTrailingWhitespace && !scan.hasFromLine)
        }
    }

    @Test func quotedPrintableEscapesFromAndDotAfterASoftBreakToo() {
        let text = Array((String(repeating: "a", count: 75) + "From here\r\n" + String(repeating: "b", count: 75) + ".end").utf8)
        let encoded = QuotedPrintable.encode(text)
        #expect(String(decoding: encoded, as: UTF8.self).contains("=\r\n=46rom here\r\n"))
        #expect(String(decoding: encoded, as: UTF8.self).hasSuffix("=\r\n=2Eend"))
        #expect(QuotedPrintable.decode(encoded) == text)
    }

    @Test func quotedPrintableDecodingFollowsRFC2045() {
        // An escape, a soft break, transport white space, a lower-case escape, a malformed one.
        let decoded = QuotedPrintable.decode(Array("a=3Db=\r\nc  \r\nd=e9=zz".utf8))
        #expect(decoded == Array("a=bc\r\nd".utf8) + [0xE9] + Array("=zz".utf8))
    }

    @Test func encodedWordsRoundTripVietnamese() async {
        await propertyCheck(count: 300, input: Self.text) { text in
            let encoded = EncodedWord.encode(text)
            #expect(encoded.utf8.allSatisfy { $0 < 0x80 })
            #expect(EncodedWord.decode(encoded) == text)
            for word in encoded.split(separator: " ") where word.hasPrefix("=?") {
                #expect(word.utf8.count <= 60, "the default maximumWordLength, counted before encoding")
            }
        }
    }

    @Test func encodedWordsDecodeAsOtherAgentsWriteThem() {
        #expect(EncodedWord.decode("=?UTF-8?B?U+G7nyBUaMO0bmcgdGluIHbDoCBUcnV54buBbiB0aMO0bmc=?=") == "Sở Thông tin và Truyền thông")
        #expect(EncodedWord.decode("=?utf-8?q?B=C3=A1o_c=C3=A1o?= =?UTF-8?Q?_th=C3=A1ng?=") == "Báo cáo tháng")
        #expect(EncodedWord.decode("=?iso-8859-1?q?caf=E9?= and more") == "café and more")
        #expect(EncodedWord.decode("not =?encoded") == "not =?encoded")
    }

    @Test func contentTypeParametersFollowRFC2045And2231() {
        let type = ContentType(
            parsing: "Application/PDF (comment); name*0*=utf-8''Quy%E1%BA%BFt; name*1=\" so 1\"; x=\"a\\\"b\"; charset=UTF-8")
        #expect(type.value == "application/pdf")
        #expect(type["name"] == "Quyết so 1")
        #expect(type["x"] == "a\"b")
        let written = ContentType(value: "application/pdf", parameters: [("name", "Báo cáo.pdf"), ("size", "12")])
        #expect(written.headerValue == "application/pdf; name*=utf-8''B%C3%A1o%20c%C3%A1o.pdf; size=12")
        #expect(ContentType(parsing: written.headerValue) == written)
    }

    @Test func foldingKeepsLinesWithin78ColumnsAndUnfoldsBack() {
        let value = EncodedWord.encode("Sở Thông tin và Truyền thông tỉnh Điện Biên — báo cáo tổng hợp tình hình ứng dụng chữ ký số")
        let folded = HeaderField.fold(name: "Subject", value: value)
        for line in folded.components(separatedBy: "\r\n") {
            #expect(line.utf8.count <= 78)
        }
        let field = HeaderField(name: "Subject", rawValue: Array(folded.dropFirst("Subject:".count).utf8))
        #expect(field.decodedValue == "Sở Thông tin và Truyền thông tỉnh Điện Biên — báo cáo tổng hợp tình hình ứng dụng chữ ký số")
    }

    /// The octet fold of ASCII values gives exactly what the Character fold gives: words of
    /// letters, runs of spaces and tabs, long words (hard breaks past 998 octets), narrow widths.
    @Test func asciiFoldingAgreesWithCharacterFolding() async {
        let piece = Gen<String?>.element(of: ["a", "bc", "defgh", " ", "  ", "\t", ";", "x=\"y\"", String(repeating: "w", count: 70),
            String(repeating: "L", count: 600)]).compactMap { $0 }
        let value = piece.array(of: 0...30).map { $0.joined() }
        let width = Gen<Int?>.element(of: [78, 20, 1]).compactMap { $0 }
        await propertyCheck(count: 500, input: value, width) { value, width in
            let octets = HeaderField.foldASCII(name: "Content-Type", value: value, width: width)
            #expect(octets == HeaderField.foldCharacters(name: "Content-Type", value: value, width: width))
        }
        #expect(HeaderField.foldASCII(name: "Subject", value: "Báo cáo", width: 78) == nil)
        #expect(HeaderField.foldASCII(name: "Subject", value: "a\r\n b", width: 78) == nil)
    }

    @Test func canonicalFormTurnsEveryLineEndIntoCRLF() {
        #expect(Bytes.canonicalCRLF(Array("a\nb\r\nc\rd\r".utf8)[...]) == Array("a\r\nb\r\nc\r\nd\r\n".utf8))
    }

    /// Against the rule stated on lines: split at every CRLF, CR or LF, join with CRLF.
    @Test func canonicalFormAgreesWithSplittingIntoLines() async {
        let mostlyLineEnds = Gen<UInt8?>.element(of: [UInt8]([0x0D, 0x0A, 0x61, 0x0D, 0x0A])).compactMap { $0 }.array(of: 0...60)
        await propertyCheck(count: 500, input: mostlyLineEnds) { data in
            let text = String(decoding: data, as: UTF8.self)
            let isBreak: @Sendable (Character) -> Bool = { $0 == "\r\n" || $0 == "\r" || $0 == "\n" }
            var lines = text.split(omittingEmptySubsequences: false, whereSeparator: isBreak)
            let endsWithBreak = text.last.map(isBreak) ?? false
            if endsWithBreak { lines.removeLast() }
            let expected = lines.joined(separator: "\r\n") + (endsWithBreak ? "\r\n" : "")
            let slice = ([0x7A] + data + [0x7A])[1..<(data.count + 1)]  // a slice whose indices do not start at 0
            #expect(Bytes.canonicalCRLF(slice) == Array(expected.utf8), "\(data)")
        }
    }
}
