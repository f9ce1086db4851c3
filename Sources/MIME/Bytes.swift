/// Byte-level helpers shared by the parser and the encoders.
enum Bytes {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let crlf: [UInt8] = [0x0D, 0x0A]

    static func isWhitespace(_ byte: UInt8) -> Bool { byte == space || byte == tab }

    /// The end of the line starting at `start` (index of its LF, or of the CR of a CRLF, or the
    /// end) and the index where the next line starts.
    @inline(__always)
    static func line(in bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> (content: Int, next: Int) {
        var index = start
        while index < end {
            if bytes[index] == lf {
                let content = index > start && bytes[index - 1] == cr ? index - 1 : index
                return (content, index + 1)
            }
            index += 1
        }
        return (end, end)
    }

    /// `bytes` with every line ending (CRLF, bare LF or bare CR) made CRLF: the canonical form
    /// of RFC 5751 section 3.1.1 that signatures are computed over.
    static func canonicalCRLF(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 32 + 2)
        var index = bytes.startIndex
        let end = bytes.endIndex
        while index < end {
            let byte = bytes[index]
            if byte == cr {
                out.append(cr)
                out.append(lf)
                if index + 1 < end && bytes[index + 1] == lf { index += 1 }
            } else if byte == lf {
                out.append(cr)
                out.append(lf)
            } else {
                out.append(byte)
            }
            index += 1
        }
        return out
    }
}
