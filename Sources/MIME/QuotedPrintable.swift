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

    // MARK: Encoding

    /// What the encoder does with an octet, before looking at its neighbours: values of a table,
    /// ordered so that `<= whitespace` means "may be written as it is".
    private enum Class {
        /// Printable ASCII other than `=`: written as it is (`.` and `F` may be escaped at the
        /// start of an encoded line).
        static let literal: UInt8 = 0
        /// Space and tab: written as they are unless a line break or the end follows them.
        static let whitespace: UInt8 = 1
        /// `=`, controls, DEL and 8-bit octets: always `=XX`.
        static let escape: UInt8 = 2
        /// CR and LF in text: a hard line break.
        static let lineBreak: UInt8 = 3
    }

    /// The class of each octet, for text and for `binary` (where tab, CR and LF are escaped).
    private static let textClasses: [UInt8] = classes(binary: false)
    private static let binaryClasses: [UInt8] = classes(binary: true)

    private static func classes(binary: Bool) -> [UInt8] {
        (0...255).map { (byte: Int) -> UInt8 in
            switch byte {
            case 0x0A, 0x0D: binary ? Class.escape : Class.lineBreak
            case 0x09: binary ? Class.escape : Class.whitespace
            case 0x20: Class.whitespace
            case 0x3D: Class.escape
            case 0x21...0x7E: Class.literal
            default: Class.escape
            }
        }
    }

    /// `=XX` for each octet, as the four octets `=`, `X`, `X`, 0 in memory order: written with one
    /// store, the fourth overwritten by what follows.
    private static let escapes: [UInt32] = (0...255).map { (byte: Int) -> UInt32 in
        let digits = Array("0123456789ABCDEF".utf8)
        return (0x3D | UInt32(digits[byte >> 4]) << 8 | UInt32(digits[byte & 15]) << 16).littleEndian
    }

    /// The longest encoded line, without its soft break's `=`.
    private static let lineLimit = 75

    /// `encode(_:binary:)` appending to `out`, so that a large body is written once, where it ends up.
    public static func encode(_ bytes: ArraySlice<UInt8>, binary: Bool = false, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + bytes.count + bytes.count / 8 + 8)
        guard !bytes.isEmpty else { return }
        let table = binary ? binaryClasses : textClasses
        bytes.withUnsafeBufferPointer { input in
            table.withUnsafeBufferPointer { classes in
                escapes.withUnsafeBufferPointer { escapes in
                    // Written through a pointer into a scratch buffer and appended in 64 KB pieces: an
                    // append per octet costs several times the encoding itself.
                    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1 << 16) { buffer in
                        encode(
                            input.baseAddress!, count: input.count, classes: classes.baseAddress!,
                            escapes: escapes.baseAddress!, buffer: buffer, into: &out)
                    }
                }
            }
        }
    }

    /// The encoder's loop over `count` octets at `input`, through `buffer` into `out`, with its
    /// tables as pointers: no bounds checks and no calls per octet, and its state in locals.
    ///
    /// The common cases, an octet written as it is in the middle of a line and an escape that
    /// fits on the line, are taken first; everything else (line breaks, white space, the start
    /// and the end of an encoded line) goes through the general case, which alone decides every
    /// case, the common ones with the same result.
    private static func encode(
        _ input: UnsafePointer<UInt8>, count: Int, classes: UnsafePointer<UInt8>, escapes: UnsafePointer<UInt32>,
        buffer: UnsafeMutableBufferPointer<UInt8>, into out: inout [UInt8]
    ) {
        let output = buffer.baseAddress!
        var used = 0
        var column = 0
        var index = 0
        while index < count {
            let byte = input[index]
            let kind = classes[Int(byte)]
            // The common cases use wrapping arithmetic: nothing in them comes near overflowing,
            // and the checks would cost as much as the work.
            if kind == Class.escape && column <= lineLimit - 3 {
                // An escape that fits on the line.
                writeEscape(byte, output + used, escapes)
                used &+= 3
                column &+= 3
                index &+= 1
                continue
            }
            if kind <= Class.whitespace && column > 0 && index &+ 8 <= count {
                // Up to eight octets written as they are, in one piece: as many as are printable
                // or space, fit on the line, and leave no space before a break or at the end.
                let block = UnsafeRawPointer(input + index).loadUnaligned(as: UInt64.self)
                var length = min(plainPrefix(block), lineLimit &- column)
                if length > 0 && input[index &+ length &- 1] == Bytes.space
                    && (index &+ length == count || classes[Int(input[index &+ length])] == Class.lineBreak)
                {
                    length &-= 1
                }
                if length > 0 {
                    // All eight are stored; those after `length` are overwritten by what follows.
                    UnsafeMutableRawPointer(output + used).storeBytes(of: block, as: UInt64.self)
                    used &+= length
                    column &+= length
                    index &+= length
                    continue
                }
            }
            // The general case. Breaks are written only here, and the common cases stop at the
            // end of a line: room for a line, with the octets stored beyond `used`, is enough
            // between two checks.
            if used > buffer.count - 256 {
                out.append(contentsOf: UnsafeBufferPointer(start: output, count: used))
                used = 0
            }
            if kind == Class.lineBreak {
                // CRLF, a bare LF or a bare CR: one hard break.
                if byte == Bytes.cr && index + 1 < count && input[index + 1] == Bytes.lf { index += 1 }
                output[used] = Bytes.cr
                output[used + 1] = Bytes.lf
                used += 2
                column = 0
                index += 1
                continue
            }
            // White space before a line break or at the end would be lost in transit (RFC 2045
            // 6.7 (3)).
            var escape =
                kind == Class.escape
                || (kind == Class.whitespace
                    && (index + 1 == count || classes[Int(input[index + 1])] == Class.lineBreak))
            if column + (escape ? 3 : 1) > lineLimit {
                output[used] = 0x3D
                output[used + 1] = Bytes.cr
                output[used + 2] = Bytes.lf
                used += 3
                column = 0
            }
            if column == 0 && (byte == 0x2E || (byte == 0x46 && Bytes.startsWithFromSpace(input, at: index, count: count))) {
                escape = true
            }
            if escape {
                writeEscape(byte, output + used, escapes)
                used += 3
                column += 3
            } else {
                output[used] = byte
                used += 1
                column += 1
            }
            index += 1
        }
        out.append(contentsOf: UnsafeBufferPointer(start: output, count: used))
    }

    /// Writes `=XX` for `byte` with one store of four octets (the fourth is overwritten by what
    /// follows, and the buffer has room for it).
    @inline(__always)
    private static func writeEscape(
        _ byte: UInt8, _ output: UnsafeMutablePointer<UInt8>, _ escapes: UnsafePointer<UInt32>
    ) {
        UnsafeMutableRawPointer(output).storeBytes(of: escapes[Int(byte)], as: UInt32.self)
    }

    /// How many of the eight octets of `block`, in memory order, come before the first that is
    /// `=` or neither printable ASCII nor space (0 to 8).
    ///
    /// Eight octets at once in a 64-bit word (the "has a byte less than / more than / equal to"
    /// tests of Bit Twiddling Hacks): each test sets bit 7 of the octets it finds, and carries
    /// and borrows start only at such an octet, so the lowest bit set marks the first one exactly.
    @inline(__always) private static func plainPrefix(_ block: UInt64) -> Int {
        let word = UInt64(littleEndian: block)
        let ones = Bytes.ones
        let below = (word &- ones &* 0x20) & ~word  // under 0x20
        let above = (word &+ ones) | word  // over 0x7E
        let equal = Bytes.equalOctets(word, 0x3D)
        return ((below | above | equal) & (ones &* 0x80)).trailingZeroBitCount >> 3
    }

    // MARK: Decoding

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
