import Foundation

/// A `Content-Type` or `Content-Disposition` value: the type (lower-cased) and its parameters,
/// with RFC 2231 continuations joined and charsets decoded.
public struct ContentType: Sendable, Equatable {
    /// `text/plain`, `multipart/mixed`, ... (or `attachment` for a disposition), lower case.
    public var value: String
    /// Parameters by lower-cased name, in the order first seen.
    public var parameters: [(name: String, value: String)]

    public static func == (lhs: ContentType, rhs: ContentType) -> Bool {
        lhs.value == rhs.value && lhs.parameters.map(\.name) == rhs.parameters.map(\.name)
            && lhs.parameters.map(\.value) == rhs.parameters.map(\.value)
    }

    /// RFC 2045 section 5.2: no Content-Type means `text/plain; charset=us-ascii`.
    public static let defaultType = ContentType(value: "text/plain", parameters: [("charset", "us-ascii")])

    public init(value: String, parameters: [(name: String, value: String)] = []) {
        self.value = value.lowercased()
        self.parameters = parameters
    }

    public var type: String { String(value.prefix(while: { $0 != "/" })) }
    public var subtype: String {
        guard let slash = value.firstIndex(of: "/") else { return "" }
        return String(value[value.index(after: slash)...])
    }
    public var isMultipart: Bool { type == "multipart" }

    public subscript(_ name: String) -> String? {
        let name = name.lowercased()
        return parameters.first(where: { $0.name == name })?.value
    }

    // MARK: parsing

    /// Parses a header value. Never fails: what cannot be read is skipped, as mail clients do.
    public init(parsing text: String) {
        var scanner = Tokenizer(text)
        let major = scanner.token()
        var value = major
        if scanner.take("/") {
            value += "/" + scanner.token()
        }
        self.value = value.lowercased()
        var plain: [(String, String)] = []
        // RFC 2231: name*0, name*1*, ... and name* with charset'language'%XX.
        var sections: [String: [(Int, String, Bool)]] = [:]
        var order: [String] = []
        while scanner.take(";") {
            let name = scanner.token().lowercased()
            guard !name.isEmpty, scanner.take("=") else { continue }
            let raw = scanner.valueOrQuoted()
            var base = name
            var section = 0
            var extended = false
            if base.hasSuffix("*") {
                extended = true
                base.removeLast()
            }
            if let star = base.firstIndex(of: "*"), let number = Int(base[base.index(after: star)...]) {
                section = number
                base = String(base[..<star])
            } else if base.utf8.contains(UInt8(ascii: "*")) {
                continue
            }
            if !order.contains(base) { order.append(base) }
            if extended || section > 0 || name != base {
                sections[base, default: []].append((section, raw, extended))
            } else {
                plain.append((base, raw))
            }
        }
        var parameters: [(name: String, value: String)] = []
        for name in order {
            if let parts = sections[name] {
                parameters.append((name, Self.join(parts.sorted(by: { $0.0 < $1.0 }))))
            } else if let value = plain.first(where: { $0.0 == name })?.1 {
                parameters.append((name, value))
            }
        }
        self.parameters = parameters
    }

    /// Joins RFC 2231 sections; the first extended one carries `charset'language'`.
    private static func join(_ parts: [(Int, String, Bool)]) -> String {
        var bytes: [UInt8] = []
        var charset = "utf-8"
        for (index, part) in parts.enumerated() {
            var text = Substring(part.1)
            if part.2 {
                if index == 0 {
                    let pieces = text.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
                    if pieces.count == 3 {
                        charset = pieces[0].isEmpty ? "us-ascii" : String(pieces[0]).lowercased()
                        text = pieces[2]
                    }
                }
                bytes += percentDecode(text)
            } else {
                bytes += Array(text.utf8)
            }
        }
        return Charset.decode(bytes, charset: charset)
    }

