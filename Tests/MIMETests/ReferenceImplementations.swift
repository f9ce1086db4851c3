@testable import MIME

/// The quoted-printable encoder and the 7-bit scan as they were before they were made fast
/// (octet by octet, each rule spelt out once), kept as the reference the fast ones must equal
/// for every input (`FastPathEquivalenceTests`).
enum Reference {
    static func quotedPrintable(_ bytes: ArraySlice<UInt8>, binary: Bool) -> [UInt8] {
        var out: [UInt8] = []
        bytes.withUnsafeBufferPointer { input in
            let count = input.count
            var column = 0
            var index = 0
            func write(_ byte: UInt8) { out.append(byte) }
            while index < count {
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
        }
        return out
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? 0x30 + value : 0x37 + value
    }

    private static func startsWithFromSpace(_ input: UnsafeBufferPointer<UInt8>, _ index: Int) -> Bool {
        index + 5 <= input.count && input[index] == 0x46 && input[index + 1] == 0x72 && input[index + 2] == 0x6F
            && input[index + 3] == 0x6D && input[index + 4] == Bytes.space
    }

    /// The flags of `MIME.Scan`, one octet at a time.
    struct Scan: Equatable, CustomStringConvertible {
        var hasEightBit = false
        var hasNUL = false
        var hasBareCR = false
        var hasBareLF = false
        var hasLongLine = false
        var hasFromLine = false
        var hasTrailingWhitespace = false

        init(_ bytes: ArraySlice<UInt8>) {
            var lineLength = 0
            var previous: UInt8 = Bytes.lf
            var index = bytes.startIndex
            let end = bytes.endIndex
            while index < end {
                let byte = bytes[index]
                if byte >= 0x80 {
                    hasEightBit = true
                } else if byte == 0 {
                    hasNUL = true
                }
                if byte == Bytes.lf {
                    if previous != Bytes.cr { hasBareLF = true }
                    if previous == Bytes.space || previous == Bytes.tab
                        || (previous == Bytes.cr && index >= bytes.startIndex + 2
                            && Bytes.isWhitespace(bytes[index - 2]))
                    {
                        hasTrailingWhitespace = true
                    }
                    lineLength = 0
                } else {
                    if previous == Bytes.cr { hasBareCR = true }
                    if byte != Bytes.cr { lineLength += 1 }
                    if lineLength > 998 { hasLongLine = true }
                    if lineLength == 1 && byte == 0x46 && index + 5 <= end
                        && bytes[index..<index + 5].elementsEqual("From ".utf8)
                    {
                        hasFromLine = true
                    }
                }
                previous = byte
                index += 1
            }
            if previous == Bytes.cr { hasBareCR = true }
        }

        /// The same flags read from the scan under test.
        init(_ scan: MIME.Scan) {
            hasEightBit = scan.hasEightBit
            hasNUL = scan.hasNUL
            hasBareCR = scan.hasBareCR
            hasBareLF = scan.hasBareLF
            hasLongLine = scan.hasLongLine
            hasFromLine = scan.hasFromLine
            hasTrailingWhitespace = scan.hasTrailingWhitespace
        }

        var description: String {
            [("8bit", hasEightBit), ("NUL", hasNUL), ("bareCR", hasBareCR), ("bareLF", hasBareLF),
             ("long", hasLongLine), ("From", hasFromLine), ("trailingWS", hasTrailingWhitespace)]
                .filter(\.1).map(\.0).joined(separator: ",")
        }
    }
}
