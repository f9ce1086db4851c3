import Glibc

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
        guard let index = find(lf, in: bytes, from: start, to: end) else { return (end, end) }
        let content = index > start && bytes[index - 1] == cr ? index - 1 : index
        return (content, index + 1)
    }

    /// True when `input` (of `count` octets) holds `From ` at `index`: the line start that mbox
    /// quoting alters.
    @inline(__always)
    static func startsWithFromSpace(_ input: UnsafePointer<UInt8>, at index: Int, count: Int) -> Bool {
        index + 5 <= count && input[index] == 0x46 && input[index + 1] == 0x72 && input[index + 2] == 0x6F
            && input[index + 3] == 0x6D && input[index + 4] == space
    }

    /// 0x01 in each octet of a 64-bit word, for looking at eight octets at once.
    static let ones: UInt64 = 0x0101_0101_0101_0101

    /// Bit 7 set in the octets of `word` that equal `byte` and, above the first of them, perhaps
    /// in others (Bit Twiddling Hacks' "has a zero byte"): borrows start only at an equal octet,
    /// so the lowest bit set marks the first one exactly. Masked with `ones &* 0x80` by the caller.
    @inline(__always)
    static func equalOctets(_ word: UInt64, _ byte: UInt8) -> UInt64 {
        let difference = word ^ (ones &* UInt64(byte))
        return (difference &- ones) & ~difference
    }

    /// The first `byte` in `start..<end` (glibc's memchr: lines are scanned many bytes at a time).
    @inline(__always)
    static func find(_ byte: UInt8, in bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> Int? {
        guard start < end, let base = bytes.baseAddress, let found = memchr(base + start, Int32(byte), end - start)
        else { return nil }
        return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }

    /// `bytes` with every line ending (CRLF, bare LF or bare CR) made CRLF: the canonical form
    /// of RFC 8551 section 3.1.1 that signatures are computed over.
    ///
    /// Mail from Postfix is already canonical: that is checked a line at a time and the bytes
    /// are copied whole; only other input is rewritten octet by octet.
    static func canonicalCRLF(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        bytes.withUnsafeBufferPointer { input in
            if isCanonical(input) { return Array(input) }
            var out: [UInt8] = []
            out.reserveCapacity(input.count + input.count / 32 + 2)
            var index = 0
            while index < input.count {
                let byte = input[index]
                if byte == cr || byte == lf {
                    out += crlf
                    index += byte == cr && index + 1 < input.count && input[index + 1] == lf ? 2 : 1
                } else {
                    out.append(byte)
                    index += 1
                }
            }
            return out
        }
    }

    /// Every LF follows a CR and every CR comes before an LF.
    private static func isCanonical(_ input: UnsafeBufferPointer<UInt8>) -> Bool {
        var start = 0
        while start < input.count {
            let (content, next) = line(in: input, from: start, to: input.count)
            if next - content == 1 { return false }  // a bare LF
            if find(cr, in: input, from: start, to: content) != nil { return false }  // a bare CR
            start = next
        }
        return true
    }
}
