/// What signing a message needs from MIME: the inner entity, 7-bit clean and in canonical CRLF
/// form, and the changes to make to the top-level header.
public struct SigningPreparation: Sendable {
    /// The entity to sign and to place as the first part of the `multipart/signed`, exactly.
    public let inner: [UInt8]
    /// Top-level `Content-*` fields that moved into the inner entity: name and which occurrence
    /// of that name (1-based, as `smfi_chgheader` counts), in the order to delete them.
    public let movedHeaders: [(name: String, occurrence: Int)]
    /// True when the message has no `MIME-Version` field and one must be added.
    public let needsMIMEVersion: Bool

    /// Prepares a message for signing (RFC 8551 section 3.1):
    /// - every top-level `Content-*` field moves into the inner entity (`text/plain;
    ///   charset=us-ascii` when there is none and the body is 7-bit, so nothing false is said);
    /// - every part is made 7-bit safe, recursively: 8bit/binary text becomes quoted-printable,
    ///   other 8bit/binary content base64; text with lines over 998 octets, trailing white space
    ///   or lines starting with `From ` is quoted-printable too, so no relay can alter it;
    /// - line ends are CRLF throughout.
    public init(headers: [HeaderField], body: [UInt8], limits: MIMELimits = .default) throws {
        var moved: [(String, Int)] = []
        var counts: [String: Int] = [:]
        var innerHeader: [UInt8] = []
        for field in headers {
            let key = field.name.lowercased()
            counts[key, default: 0] += 1
            if field.isContentField {
                moved.append((field.name, counts[key]!))
                innerHeader += field.canonicalBytes
            }
        }
        // RFC 2045's default, written out, is true of a 7-bit body only: an 8-bit body with no
        // Content-Type keeps having none (its charset is unknown), and is encoded all the same.
        if !headers.contains(where: { $0.hasName("Content-Type") }) && !body.contains(where: { $0 >= 0x80 || $0 == 0 }) {
            innerHeader += Array("Content-Type: text/plain; charset=us-ascii\r\n".utf8)
        }
        // Deleting the first occurrence renumbers the rest: delete from the last one back.
        movedHeaders = moved.reversed()
        needsMIMEVersion = !headers.contains(where: { $0.hasName("MIME-Version") })
        let message = try Message(bytes: innerHeader + Bytes.crlf + body, limits: limits)
        var out: [UInt8] = []
        // Room for the worst case (quoted-printable triples 8-bit text, plus soft breaks), so that
        // a large body is never copied to a bigger buffer half way; pages never written cost no
        // memory.
        out.reserveCapacity(message.bytes.count * 13 / 4 + 4096)
        SevenBit(message: message).write(message.root, into: &out)
        inner = out
    }
}

/// The recursive 7-bit conversion behind `SigningPreparation`.
struct SevenBit {
    let message: Message