    private static func percentDecode(_ text: Substring) -> [UInt8] {
        var out: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == 0x25, index + 2 < utf8.count, let high = hex(utf8[index + 1]), let low = hex(utf8[index + 2]) {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(utf8[index])
                index += 1
            }
        }
        return out
    }

    static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }

    // MARK: writing

    /// The value as a header field body. ASCII parameters are written as tokens or quoted
    /// strings; others in RFC 2231 form (`name*=utf-8''%E1%BB%9F`), so the header stays 7-bit.
    ///
    /// A media type or parameter name that is not an ASCII token cannot be written as such: the
    /// type becomes `application/octet-stream` and such parameters are left out.
    public var headerValue: String {
        let parts = value.split(separator: "/", omittingEmptySubsequences: false)
        let valid = parts.count <= 2 && parts.allSatisfy { Self.isToken(String($0)) }
        var text = valid ? value : "application/octet-stream"
        for (name, value) in parameters where Self.isToken(name) {
            text += "; "
            if value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
                text += name + "=" + (Self.isToken(value) ? value : Self.quoted(value))
            } else {
                text += name + "*=utf-8''" + Self.percentEncode(value)
            }
        }
        return text
    }

    static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            byte > 0x20 && byte < 0x7F && !"()<>@,;:\\\"/[]?=".utf8.contains(byte)
        }
    }

    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || "-._~".utf8.contains(byte)
            {
                out.append(Character(Unicode.Scalar(byte)))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}

/// A small tokenizer for RFC 2045 parameter syntax: tokens, quoted strings, comments.
struct Tokenizer {
    private let scalars: [Unicode.Scalar]
    private var index = 0

    init(_ text: String) {
        scalars = Array(text.unicodeScalars)
    }

    private mutating func skipSpaceAndComments() {
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == " " || scalar == "\t" || scalar == "\r" || scalar == "\n" {
                index += 1
            } else if scalar == "(" {
                var depth = 0
                while index < scalars.count {
                    if scalars[index] == "\\" {
                        index += 1
                    } else if scalars[index] == "(" {
                        depth += 1
                    } else if scalars[index] == ")" {
                        depth -= 1
                        if depth == 0 {
                            index += 1
                            break
                        }
                    }
                    index += 1
                }
            } else {
                break
            }
        }
    }

    mutating func take(_ character: Unicode.Scalar) -> Bool {
        skipSpaceAndComments()
        if index < scalars.count && scalars[index] == character {
            index += 1
            return true
        }
        // Skip junk up to the next separator so one bad parameter does not end the parse.
        if character == ";" {
            while index < scalars.count && scalars[index] != ";" { index += 1 }
            if index < scalars.count {
                index += 1
                return true
            }
        }
        return false
    }

    mutating func token() -> String {
        skipSpaceAndComments()
        var out = String.UnicodeScalarView()
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar.value <= 0x20 || Self.isSpecial(scalar) { break }
            out.append(scalar)
            index += 1
        }
        return String(out)
    }

    /// RFC 2045's tspecials: `()<>@,;:\"/[]?=`.
    static func isSpecial(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "(", ")", "<", ">", "@", ",", ";", ":", "\\", "\"", "/", "[", "]", "?", "=": true
        default: false
        }
    }

    mutating func valueOrQuoted() -> String {
        skipSpaceAndComments()
        guard index < scalars.count, scalars[index] == "\"" else { return token() }
        index += 1
        var out = String.UnicodeScalarView()
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "\\" && index + 1 < scalars.count {
                out.append(scalars[index + 1])
                index += 2
                continue
            }
            index += 1
            if scalar == "\"" { break }
            out.append(scalar)
        }
        return String(out)
    }
}

/// Charsets the decoders know; anything else is read as UTF-8 with Latin-1 fallback.
enum Charset {
    static func decode(_ bytes: [UInt8], charset: String) -> String {
        switch charset.lowercased() {
        case "iso-8859-1", "latin1", "iso_8859-1":
            return String(bytes.map { Character(Unicode.Scalar($0)) })
        case "windows-1252", "cp1252":
            return String(data: Data(bytes), encoding: .windowsCP1252) ?? HeaderField.text(bytes)
        case "utf-16":
            return String(data: Data(bytes), encoding: .utf16) ?? HeaderField.text(bytes)
        default:
            return HeaderField.text(bytes)
        }
    }
}
