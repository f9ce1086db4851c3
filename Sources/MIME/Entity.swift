/// One MIME entity of a parsed message: ranges into the message's bytes for every piece, so
/// that it can be written back byte for byte and its exact signed range found.
public struct Entity: Sendable {
    /// The whole entity: header fields, blank line, body.
    public let range: Range<Int>
    public let headers: [HeaderField]
    public let headerRange: Range<Int>
    /// The blank line ending the header section (empty when there was none).
    public let separatorRange: Range<Int>
    public let bodyRange: Range<Int>
    public let contentType: ContentType
    /// `Content-Transfer-Encoding`, lower case; `7bit` when absent.
    public let transferEncoding: String

    /// Body parts of a multipart, in order.
    public let parts: [Entity]
    /// For a multipart: delimiter `i` precedes part `i`; a final extra one is the close
    /// delimiter. Each range includes the line break before the delimiter (RFC 2046 section
    /// 5.1.1: it belongs to the delimiter) and the one after it.
    public let delimiterRanges: [Range<Int>]
    public let preambleRange: Range<Int>
    /// After the close delimiter; for a multipart without one, the body's final line break.
    public let epilogueRange: Range<Int>
    /// False for a multipart whose close delimiter is missing.
    public let isClosed: Bool
    /// The message inside a `message/rfc822` part.
    public let encapsulated: Box?

    /// Indirection for the recursive `message/rfc822` case.
    public final class Box: Sendable {
        public let entity: Entity
        init(_ entity: Entity) { self.entity = entity }
    }

    /// The first header field of that name.
    public func header(_ name: String) -> HeaderField? {
        headers.first(where: { $0.hasName(name) })
    }
}

/// A parsed message: its bytes and the entity tree over them.
public struct Message: Sendable {
    public let bytes: [UInt8]
    public let root: Entity

    /// Parses a message with CRLF or bare LF line ends.
    public init(bytes: [UInt8], limits: MIMELimits = .default) throws {
        self.bytes = bytes
        var partCount = 0
        root = try bytes.withUnsafeBufferPointer { buffer in
            try Parser(bytes: buffer, limits: limits).entity(0..<buffer.count, depth: 0, parts: &partCount)
        }
    }

    /// The top-level header fields of a message with CRLF or bare LF line ends, and where its
    /// body starts: what a caller that hands the body on (to `SigningPreparation`, which parses
    /// it) needs, without parsing the body's MIME structure a second time.
    public static func headerSection(_ bytes: [UInt8], limits: MIMELimits = .default) throws -> (
        headers: [HeaderField], bodyStart: Int
    ) {
        try bytes.withUnsafeBufferPointer { buffer in
            let (headers, _, bodyStart) = try HeaderParser.parse(buffer, from: 0, to: buffer.count, limits: limits)
            return (headers, bodyStart)
        }
    }

    /// A message whose header fields are already parsed (a milter receives them one by one) and
    /// whose body is `body`: only the body is parsed, and `bytes` is the body alone (the root's
    /// header and separator ranges are empty), so nothing is copied or parsed a second time.
    public init(headers: [HeaderField], body: [UInt8], limits: MIMELimits = .default) throws {
        self.bytes = body
        var partCount = 0
        root = try body.withUnsafeBufferPointer { buffer in
            try Parser(bytes: buffer, limits: limits).entity(
                0..<buffer.count, headers: headers, separator: 0, bodyStart: 0, depth: 0, parts: &partCount)
        }
    }

    /// The message written back from its tree: equal to `bytes` for every input.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        serialize(root, into: &out)
        return out
    }

    /// One entity written back from its pieces.
    public func serialize(_ entity: Entity, into out: inout [UInt8]) {
        out += bytes[entity.headerRange]
        out += bytes[entity.separatorRange]
        if entity.contentType.isMultipart && !entity.delimiterRanges.isEmpty {
            out += bytes[entity.preambleRange]
            for (index, delimiter) in entity.delimiterRanges.enumerated() {
                out += bytes[delimiter]
                if index < entity.parts.count { serialize(entity.parts[index], into: &out) }
            }
            out += bytes[entity.epilogueRange]
        } else if let inner = entity.encapsulated {
            serialize(inner.entity, into: &out)
        } else {
            out += bytes[entity.bodyRange]
        }
    }

    /// The raw (still transfer-encoded) body of an entity.
    public func body(of entity: Entity) -> ArraySlice<UInt8> { bytes[entity.bodyRange] }

    /// The exact bytes of an entity.
    public func bytes(of entity: Entity) -> ArraySlice<UInt8> { bytes[entity.range] }

    /// The body with its transfer encoding undone.
    public func decodedBody(of entity: Entity) -> [UInt8] {
        let raw = body(of: entity)
        switch entity.transferEncoding {
        case "base64": return Base64.decode(raw)
        case "quoted-printable": return QuotedPrintable.decode(raw)
        default: return Array(raw)
        }
    }
}

/// The recursive-descent parser behind `Message`.
struct Parser {
    let bytes: UnsafeBufferPointer<UInt8>
    let limits: MIMELimits

    func entity(_ range: Range<Int>, depth: Int, parts: inout Int) throws -> Entity {
        guard depth <= limits.maximumDepth else {
            throw MIMEError(.tooDeep, "MIME nesting deeper than \(limits.maximumDepth) levels")
        }
        let (headers, separator, bodyStart) = try HeaderParser.parse(
            bytes, from: range.lowerBound, to: range.upperBound, limits: limits)
        return try entity(range, headers: headers, separator: separator, bodyStart: bodyStart, depth: depth, parts: &parts)
    }

