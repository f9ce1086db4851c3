import Foundation
import Gateway
import MIME
import SMIME
import TestSupport
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

    /// In Vietnamese, as the province's recipients read it: decoded by Python's `email.header`
    /// (an independent RFC 2047 decoder), the words, result and reason are Vietnamese.
    @Test func theReadableHeaderInVietnameseDecodesInAnIndependentParser() throws {
        var policy = verdict
        policy.set(.policy, because: .addressMismatch(certificate: ["stttt@dienbien.gov.vn"], from: "ketoan@stttt.dienbien.gov.vn"))
        let value = VerificationHeaders.readable(policy, language: .vi)
        #expect(value.utf8.allSatisfy { $0 < 0x80 }, "RFC 2047-encoded")
        let folded = HeaderField.fold(name: VerificationHeaders.readableName, value: value)
        let script = """
            import sys
            from email.header import decode_header, make_header
            value = sys.stdin.read().split(":", 1)[1]
            print(str(make_header(decode_header(value))))
            """
        let decoded = try TestPKI.run(["python3", "-c", script], input: Array(folded.utf8))
        #expect(decoded.status == 0, "\(decoded.output)")
        let text = decoded.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(text.hasPrefix("chữ ký số đúng nhưng không được chấp nhận; lý do: địa chỉ thư trong chứng thư số"), "\(text)")
        #expect(text.contains("không phải địa chỉ người gửi ketoan@stttt.dienbien.gov.vn"), "\(text)")
        #expect(text.contains("người ký: Sở Thông tin và Truyền thông <stttt@dienbien.gov.vn>"), "\(text)")
        #expect(text.contains("cơ quan: Sở Thông tin và Truyền thông tỉnh Điện Biên"), "\(text)")
        // The machine-readable header keeps its keywords and an English reason.
        let results = VerificationHeaders.authenticationResults(policy, authservID: "mx")
        #expect(results.hasPrefix("mx; smime=policy reason=\"the signer's address (stttt@dienbien.gov.vn) is not the From address"))
    }

    /// Every reason has its own Vietnamese sentence.
    @Test func everyReasonReadsInVietnamese() {
        let day = Date(timeIntervalSince1970: 1_795_000_000)
        let reasons: [VerdictReason] = [
            .notSigned, .verificationOff, .malformedMessage(signed: true, detail: "x"), .notCMS, .notSignedData, .noSigner,
            .noContent, .altered, .badSignature, .signerCertificateMissing, .unprocessable("x"), .unreadableCertificate,
            .revoked(subject: "CN=A", since: day, byOCSP: true), .revocationUnknown("x"), .untrusted("x"),
            .outsideValidity(expired: true, detail: "x"), .certificateNotAcceptable("x"), .keyUsage, .extendedKeyUsage,
            .signedOutsideValidity(day), .signingTimeSkew(minutes: 120, allowed: 60),
            .addressMismatch(certificate: [], from: "a@b.vn"), .noAuthor, .notes("x"), .sha1Signature,
        ]
        for reason in reasons {
            #expect(reason.vietnamese != reason.english && !reason.vietnamese.isEmpty, "\(reason)")
            #expect(reason.vietnamese.unicodeScalars.contains { $0.value > 0x7F }, "\(reason): \(reason.vietnamese)")
        }
        #expect(VerdictReason.revoked(subject: "CN=A", since: day, byOCSP: false).vietnamese.contains("từ ngày 18/11/2026"))
    }

    @Test func theReadableHeaderDecodesToVietnameseAndFoldsWithinLimits() {
        let value = VerificationHeaders.readable(verdict, language: .en)
        #expect(value.utf8.allSatisfy { $0 < 0x80 })
        #expect(value.hasPrefix("pass; signer: =?UTF-8?"))
        #expect(EncodedWord.decode(value) == VerificationHeaders.readableText(verdict, language: .en))
        #expect(VerificationHeaders.readableText(verdict, language: .en).contains("signer: Sở Thông tin và Truyền thông <stttt@dienbien.gov.vn>"))
        let folded = HeaderField.fold(name: VerificationHeaders.readableName, value: value)
        for line in folded.components(separatedBy: "\r\n") {
            #expect(line.utf8.count <= 78)
        }
        // Parsed back as a header field, it decodes to the same text.
        let field = HeaderField(name: "X", rawValue: Array(folded.dropFirst(VerificationHeaders.readableName.count + 1).utf8))
        #expect(field.decodedValue == VerificationHeaders.readableText(verdict, language: .en))
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
