/// Quoted-printable of RFC 2045 section 6.7.
public enum QuotedPrintable {
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
            // Written through a pointer into a scratch buffer and appended in 64 KB pieces: an
            // append per octet costs several times the encoding itself.
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1 << 16) { buffer in
                let count = input.count
                var used = 0
                var column = 0
                var index = 0
                func write(_ byte: UInt8) {
                    buffer[used] = byte
                    used += 1
                }
                while index < count {
                    // At most 6 octets per input octet: a soft break and an escape.
                    if used > buffer.count - 8 {
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<used]))
                        used = 0
                    }
                    let byte = input[index]
                    if !binary && (byte == Bytes.cr || byte == Bytes.lf) {
                        if byte == Bytes.cr && index + 1 < count && input[index + 1] == Bytes.lf { index += 1 }
                        write(Bytes.cr)
                        write(Bytes.lf)
                        column = 0
                        index += 1
                        continue
                    }
                    let nextIsBreak =
                        index + 1 == count
                        || (!binary && (input[index + 1] == Bytes.cr || input[index + 1] == Bytes.lf))
                    var escape =
                        byte == 0x3D || byte >= 0x7F || (byte < 0x20 && byte != Bytes.tab) || (binary && byte < 0x20)
                        || (Bytes.isWhitespace(byte) && nextIsBreak)
                    if column + (escape ? 3 : 1) > 75 {
                        write(0x3D)
                        write(Bytes.cr)
                        write(Bytes.lf)
                        column = 0
                    }
                    if column == 0 && (byte == 0x2E || (byte == 0x46 && startsWithFromSpace(input, index))) {
                        escape = true
                    }
                    if escape {
                        write(0x3D)
                        write(hexDigit(byte >> 4))
                        write(hexDigit(byte & 15))
                        column += 3
                    } else {
                        write(byte)
                        column += 1
                    }
                    index += 1
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<used]))
            }
        }
    }

    @inline(__always) private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? 0x30 + value : 0x37 + value
    }

    /// True when `input` holds `From ` at `index`.
    private static func startsWithFromSpace(_ input: UnsafeBufferPointer<UInt8>, _ index: Int) -> Bool {
        index + 5 <= input.count && input[index] == 0x46 && input[index + 1] == 0x72 && input[index + 2] == 0x6F
            && input[index + 3] == 0x6D && input[index + 4] == Bytes.space
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
