/// Quoted-printable of RFC 2045 section 6.7.
public enum QuotedPrintable {
    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// Encodes text: line breaks (CRLF, LF or CR) become CRLF hard breaks; lines are at most 76
    /// characters with `=` soft breaks; `=`, non-ASCII octets, controls and trailing white space
    /// are escaped; a line starting with `From ` or `.` is escaped too, so that neither mbox
    /// quoting nor SMTP dot-stuffing can alter it in transit (RFC 3676 section 4.4 reasoning).
    /// With `binary`, CR and LF are data and escaped as well.
    public static func encode(_ bytes: [UInt8], binary: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 8 + 8)
        var line: [UInt8] = []
        line.reserveCapacity(80)

        func escaped(_ byte: UInt8) -> [UInt8] {
            [0x3D, hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 15)]]
        }
        func emit(_ piece: [UInt8]) {
            if line.count + piece.count > 75 {
                out += line
                out += [0x3D, Bytes.cr, Bytes.lf]
                line.removeAll(keepingCapacity: true)
            }
            line += piece
        }
        func endLine() {
            out += line
            out += Bytes.crlf
            line.removeAll(keepingCapacity: true)
        }

        var index = 0
        var atLineStart = true
        while index < bytes.count {
            let byte = bytes[index]
            if !binary && (byte == Bytes.cr || byte == Bytes.lf) {
                if byte == Bytes.cr && index + 1 < bytes.count && bytes[index + 1] == Bytes.lf { index += 1 }
                endLine()
                atLineStart = true
                index += 1
                continue
            }
            let nextIsBreak =
                index + 1 == bytes.count
                || (!binary && (bytes[index + 1] == Bytes.cr || bytes[index + 1] == Bytes.lf))
            var piece: [UInt8]
            if byte == 0x3D || byte >= 0x7F || (byte < 0x20 && byte != Bytes.tab) || (binary && byte < 0x20) {
                piece = escaped(byte)
            } else if Bytes.isWhitespace(byte) && nextIsBreak {
                piece = escaped(byte)
            } else if atLineStart && line.isEmpty && (byte == 0x2E || (byte == 0x46 && startsWithFromSpace(bytes, index)))
            {
                piece = escaped(byte)
            } else {
                piece = [byte]
            }
            emit(piece)
            atLineStart = false
            index += 1
        }
        if !line.isEmpty { out += line }
        return out
    }

    private static func startsWithFromSpace(_ bytes: [UInt8], _ index: Int) -> Bool {
        index + 5 <= bytes.count && bytes[index..<index + 5].elementsEqual("From ".utf8)
    }

    /// Decodes: `=XX` escapes (either case), soft line breaks, and white space at the end of
    /// encoded lines removed (it may have been added in transport). A malformed `=` is kept.
    /// Hard line breaks come out as CRLF.
    public static func decode<C: Collection>(_ input: C) -> [UInt8] where C.Element == UInt8 {
        let bytes = Array(input)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            var end = index
            while end < bytes.count && bytes[end] != Bytes.lf { end += 1 }
            let hasBreak = end < bytes.count
            var contentEnd = end
            if hasBreak && contentEnd > index && bytes[contentEnd - 1] == Bytes.cr { contentEnd -= 1 }
            while contentEnd > index && Bytes.isWhitespace(bytes[contentEnd - 1]) { contentEnd -= 1 }
            var position = index
            var soft = false
            while position < contentEnd {
                let byte = bytes[position]
                if byte == 0x3D {
                    if position + 1 == contentEnd {
                        soft = true
                        break
                    }
                    if position + 2 < contentEnd, let high = ContentType.hex(bytes[position + 1]),
                        let low = ContentType.hex(bytes[position + 2])
                    {
                        out.append(high << 4 | low)
                        position += 3
                        continue
                    }
                }
                out.append(byte)
                position += 1
            }
            guard hasBreak else { break }
            if !soft { out += Bytes.crlf }
            index = end + 1
        }
        return out
    }
}
