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
        var out: [UInt8] = []
        encode(ArraySlice(bytes), lineLength: lineLength, finalLineBreak: finalLineBreak, into: &out)
        return out
    }

    /// `encode(_:lineLength:finalLineBreak:)` appending to `out`.
    public static func encode(
        _ bytes: ArraySlice<UInt8>, lineLength: Int = 76, finalLineBreak: Bool = true, into out: inout [UInt8]
    ) {
        let lineLength = lineLength > 0 ? lineLength : Int.max
        out.reserveCapacity(out.count + bytes.count * 4 / 3 + bytes.count / 38 + 8)
        let start = out.count
        bytes.withUnsafeBufferPointer { input in
            // Written through a pointer into a scratch buffer, appended in 64 KB pieces.
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1 << 16) { buffer in
                alphabet.withUnsafeBufferPointer { alphabet in
                    var used = 0
                    var column = 0
                    func put(_ byte: UInt8) {
                        if column == lineLength {
                            buffer[used] = Bytes.cr
                            buffer[used + 1] = Bytes.lf
                            used += 2
                            column = 0
                        }
                        buffer[used] = byte
                        used += 1
                        column += 1
                    }
                    var index = 0
                    while index < input.count {
                        // At most 12 octets per group: 4 characters, each possibly after a line break.
                        if used > buffer.count - 16 {
                            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<used]))
                            used = 0
                        }
                        let rest = input.count - index
                        let value =
                            UInt32(input[index]) << 16 | (rest > 1 ? UInt32(input[index + 1]) << 8 : 0)
                            | (rest > 2 ? UInt32(input[index + 2]) : 0)
                        put(alphabet[Int(value >> 18 & 63)])
                        put(alphabet[Int(value >> 12 & 63)])
                        put(rest > 1 ? alphabet[Int(value >> 6 & 63)] : 0x3D)
                        put(rest > 2 ? alphabet[Int(value & 63)] : 0x3D)
                        index += 3
                    }
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<used]))
                }
            }
        }
        if finalLineBreak && out.count > start {
            out.append(Bytes.cr)
            out.append(Bytes.lf)
        }
    }

    /// Decodes, skipping line breaks, white space and any character outside the alphabet
    /// (RFC 2045: "must be ignored"), and stopping at the first `=`.
    public static func decode<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        if let result = bytes.withContiguousStorageIfAvailable({ decode(buffer: $0) }) {
            return result
        }
        return Array(bytes).withUnsafeBufferPointer { decode(buffer: $0) }
    }

    private static func decode(buffer: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        let capacity = buffer.count * 3 / 4 + 3
        return values.withUnsafeBufferPointer { table in
            [UInt8](unsafeUninitializedCapacity: capacity) { output, written in
                var out = 0
                var accumulator: UInt32 = 0
                var count = 0
                for byte in buffer {
                    let value = table[Int(byte)]
                    if value == 0xFF {
                        if byte == 0x3D { break }
                        continue
                    }
                    accumulator = accumulator << 6 | UInt32(value)
                    count += 1
                    if count == 4 {
                        output[out] = UInt8(truncatingIfNeeded: accumulator >> 16)
                        output[out + 1] = UInt8(truncatingIfNeeded: accumulator >> 8)
                        output[out + 2] = UInt8(truncatingIfNeeded: accumulator)
                        out += 3
                        accumulator = 0
                        count = 0
                    }
                }
                if count == 2 {
                    output[out] = UInt8(truncatingIfNeeded: accumulator >> 4)
                    out += 1
                } else if count == 3 {
                    output[out] = UInt8(truncatingIfNeeded: accumulator >> 10)
                    output[out + 1] = UInt8(truncatingIfNeeded: accumulator >> 2)
                    out += 2
                }
                written = out
            }
        }
    }
}
