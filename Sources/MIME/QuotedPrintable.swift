/// Quoted-printable of RFC 2045 section 6.7.
public enum QuotedPrintable {
    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// Encodes text: line breaks (CRLF, LF or CR) become CRLF hard breaks; lines are at most 76
    /// characters with `=` soft breaks; `=`, non-ASCII octets, controls and trailing white space
    /// are escaped; an encoded line starting with `From ` or `.` (after a hard or a soft break)
    /// starts with an escape instead, so that neither mbox quoting nor SMTP dot-stuffing can alter
    /// it in transit (RFC 3676 section 4.4 reasoning). With `binary`, CR and LF are data and
    /// escaped as well.
    public static func encode(_ bytes: [UInt8], binary: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        encode(bytes[...], binary: binary, into: &out)
        return out
    }

    /// `encode(_:binary:)` appending to `out`, so that a large body is written once, where it ends up.
    public static func encode(_ bytes: ArraySlice<UInt8>, binary: Bool = false, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + bytes.count + bytes.count / 8 + 8)
        bytes.withUnsafeBufferPointer { input in
            let count = input.count
            var column = 0
            var index = 0
            // At `index`, which holds an `F`.
            func startsWithFromSpace() -> Bool {
                index + 5 <= count && input[index + 1] == 0x72 && input[index + 2] == 0x6F && input[index + 3] == 0x6D
                    && input[index + 4] == Bytes.space
            }
            while index < count {
                let byte = input[index]
                if !binary && (byte == Bytes.cr || byte == Bytes.lf) {
                    if byte == Bytes.cr && index + 1 < count && input[index + 1] == Bytes.lf { index += 1 }
                    out.append(Bytes.cr)
                    out.append(Bytes.lf)
                    column = 0
                    index += 1
                    continue
                }
                let nextIsBreak = index + 1 == count || (!binary && (input[index + 1] == Bytes.cr || input[index + 1] == Bytes.lf))
                var escape =
                    byte == 0x3D || byte >= 0x7F || (byte < 0x20 && byte != Bytes.tab) || (binary && byte < 0x20)
                    || (Bytes.isWhitespace(byte) && nextIsBreak)
                if column + (escape ? 3 : 1) > 75 {
                    out.append(0x3D)
                    out.append(Bytes.cr)
                    out.append(Bytes.lf)
                    column = 0
                }
                if column == 0 && (byte == 0x2E || (byte == 0x46 && startsWithFromSpace())) { escape = true }
                if escape {
                    out.append(0x3D)
                    out.append(hexDigits[Int(byte >> 4)])
                    out.append(hexDigits[Int(byte & 15)])
                    column += 3
                } else {
                    out.append(byte)
                    column += 1
                }
                index += 1
            }
        }
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