    func write(_ entity: Entity, into out: inout [UInt8]) {
        if entity.contentType.isMultipart && !entity.delimiterRanges.isEmpty {
            writeHeaders(entity, transferEncoding: nil, into: &out)
            out += Bytes.crlf
            let preamble = message.bytes[entity.preambleRange]
            if Scan(preamble).isSevenBitSafe { out += Bytes.canonicalCRLF(preamble) }
            for (index, part) in entity.parts.enumerated() {
                writeDelimiter(entity, index, close: false, into: &out)
                write(part, into: &out)
            }
            if entity.isClosed {
                writeDelimiter(entity, entity.parts.count, close: true, into: &out)
                let epilogue = message.bytes[entity.epilogueRange]
                if Scan(epilogue).isSevenBitSafe { out += Bytes.canonicalCRLF(epilogue) }
            } else {
                // Close what the sender left open, so the signed structure is well formed.
                let boundary = entity.contentType["boundary"] ?? ""
                out += Array("\r\n--\(boundary)--\r\n".utf8)
            }
            return
        }
        if let inner = entity.encapsulated {
            writeHeaders(entity, transferEncoding: nil, into: &out)
            out += Bytes.crlf
            write(inner.entity, into: &out)
            return
        }
        let body = message.bytes[entity.bodyRange]
        let scan = Scan(body)
        let isText = entity.contentType.type == "text"
        let encoding = entity.transferEncoding
        let encoded = encoding == "base64" || encoding == "quoted-printable"
        let safe = scan.isSevenBitSafe && (encoded || !isText || !scan.needsProtection)
        if safe {
            // A part with no header lines and no blank line is copied as it is: writing a blank
            // line would turn an empty part into a part another parser counts (RFC 2046 5.1.1).
            // Header lines with neither a blank line nor a body after them (a multipart with no
            // delimiter of its own, nested in one with the same boundary) are copied without a
            // blank line too: one would become the part's content for another parser.
            if !(entity.headers.isEmpty && entity.separatorRange.isEmpty) {
                writeHeaders(entity, transferEncoding: nil, into: &out)
                if !(entity.separatorRange.isEmpty && body.isEmpty) { out += Bytes.crlf }
            }
            // Mail from SMTP is CRLF already: copy it in one piece.
            out += scan.hasBareLF ? Bytes.canonicalCRLF(body) : Array(body)
            return
        }
        // 8bit and binary bodies are encoded straight from the message's bytes, without a copy.
        let content = encoded ? message.decodedBody(of: entity)[...] : body
        if isText {
            writeHeaders(entity, transferEncoding: "quoted-printable", into: &out)
            out += Bytes.crlf
            QuotedPrintable.encode(content, into: &out)
            // The body's final line break, if it had one, was encoded as a hard break already.
        } else {
            writeHeaders(entity, transferEncoding: "base64", into: &out)
            out += Bytes.crlf
            Base64.encode(content, into: &out)
        }
    }

    /// A delimiter line without transport padding (white space after the boundary, which a
    /// relay may strip and so break the signature).
    private func writeDelimiter(_ entity: Entity, _ index: Int, close: Bool, into out: inout [UInt8]) {
        let range = entity.delimiterRanges[index]
        if let first = message.bytes[range].first, first == Bytes.cr || first == Bytes.lf {
            out += Bytes.crlf
        }
        out += Array(("--" + (entity.contentType["boundary"] ?? "") + (close ? "--" : "") + "\r\n").utf8)
    }

    /// The entity's header fields in canonical form, 7-bit: `Content-Transfer-Encoding` replaced
    /// when `transferEncoding` is given (or dropped to 7bit for a multipart or message that said
    /// 8bit/binary), 8-bit parameters rewritten per RFC 2231 and other 8-bit values per RFC 2047.
    private func writeHeaders(_ entity: Entity, transferEncoding: String?, into out: inout [UInt8]) {
        var wroteEncoding = false
        for field in entity.headers {
            if field.hasName("Content-Transfer-Encoding") {
                if let transferEncoding {
                    out += Array("Content-Transfer-Encoding: \(transferEncoding)\r\n".utf8)
                    wroteEncoding = true
                    continue
                } else if ["8bit", "binary"].contains(entity.transferEncoding) {
                    out += Array("Content-Transfer-Encoding: 7bit\r\n".utf8)
                    continue
                }
            }
            if field.rawValue.allSatisfy({ $0 < 0x80 }) {
                out += field.canonicalBytes
            } else if field.hasName("Content-Type") || field.hasName("Content-Disposition") {
                let value = ContentType(parsing: field.value).headerValue
                out += Array(HeaderField.fold(name: field.name, value: value).utf8) + Bytes.crlf
            } else {
                let value = EncodedWord.encode(field.value)
                out += Array(HeaderField.fold(name: field.name, value: value).utf8) + Bytes.crlf
            }
        }
        if let transferEncoding, !wroteEncoding {
            out += Array("Content-Transfer-Encoding: \(transferEncoding)\r\n".utf8)
        }
    }
}

