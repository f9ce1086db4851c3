import Foundation
import Gateway
import MIME
import SMIME
import Testing

@Suite struct VerificationHeadersTests {
    let verdict = Verdict(
        result: .pass, subject: "CN=Sở Thông tin và Truyền thông,C=VN", commonName: "Sở Thông tin và Truyền thông",
        organization: "Sở Thông tin và Truyền thông tỉnh Điện Biên", emailAddresses: ["stttt@dienbien.gov.vn"],
        serial: "1a2b3c", issuer: "CN=TEST Cơ quan chứng thực số Chính phủ,O=Ban Cơ yếu Chính phủ (TEST),C=VN",
        signingTime: Date(timeIntervalSince1970: 1_795_000_000), part: "1")

    @Test func authenticationResultsIsSevenBitRFC8601() throws {
        let value = VerificationHeaders.authenticationResults(verdict, authservID: "mail.dienbien.gov.vn")
        #expect(value.utf8.allSatisfy { $0 < 0x80 })
        #expect(VerificationHeaders.authservIDOf(value) == "mail.dienbien.gov.vn")
        #expect(value.hasPrefix("mail.dienbien.gov.vn; smime=pass body.smime-identifier=stttt@dienbien.gov.vn"))
        #expect(value.contains("body.smime-part=1 body.smime-serial=1a2b3c"))
        // The issuer is one quoted-string whose content is the RFC 4514 form of the UTF-8 DN.
        let issuer = try #require(value.range(of: "body.smime-issuer=\"")).upperBound
        var unquoted = ""
        var escaped = false
        for character in value[issuer...].dropLast() {
            if escaped { unquoted.append(character); escaped = false } else if character == "\\" { escaped = true } else { unquoted.append(character) }
        }
        #expect(unquoted.hasPrefix("CN=TEST C\\C6\\A1 quan"))
    }

    @Test func aPolicyResultCarriesItsReason() {
        var policy = verdict
        policy.result = .policy
        policy.reason = "the certificate \"X\" expired"
        let value = VerificationHeaders.authenticationResults(policy, authservID: "mx")
        #expect(value.hasPrefix("mx; smime=policy reason=\"the certificate \\\"X\\\" expired\" body.smime-identifier="))
        #expect(VerificationHeaders.authenticationResults(Verdict(result: .none), authservID: "mx") == "mx; smime=none")
    }

    @Test func theReadableHeaderDecodesToVietnameseAndFoldsWithinLimits() {
        let value = VerificationHeaders.readable(verdict)
        #expect(value.utf8.allSatisfy { $0 < 0x80 })
        #expect(value.hasPrefix("pass; signer: =?UTF-8?"))
        #expect(EncodedWord.decode(value) == VerificationHeaders.readableText(verdict))
        #expect(VerificationHeaders.readableText(verdict).contains("signer: Sở Thông tin và Truyền thông <stttt@dienbien.gov.vn>"))
        let folded = HeaderField.fold(name: VerificationHeaders.readableName, value: value)
        for line in folded.components(separatedBy: "\r\n") {
            #expect(line.utf8.count <= 78)
        }
        // Parsed back as a header field, it decodes to the same text.
        let field = HeaderField(name: "X", rawValue: Array(folded.dropFirst(VerificationHeaders.readableName.count + 1).utf8))
        #expect(field.decodedValue == VerificationHeaders.readableText(verdict))
    }

    @Test func forgedCopiesWithOurIDAreRemovedOthersKept() {
        let headers = [
            HeaderField(name: "Authentication-Results", value: "mail.dienbien.gov.vn; smime=pass"),
            HeaderField(name: "Received", value: "from x"),
            HeaderField(name: "Authentication-Results", value: "mx.google.com; dkim=pass"),
            HeaderField(name: "authentication-results", value: " (forged) MAIL.dienbien.gov.vn; smime=pass"),
            HeaderField(name: "X-SMIME-Verification", value: "pass; signer: forged"),
        ]
        let edits = VerificationHeaders.removals(in: headers, authservID: "mail.dienbien.gov.vn")
        #expect(
            edits == [
                .delete(name: "X-SMIME-Verification", occurrence: 1),
                .delete(name: "authentication-results", occurrence: 3),
                .delete(name: "Authentication-Results", occurrence: 1),
            ])
        let kept = HeaderEdit.apply(edits, to: headers)
        #expect(kept.map(\.value) == ["from x", "mx.google.com; dkim=pass"])
    }

    @Test func theAuthorIsFromOrSenderWhenFromHasSeveral() {
        #expect(Verification.authorAddress([HeaderField(name: "From", value: "\"Văn thư, Sở\" <vanthu.stttt@dienbien.gov.vn>")]) == "vanthu.stttt@dienbien.gov.vn")
        #expect(
            Verification.authorAddress([
                HeaderField(name: "From", value: "a@dienbien.gov.vn, b@dienbien.gov.vn"),
                HeaderField(name: "Sender", value: "Văn thư <vanthu.stttt@dienbien.gov.vn>"),
            ]) == "vanthu.stttt@dienbien.gov.vn")
        #expect(Address.list("x@y.vn (comment <z@w.vn>)") == ["x@y.vn"])
    }
}
