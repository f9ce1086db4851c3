public import Foundation
public import MIME
public import SMIME

/// Verifying a whole message: MIME finds the signed content, SMIME checks it.
public enum Verification {
    /// The verdict for a parsed message; `from` is the author's address (`authorAddress`). The
    /// Date header is compared with the signing time. A message with no author address cannot
    /// pass: the signature would vouch for nobody the recipient sees.
    public static func verify(message: Message, from: String?, verifier: Verifier) -> Verdict {
        let signed: SignedContent?
        do {
            signed = try SignedContent.find(in: message)
        } catch {
            return Verdict(result: .permerror, because: .malformedMessage(signed: true, detail: "\(error)"))
        }
        guard let signed else { return Verdict(result: .none, because: .notSigned) }
        return verify(signed: signed, headers: message.root.headers, from: from, verifier: verifier)
    }

    /// The verdict for signed content already found; `headers` are the message's (for Date).
    public static func verify(signed: SignedContent, headers: [HeaderField], from: String?, verifier: Verifier) -> Verdict {
        let date = date(of: headers)
        var verdict: Verdict
        switch signed {
        case .detached(let content, let signature, let part):
            verdict = verifier.verify(cms: signature, detachedContent: content, from: from, date: date, part: part)
        case .opaque(let cms, let part):
            verdict = verifier.verify(cms: cms, detachedContent: nil, from: from, date: date, part: part)
        }
        if verdict.result == .pass && from == nil {
            verdict.set(.policy, because: .noAuthor)
        }
        return verdict
    }

    /// The message's Date (RFC 5322, with the obsolete forms mail still carries), if it has one
    /// that parses.
    public static func date(of headers: [HeaderField]) -> Date? {
        headers.first(where: { $0.hasName("Date") }).flatMap { DateText.parseRFC5322($0.value) }
    }

    /// The address that identifies the author: the From address, or Sender's when From holds
    /// several (RFC 5322 section 3.6.2).
    public static func authorAddress(_ headers: [HeaderField]) -> String? {
        guard let from = headers.first(where: { $0.hasName("From") }) else { return nil }
        let addresses = Address.list(from.value)
        if addresses.count == 1 { return addresses[0] }
        return headers.first(where: { $0.hasName("Sender") }).flatMap { Address.list($0.value).first }
    }
}

/// Just enough RFC 5322 address parsing to find the addr-specs in a From or Sender field.
public enum Address {
    /// The addresses in an address list, lower-cased domain kept as written.
    public static func list(_ value: String) -> [String] {
        var addresses: [String] = []
        var current = ""
        var inQuotes = false
        var depth = 0
        var angle: String?
        for character in value {
            if inQuotes {
                if character == "\"" { inQuotes = false }
                continue
            }
            switch character {
            case "\"": inQuotes = true
            case "(": depth += 1
            case ")": depth = max(0, depth - 1)
            case "<" where depth == 0: angle = ""
            case ">" where depth == 0:
                if let found = angle { current = found }
                angle = nil
            case "," where depth == 0 && angle == nil:
                if let address = clean(current) { addresses.append(address) }
                current = ""
            default:
                if depth > 0 { continue }
                if angle != nil { angle!.append(character) } else { current.append(character) }
            }
        }
        if let address = clean(current) { addresses.append(address) }
        return addresses
    }

    private static func clean(_ text: String) -> String? {
        let candidate = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.map(String.init) ?? ""
        return candidate.contains("@") ? candidate : nil
    }
}