/// One pass over a body: what would not survive a 7-bit relay unchanged.
///
/// A line at a time: glibc's `memchr` finds its LF, the line's ends say whether the LF is bare
/// and what comes before it, and its content is looked through eight octets at once for the
/// rare octets (8-bit, NUL, a CR that does not end the line); the length and a leading `From `
/// are looked at per line. Octets whose flag is set already are no longer looked for.
struct Scan {
    var hasEightBit = false
    var hasNUL = false
    var hasBareCR = false
    var hasBareLF = false
    /// A line of more than 998 octets, CR not counted (RFC 5322 section 2.1.1).
    var hasLongLine = false
    /// A line whose first octet other than CR starts `From `.
    var hasFromLine = false
    /// Space or tab before a line's LF or CRLF.
    var hasTrailingWhitespace = false

    init(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBufferPointer { input in
            var start = 0
            while start < input.count {
                // The content ends before the CR of a CRLF: any CR in it is bare, and so is a CR
                // that ends the input.
                let (contentEnd, next) = Bytes.line(in: input, from: start, to: input.count)
                scanLine(input, from: start, contentEnd: contentEnd, next: next)
                start = next
            }
        }
    }

    /// Looks at the line from `start`: its content up to `contentEnd`, then its line break (CRLF,
    /// a bare LF, or none at the end of the input) up to `next`.
    private mutating func scanLine(_ input: UnsafeBufferPointer<UInt8>, from start: Int, contentEnd: Int, next: Int) {
        let hasLF = next > contentEnd
        let end = hasLF ? next - 1 : next  // the LF, or the end of the input
        if hasLF {
            if contentEnd == end { hasBareLF = true }
            if contentEnd > start && Bytes.isWhitespace(input[contentEnd - 1]) { hasTrailingWhitespace = true }
        }
        if !hasFromLine {
            var first = start
            while first < end && input[first] == Bytes.cr { first += 1 }
            if Bytes.startsWithFromSpace(input.baseAddress!, at: first, count: input.count) { hasFromLine = true }
        }
        if !hasLongLine && end - start > 998 {
            var length = 0
            for index in start..<end where input[index] != Bytes.cr { length += 1 }
            if length > 998 { hasLongLine = true }
        }
        scanContent(input, from: start, to: contentEnd)
    }

    /// Sets `hasEightBit`, `hasNUL` and `hasBareCR` for the octets from `start` up to `end`.
    private mutating func scanContent(_ input: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) {
        guard let base = input.baseAddress else { return }
        var index = start
        while !(hasEightBit && hasNUL && hasBareCR) {
            // Eight octets at once in a 64-bit word: bit 7 of each octet that is 8-bit, NUL or CR
            // (`Bytes.equalOctets`), for the flags not set yet; the lowest bit set marks the
            // first such octet exactly.
            let highs = Bytes.ones &* 0x80
            let eightBit = hasEightBit ? 0 : highs
            let nul = hasNUL ? 0 : highs
            let cr = hasBareCR ? 0 : highs
            while index + 8 <= end {
                let word = UInt64(littleEndian: UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self))
                let found = (word & eightBit) | (Bytes.equalOctets(word, 0) & nul) | (Bytes.equalOctets(word, Bytes.cr) & cr)
                if found != 0 {
                    index += found.trailingZeroBitCount >> 3
                    break
                }
                index += 8
            }
            // The last few octets, or the one found.
            while index < end {
                let byte = input[index]
                if (byte >= 0x80 && !hasEightBit) || (byte == 0 && !hasNUL) || (byte == Bytes.cr && !hasBareCR) {
                    break
                }
                index += 1
            }
            guard index < end else { return }
            switch input[index] {
            case 0: hasNUL = true
            case Bytes.cr: hasBareCR = true
            default: hasEightBit = true
            }
            index += 1
        }
    }

    /// Nothing a 7-bit transport would refuse or change.
    var isSevenBitSafe: Bool { !hasEightBit && !hasNUL && !hasLongLine && !hasBareCR }

    /// Text that a relay may still alter: mbox `From ` quoting, stripped trailing white space.
    var needsProtection: Bool { hasFromLine || hasTrailingWhitespace }
}
