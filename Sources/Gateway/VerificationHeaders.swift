import Foundation
public import MIME
public import SMIME

/// The headers verification adds: `Authentication-Results` (RFC 8601, method `smime` of
/// RFC 7281) and one a person can read, and the removal of forged copies of both.
public enum VerificationHeaders {
    /// The name of the readable header.
    public static let readableName = "X-SMIME-Verification"

    /// The fields verification adds, in the order they end up at the top of the message
    /// (`Authentication-Results` first), shaped by the configuration (`AuthservID`,
    /// `AddReadableHeader`, `HeaderLanguage`). The milter and `smime-milter verify` both write these.
    public static func fields(_ verdict: Verdict, configuration: Configuration) -> [(name: String, value: String)] {
        var fields = [(name: "Authentication-Results", value: authenticationResults(verdict, authservID: configuration.authservID))]
        if configuration.addReadableHeader {
            fields.append((name: readableName, value: readable(verdict, language: configuration.headerLanguage)))
        }
        return fields
    }

    /// The `Authentication-Results` value, 7-bit: non-ASCII in the issuer is escaped as in
    /// RFC 4514 (`\C6\A1`).
    public static func authenticationResults(_ verdict: Verdict, authservID: String) -> String {
        var text = "\(authservID); smime=\(verdict.result.rawValue)"
        if verdict.result != .pass && verdict.result != .none && !verdict.reason.isEmpty {
            text += " reason=\(quoted(verdict.reason))"
        }
        guard verdict.result != .none else { return text }
        if let identifier = verdict.emailAddresses.first, identifier.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            text += " body.smime-identifier=\(identifier)"
        }
        if let part = verdict.part { text += " body.smime-part=\(part)" }
        if let serial = verdict.serial, !serial.isEmpty { text += " body.smime-serial=\(serial)" }
        if let issuer = verdict.issuer { text += " body.smime-issuer=\(quoted(issuer))" }
        return text
    }

    /// The readable header: result, reason, signer, organisation, address, issuer, serial and
    /// signing time, in one line of text in `language`, RFC 2047-encoded when it holds non-ASCII.
    public static func readable(_ verdict: Verdict, language: VerdictReason.Language) -> String {
        EncodedWord.encodeWords(readableText(verdict, language: language))
    }

    /// The same, unencoded (what a mail client shows after decoding).
    public static func readableText(_ verdict: Verdict, language: VerdictReason.Language) -> String {
        let words = Words.of(language)
        var parts: [String] = [words.result(verdict.result)]
        if verdict.result != .pass {
            let reason = verdict.because.map { $0.text(language) } ?? verdict.reason
            if !reason.isEmpty { parts.append("\(words.reason): \(reason)") }
        }
        if verdict.result != .none {
            var signer = verdict.commonName ?? verdict.subject ?? words.unknownSigner
            if let email = verdict.emailAddresses.first { signer += " <\(email)>" }
            parts.append("\(words.signer): \(signer)")
            if let organization = verdict.organization { parts.append("\(words.organization): \(organization)") }
            if let issuer = verdict.issuer { parts.append("\(words.issuer): \(issuer)") }
            if let serial = verdict.serial { parts.append("\(words.serial): \(serial)") }
            if let time = verdict.signingTime { parts.append("\(words.signed): \(DateText.iso8601(time))") }
            if let part = verdict.part { parts.append("\(words.part): \(part)") }
        }
        return parts.joined(separator: "; ")
    }

    /// The readable header's words in each language.
    struct Words {
        let results: [Verdict.Result: String]
        let reason, signer, unknownSigner, organization, issuer, serial, signed, part: String

        func result(_ result: Verdict.Result) -> String { results[result] ?? result.rawValue }

        static func of(_ language: VerdictReason.Language) -> Words {
            language == .vi ? vietnamese : english
        }

        static let english = Words(
            results: [:], reason: "reason", signer: "signer", unknownSigner: "unknown signer",
            organization: "organization", issuer: "issuer", serial: "serial", signed: "signed", part: "part")

        static let vietnamese = Words(
            results: [
                .pass: "chữ ký số hợp lệ", .fail: "chữ ký số không hợp lệ",
                .policy: "chữ ký số đúng nhưng không được chấp nhận",
                .neutral: "không xử lý được chữ ký số", .temperror: "tạm thời chưa kiểm tra được chữ ký số",
                .permerror: "chữ ký số bị hỏng", .none: "thư không có chữ ký số",
            ],
            reason: "lý do", signer: "người ký", unknownSigner: "không rõ người ký", organization: "cơ quan",
            issuer: "tổ chức cấp chứng thư", serial: "số hiệu chứng thư", signed: "thời điểm ký", part: "phần thư")
    }

    /// Deletions of every `Authentication-Results` carrying our authserv-id and every copy of
    /// the readable header, last occurrence first so the numbering holds.
    public static func removals(in headers: [HeaderField], authservID: String) -> [HeaderEdit] {
        var edits: [HeaderEdit] = []
        var counts: [String: Int] = [:]
        for field in headers {
            let key = field.name.lowercased()
            counts[key, default: 0] += 1
            if field.hasName(readableName) {
                edits.append(.delete(name: field.name, occurrence: counts[key]!))
            } else if field.hasName("Authentication-Results"), authservIDOf(field.value)?.lowercased() == authservID.lowercased() {
                edits.append(.delete(name: field.name, occurrence: counts[key]!))
            }
        }
        return edits.reversed()
    }

    /// The authserv-id of an `Authentication-Results` value (RFC 8601 section 2.2), comments skipped.
    public static func authservIDOf(_ value: String) -> String? {
        var text = Substring(value)
        while let first = text.first, first == " " || first == "\t" || first == "(" {
            if first == "(" {
                guard let close = text.firstIndex(of: ")") else { return nil }
                text = text[text.index(after: close)...]
            } else {
                text = text.dropFirst()
            }
        }
        let id = text.prefix(while: { $0 != ";" && $0 != " " && $0 != "\t" && $0 != "(" })
        return id.isEmpty ? nil : String(id)
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for byte in text.utf8 {
            switch byte {
            case 0x22, 0x5C: out += "\\" + String(UnicodeScalar(byte))
            case 0x20..<0x7F: out.append(Character(UnicodeScalar(byte)))
            default: out += String(format: "\\\\%02X", byte)
            }
        }
        return out + "\""
    }
}
