import Foundation

/// RFC 2047 encoded words, both ways.
public enum EncodedWord {
    /// Encodes `text` for an unstructured header (or a display name) when it is not plain
    /// printable ASCII: UTF-8, B or Q whichever is shorter, each word at most 75 characters and
    /// never splitting a character, words separated by a space (the folder may break there).
    ///
    /// Words are kept to `maximumWordLength` (RFC 2047 allows 75) so that the first one still
    /// fits on the line after a header name.
    public static func encode(_ text: String, maximumWordLength: Int = 60) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) && !text.contains("=?") { return text }
        var words: [String] = []
        var chunk: [UInt8] = []
        var chunkQLength = 0
        let overhead = "=?UTF-8?B??=".utf8.count
        for character in text {
            let bytes = Array(character.utf8)
            let addedQLength = bytes.reduce(0) { $0 + (isQSafe($1) ? 1 : 3) }
            // The shorter of Q and B for the chunk with this character, counted, not encoded.
            let count = chunk.count + bytes.count
            let shortest = min(chunkQLength + addedQLength, 4 * ((count + 2) / 3))
            if !chunk.isEmpty && overhead + shortest > maximumWordLength {
                words.append(word(chunk))
                chunk = bytes
                chunkQLength = addedQLength
            } else {
                chunk += bytes
                chunkQLength += addedQLength
            }
        }
        if !chunk.isEmpty { words.append(word(chunk)) }
        return words.joined(separator: " ")
    }

    /// Encodes only the space-separated words that need it (non-ASCII, or looking like an
    /// encoded word), runs of them together, so that the rest stays readable undecoded.
    public static func encodeWords(_ text: String) -> String {
        func needs(_ word: Substring) -> Bool {
            !word.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) || word.contains("=?")
        }
        var out: [String] = []
        var run: [Substring] = []
        func flush() {
            if !run.isEmpty { out.append(encode(run.joined(separator: " "))) }
            run.removeAll()
        }
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            if needs(word) {
                run.append(word)
            } else {
                flush()
                out.append(String(word))
            }
        }
        flush()
        return out.joined(separator: " ")
    }

    private static func word(_ bytes: [UInt8]) -> String {
        let q = qEncode(bytes)
        let b = Data(bytes).base64EncodedString()
        return q.utf8.count <= b.utf8.count ? "=?UTF-8?Q?\(q)?=" : "=?UTF-8?B?\(b)?="
    }

    /// The Q encoding of RFC 2047 section 4.2, restricted to what is safe in a phrase (5.3).
    private static func qEncode(_ bytes: [UInt8]) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 3)
        for byte in bytes {
            if byte == 0x20 {
                out.append(0x5F)  // "_"
            } else if isQSafe(byte) {
                out.append(byte)
            } else {
                out += [0x3D, hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Bytes the Q encoding writes as one character: letters, digits, `!*+-/`, and space (as `_`).
    private static func isQSafe(_ byte: UInt8) -> Bool {
        byte == 0x20 || (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == 0x21 || byte == 0x2A || byte == 0x2B || byte == 0x2D || byte == 0x2F
    }

    /// Decodes every encoded word in `text`; white space between two adjacent encoded words is
    /// dropped (RFC 2047 section 6.2). Malformed words are left as they are.
    public static func decode(_ text: String) -> String {
        guard text.contains("=?") else { return text }
        var result = ""
        var rest = Substring(text)
        var pendingSpace = ""
        var lastWasEncoded = false
        while !rest.isEmpty {
            if let range = rest.range(of: "=?"), let (decoded, after) = decodeWord(rest[range.lowerBound...]) {
                let before = rest[..<range.lowerBound]
                if !(lastWasEncoded && before.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" })) {
                    result += pendingSpace + before
                }
                pendingSpace = ""
                result += decoded
                rest = after
                lastWasEncoded = true
            } else {
                result += pendingSpace + rest
                break
            }
        }
        return result
    }

    /// Decodes one `=?charset?enc?text?=` at the start of `text`.
    private static func decodeWord(_ text: Substring) -> (String, Substring)? {
        let parts = text.dropFirst(2)
        guard let q1 = parts.firstIndex(of: "?") else { return nil }
        let charset = parts[..<q1].split(separator: "*").first.map(String.init) ?? ""
        let afterCharset = parts[parts.index(after: q1)...]
        guard let q2 = afterCharset.firstIndex(of: "?") else { return nil }
        let encoding = afterCharset[..<q2].uppercased()
        let payloadStart = afterCharset.index(after: q2)
        guard let end = afterCharset[payloadStart...].range(of: "?=") else { return nil }
        let payload = afterCharset[payloadStart..<end.lowerBound]
        guard !payload.contains(" ") else { return nil }
        let bytes: [UInt8]
        switch encoding {
        case "B":
            bytes = Base64.decode(Array(payload.utf8))
        case "Q":
            var out: [UInt8] = []
            let utf8 = Array(payload.utf8)
            var index = 0
            while index < utf8.count {
                let byte = utf8[index]
                if byte == 0x5F {
                    out.append(0x20)
                } else if byte == 0x3D, index + 2 < utf8.count, let high = ContentType.hex(utf8[index + 1]),
                    let low = ContentType.hex(utf8[index + 2])
                {
                    out.append(high << 4 | low)
                    index += 2
                } else {
                    out.append(byte)
                }
                index += 1
            }
            bytes = out
        default:
            return nil
        }
        return (Charset.decode(bytes, charset: charset), afterCharset[end.upperBound...])
    }
}
