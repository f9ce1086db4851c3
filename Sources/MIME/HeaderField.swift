/// One header field exactly as it arrived: its name, and its raw value (everything after the
/// colon, folding line breaks included), so that it can be written back byte for byte.
public struct HeaderField: Sendable, Equatable {
    public let name: String
    /// The octets after the colon up to (not including) the final line ending, with any folding
    /// (CRLF or LF followed by white space) kept.
    public let rawValue: [UInt8]
    /// The whole field as it stood in the message, final line ending included; nil for a field
    /// made in code.
    public let raw: [UInt8]?

    public init(name: String, rawValue: [UInt8], raw: [UInt8]? = nil) {
        self.name = name
        self.rawValue = rawValue
        self.raw = raw
    }

    public init(name: String, value: String) {
        self.init(name: name, rawValue: Array(value.utf8))
    }

    /// The value unfolded (RFC 5322 section 2.2.3), with leading and trailing white space removed.
    /// Octets that are not UTF-8 are decoded as Latin-1 rather than lost.
    public var value: String {
        var unfolded: [UInt8] = []
        unfolded.reserveCapacity(rawValue.count)
        for byte in rawValue where byte != Bytes.cr && byte != Bytes.lf {
            unfolded.append(byte)
        }
        let trimmed = unfolded.drop(while: Bytes.isWhitespace).reversed().drop(while: Bytes.isWhitespace).reversed()
        return HeaderField.text(Array(trimmed))
    }

    /// The value with RFC 2047 encoded words decoded.
    public var decodedValue: String { EncodedWord.decode(value) }

    /// Field names are US-ASCII (RFC 5322 section 2.2): an ASCII case fold compares them, without
    /// Foundation's Unicode comparison (which cost more than parsing a small message).
    public func hasName(_ other: String) -> Bool {
        func lower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }
        return name.utf8.count == other.utf8.count && zip(name.utf8, other.utf8).allSatisfy { lower($0) == lower($1) }
    }

    /// True for the fields that describe content (RFC 2045 section 9: every `Content-*`).
    public var isContentField: Bool {
        name.lowercased().hasPrefix("content-")
    }

    /// The field in canonical form: raw bytes with CRLF line ends, or, for a made field, folded.
    public var canonicalBytes: [UInt8] {
        if let raw { return Bytes.canonicalCRLF(raw[...]) }
        return Array(HeaderField.fold(name: name, value: HeaderField.text(rawValue)).utf8) + Bytes.crlf
    }

    static func text(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        return String(bytes.map { Character(Unicode.Scalar($0)) })
    }

    /// `Name: value` folded at white space so that lines stay within 78 columns where the value
    /// allows, and never over 998 (RFC 5322 section 2.1.1). Lines are joined with CRLF + the
    /// white space that was there; no final CRLF.
    public static func fold(name: String, value: String, width: Int = 78) -> String {
        foldASCII(name: name, value: value, width: width) ?? foldCharacters(name: name, value: value, width: width)
    }

    /// `fold` over octets, for a name and value of printable ASCII, space and tab (every header
    /// the milter writes when it signs): there each octet is one `Character`, so the result is
    /// the same, without the cost of Swift's grapheme breaking (a measurable part of the
    /// milter's header edits). Nil for anything else.
    static func foldASCII(name: String, value: String, width: Int) -> String? {
        var name = name
        var value = value
        return name.withUTF8 { nameBytes in
            value.withUTF8 { valueBytes -> String? in
                func plain(_ byte: UInt8) -> Bool { (byte >= 0x20 && byte < 0x7F) || byte == Bytes.tab }
                guard nameBytes.allSatisfy(plain), valueBytes.allSatisfy(plain) else { return nil }
                func white(_ byte: UInt8) -> Bool { byte == Bytes.space || byte == Bytes.tab }
                // Words as `foldCharacters` makes them: each starts with the run of white space before it.
                var words: [Range<Int>] = []
                var start = 0
                for index in valueBytes.indices where index > start && white(valueBytes[index]) && !white(valueBytes[index - 1]) {
                    words.append(start..<index)
                    start = index
                }
                if start < valueBytes.count { words.append(start..<valueBytes.count) }
                var lines: [[UInt8]] = []
                var current = Array(nameBytes) + [0x3A]
                // Whether `current` has an octet other than a space (the colon, for the first line).
                var currentHasText = true
                for (number, word) in words.enumerated() {
                    // The first word gets a space before it when it has none.
                    let extra = number == 0 && !white(valueBytes[word.lowerBound]) ? 1 : 0
                    if number > 0 && current.count + word.count + extra > width && currentHasText {
                        lines.append(current)
                        current = []
                        currentHasText = false
                    }
                    if extra == 1 { current.append(Bytes.space) }
                    current += valueBytes[word]
                    currentHasText = currentHasText || valueBytes[word].contains { $0 != Bytes.space }
                }
                lines.append(current)
                // A line over 998 octets: broken hard at 900, the rest continued after a space.
                var out: [UInt8] = []
                for (number, line) in lines.enumerated() {
                    if number > 0 { out += [Bytes.cr, Bytes.lf] }
                    var rest = line
                    while rest.count > 998 {
                        out += rest[..<900]
                        out += [Bytes.cr, Bytes.lf]
                        rest = [Bytes.space] + rest[900...]
                    }
                    out += rest
                }
                return String(decoding: out, as: UTF8.self)
            }
        }
    }

    /// `fold` over Characters: any value.
    static func foldCharacters(name: String, value: String, width: Int) -> String {
        var lines: [String] = []
        var current = name + ":"
        // Split before each run of white space, keeping it with the word that follows.
        var words: [String] = []
        var word = ""
        for character in value {
            if character == " " || character == "\t", !word.isEmpty, !(word.last == " " || word.last == "\t") {
                words.append(word)
                word = ""
            }
            word.append(character)
        }
        if !word.isEmpty { words.append(word) }
        if let first = words.first, !(first.hasPrefix(" ") || first.hasPrefix("\t")) {
            words[0] = " " + first
        }
        for word in words {
            if current.utf8.count + word.utf8.count > width && current.contains(where: { $0 != " " }) &&
                current != name + ":"
            {
                lines.append(current)
                current = word
            } else {
                current += word
            }
        }
        lines.append(current)
        // A word longer than 998 octets cannot be folded at white space: break it hard.
        var result: [String] = []
        for line in lines {
            var rest = Substring(line)
            while rest.utf8.count > 998 {
                var cut = rest.index(rest.startIndex, offsetBy: 900)
                while rest[..<cut].utf8.count > 990 { cut = rest.index(before: cut) }
                result.append(String(rest[..<cut]))
                rest = " " + rest[cut...]
            }
            result.append(String(rest))
        }
        return result.joined(separator: "\r\n")
    }
}

