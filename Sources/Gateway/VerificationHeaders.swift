import Foundation
public import MIME
public import SMIME

/// The headers verification adds: `Authentication-Results` (RFC 8601, method `smime` of
/// RFC 7281) and one a person can read, and the removal of forged copies of both.
public enum VerificationHeaders {
    /// The name of the readable header.
    public static let readableName = "X-SMIME-Verification"

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
    /// signing time, in one line of text, RFC 2047-encoded when it holds non-ASCII names.
    public static func readable(_ verdict: Verdict) -> String {
        EncodedWord.encodeWords(readableText(verdict))
    }

    /// The same, unencoded (what a mail client shows after decoding).
    public static func readableText(_ verdict: Verdict) -> String {
        var parts: [String] = [verdict.result.rawValue]
        if !verdict.reason.isEmpty && verdict.result != .pass { parts.append("reason: \(verdict.reason)") }
        if verdict.result != .none {
            var signer = verdict.commonName ?? verdict.subject ?? "unknown signer"
            if let email = verdict.emailAddresses.first { signer += " <\(email)>" }
            parts.append("signer: \(signer)")
            if let organization = verdict.organization { parts.append("organization: \(organization)") }
            if let issuer = verdict.issuer { parts.append("issuer: \(issuer)") }
            if let serial = verdict.serial { parts.append("serial: \(serial)") }
            if let time = verdict.signingTime {
                let formatter = ISO8601DateFormatter()
                parts.append("signed: \(formatter.string(from: time))")
            }
            if let part = verdict.part { parts.append("part: \(part)") }
        }
        return parts.joined(separator: "; ")
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
