/// Base64 of RFC 2045 section 6.8: tolerant decoding, 76-column CRLF output.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    /// Encodes with lines of `lineLength` characters joined by CRLF, and a final CRLF when
    /// `finalLineBreak` is set (as a MIME body wants).
    public static func encode<C: Collection>(_ bytes: C, lineLength: Int = 76, finalLineBreak: Bool = true) -> [UInt8]
    where C.Element == UInt8 {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity(input.count * 4 / 3 + input.count / 38 + 8)
        var column = 0
        var index = 0
        func put(_ byte: UInt8) {
            if lineLength > 0 && column == lineLength {
                out.append(Bytes.cr)
                out.append(Bytes.lf)
                column = 0
            }
            out.append(byte)
            column += 1
        }
        while index + 3 <= input.count {
            let value = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
            put(alphabet[Int(value >> 18 & 63)])
            put(alphabet[Int(value >> 12 & 63)])
            put(alphabet[Int(value >> 6 & 63)])
            put(alphabet[Int(value & 63)])
            index += 3
        }
        let rest = input.count - index
        if rest > 0 {
            let value = UInt32(input[index]) << 16 | (rest == 2 ? UInt32(input[index + 1]) << 8 : 0)
            put(alphabet[Int(value >> 18 & 63)])
            put(alphabet[Int(value >> 12 & 63)])
            put(rest == 2 ? alphabet[Int(value >> 6 & 63)] : 0x3D)
            put(0x3D)
        }
        if finalLineBreak && !out.isEmpty {
            out.append(Bytes.cr)
            out.append(Bytes.lf)
        }
        return out
    }

    /// Decodes, skipping line breaks, white space and any character outside the alphabet
    /// (RFC 2045: "must be ignored"), and stopping at the first `=`.
    public static func decode<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 3 / 4)
        var accumulator: UInt32 = 0
        var count = 0
        for byte in bytes {
            if byte == 0x3D { break }
            let value = values[Int(byte)]
            if value == 0xFF { continue }
            accumulator = accumulator << 6 | UInt32(value)
            count += 1
            if count == 4 {
                out.append(UInt8(accumulator >> 16 & 0xFF))
                out.append(UInt8(accumulator >> 8 & 0xFF))
                out.append(UInt8(accumulator & 0xFF))
                accumulator = 0
                count = 0
            }
        }
        if count == 2 {
            out.append(UInt8(accumulator >> 4 & 0xFF))
        } else if count == 3 {
            out.append(UInt8(accumulator >> 10 & 0xFF))
            out.append(UInt8(accumulator >> 2 & 0xFF))
        }
        return out
    }
}