    /// The entity over `range` whose header section is already parsed: `headers`, ending at
    /// `separator`, the body starting at `bodyStart`.
    func entity(
        _ range: Range<Int>, headers: [HeaderField], separator: Int, bodyStart: Int, depth: Int, parts: inout Int
    ) throws -> Entity {
        let contentType =
            headers.first(where: { $0.hasName("Content-Type") }).map { ContentType(parsing: $0.value) }
            ?? .defaultType
        let transferEncoding =
            headers.first(where: { $0.hasName("Content-Transfer-Encoding") })?.value.lowercased() ?? "7bit"
        let bodyRange = bodyStart..<range.upperBound
        var children: [Entity] = []
        var delimiters: [Range<Int>] = []
        var preamble = bodyRange.lowerBound..<bodyRange.lowerBound
        var epilogue = bodyRange.upperBound..<bodyRange.upperBound
        var closed = true
        var encapsulated: Entity.Box?

        if contentType.isMultipart, let boundary = contentType["boundary"], !boundary.isEmpty {
            let found = delimiterLines(boundary: Array(boundary.utf8), in: bodyRange)
            if let first = found.first {
                preamble = bodyRange.lowerBound..<first.range.lowerBound
                var index = 0
                while index < found.count {
                    let delimiter = found[index]
                    delimiters.append(delimiter.range)
                    if delimiter.isClose {
                        epilogue = delimiter.range.upperBound..<bodyRange.upperBound
                        break
                    }
                    var partEnd = index + 1 < found.count ? found[index + 1].range.lowerBound : bodyRange.upperBound
                    if index + 1 == found.count && bodyRange.upperBound == bytes.count {
                        // No close delimiter before the end of the message: its last line break
                        // ends the part as a delimiter's would (as other parsers read it), and is
                        // kept as the epilogue; closing the multipart then changes no part's
                        // content. (Inside another multipart, the enclosing delimiter has taken
                        // that line break already.)
                        let partStart = delimiter.range.upperBound
                        if partEnd > partStart && bytes[partEnd - 1] == Bytes.lf {
                            partEnd -= 1
                            if partEnd > partStart && bytes[partEnd - 1] == Bytes.cr { partEnd -= 1 }
                        }
                        epilogue = partEnd..<bodyRange.upperBound
                    }
                    parts += 1
                    if parts > limits.maximumParts {
                        throw MIMEError(.tooManyParts, "more than \(limits.maximumParts) body parts")
                    }
                    children.append(try entity(delimiter.range.upperBound..<partEnd, depth: depth + 1, parts: &parts))
                    index += 1
                }
                closed = delimiters.count > children.count
            }
        } else if contentType.value == "message/rfc822" && ["7bit", "8bit", "binary"].contains(transferEncoding) {
            encapsulated = Entity.Box(try entity(bodyRange, depth: depth + 1, parts: &parts))
        }
        return Entity(
            range: range, headers: headers, headerRange: range.lowerBound..<separator,
            separatorRange: separator..<bodyStart, bodyRange: bodyRange, contentType: contentType,
            transferEncoding: transferEncoding, parts: children, delimiterRanges: delimiters, preambleRange: preamble,
            epilogueRange: epilogue, isClosed: closed, encapsulated: encapsulated)
    }

    /// Delimiter lines for `boundary` in `range`: `--boundary` or `--boundary--` at the start
    /// of a line, then optional white space, then the line end. Each range starts at the line
    /// break before the delimiter (none for one at the start of the body).
    private func delimiterLines(boundary: [UInt8], in range: Range<Int>) -> [(range: Range<Int>, isClose: Bool)] {
        var found: [(Range<Int>, Bool)] = []
        var lineStart = range.lowerBound
        let end = range.upperBound
        let count = boundary.count
        while lineStart < end {
            let (contentEnd, next) = Bytes.line(in: bytes, from: lineStart, to: end)
            if contentEnd - lineStart >= count + 2 && bytes[lineStart] == 0x2D && bytes[lineStart + 1] == 0x2D
                && matches(boundary, at: lineStart + 2)
            {
                var position = lineStart + 2 + count
                var isClose = false
                if position + 1 < contentEnd + 1 && position + 2 <= contentEnd && bytes[position] == 0x2D
                    && bytes[position + 1] == 0x2D
                {
                    isClose = true
                    position += 2
                }
                while position < contentEnd && Bytes.isWhitespace(bytes[position]) { position += 1 }
                if position == contentEnd {
                    // The line break before the delimiter, unless it already ends the previous
                    // delimiter line (two delimiters in a row enclose an empty part).
                    let floor = found.last?.0.upperBound ?? range.lowerBound
                    var start = lineStart
                    if start > floor {
                        start -= 1  // the LF
                        if start > floor && bytes[start - 1] == Bytes.cr { start -= 1 }
                    }
                    found.append((start..<next, isClose))
                    if isClose { break }
                }
            }
            lineStart = next
        }
        return found
    }

    private func matches(_ boundary: [UInt8], at position: Int) -> Bool {
        for (offset, byte) in boundary.enumerated() where bytes[position + offset] != byte {
            return false
        }
        return true
    }
}