/// Parsing of a header section.
enum HeaderParser {
    /// Parses the fields in `bytes[start..<end]` up to the blank line. Returns the fields, the
    /// index where the blank line (the separator) starts and where the body starts.
    static func parse(
        _ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int, limits: MIMELimits
    ) throws -> (fields: [HeaderField], separator: Int, body: Int) {
        var fields: [HeaderField] = []
        var index = start
        while index < end {
            let (lineEnd, next) = Bytes.line(in: bytes, from: index, to: end)
            if lineEnd == index {
                // The blank line: the header section ends here.
                return (fields, index, next)
            }
            if index - start > limits.maximumHeaderBytes {
                throw MIMEError(
                    .headerTooLarge, "the header section exceeds \(limits.maximumHeaderBytes) octets")
            }
            // The field runs on over continuation lines (starting with white space).
            var fieldEnd = lineEnd
            var fieldNext = next
            while fieldNext < end && Bytes.isWhitespace(bytes[fieldNext]) {
                let (continuationEnd, continuationNext) = Bytes.line(in: bytes, from: fieldNext, to: end)
                fieldEnd = continuationEnd
                fieldNext = continuationNext
                if fieldNext - start > limits.maximumHeaderBytes {
                    throw MIMEError(
                        .headerTooLarge, "the header section exceeds \(limits.maximumHeaderBytes) octets")
                }
            }
            var colon = index
            while colon < lineEnd && bytes[colon] != 0x3A && bytes[colon] > 0x20 && bytes[colon] < 0x7F {
                colon += 1
            }
            guard colon < lineEnd, colon > index, bytes[colon] == 0x3A else {
                // Not a header field: the body starts here, without a blank line.
                return (fields, index, index)
            }
            let name = String(decoding: UnsafeBufferPointer(rebasing: bytes[index..<colon]), as: UTF8.self)
            var valueStart = colon + 1
            // One leading space is part of the syntax, not the value; keep any others.
            if valueStart < fieldEnd && bytes[valueStart] == Bytes.space { valueStart += 1 }
            fields.append(
                HeaderField(
                    name: name, rawValue: Array(bytes[valueStart..<fieldEnd]), raw: Array(bytes[index..<fieldNext])))
            if fields.count > limits.maximumHeaderCount {
                throw MIMEError(.tooManyHeaders, "more than \(limits.maximumHeaderCount) header fields")
            }
            index = fieldNext
        }
        return (fields, end, end)
    }
}
