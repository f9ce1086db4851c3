import PropertyBased
import Testing

@testable import MIME

/// The quoted-printable encoder and the 7-bit scan give exactly what their octet-by-octet
/// references (`Reference`) give, on inputs made of the pieces where their rules meet: lines
/// just under and over 75/76 columns and 998 octets, `=`, white space before a break and at the
/// end, `From ` and `.` at a line's start (also where a soft break puts them), bare CR and LF,
/// CRLF, NUL, DEL and 8-bit octets; as slices of a larger array, whose indices do not start at 0.
@Suite struct FastPathEquivalenceTests {
    static let pieces: [[UInt8]] =
        [
            "=", " ", "  ", "\t", " \t", "\r", "\n", "\r\n", "\r\r\n", "\n\r", "From ", "From", "Fro", "F", ".",
            "..", ">From ", "a", "ab", "x y", "Kính gửi Ủy ban nhân dân", "ệ", "=3D", "\u{7F}", "\u{1F}", "\u{0}", "~",
            "!",
        ].map { Array($0.utf8) }
        + [[0x80], [0xFF], [0xC3, 0xA1], [0x00, 0x00], [0x0D, 0x0D], [0x20, 0x0D], [0x09, 0x0A], [0x3D, 0x0A]]
        + [1, 2, 3, 5, 7, 8, 9, 15, 16, 60, 70, 71, 72, 73, 74, 75, 76, 77, 80, 150, 990, 996, 997, 998, 999]
        .map { [UInt8](repeating: 0x61, count: $0) }

    /// Pieces joined (up to 40), or now and then any octets at all.
    static let input = Gen.oneOf(
        Gen<[UInt8]?>.element(of: pieces).compactMap { $0 }.array(of: 0...40).map { Array($0.joined()) },
        Gen<UInt8>.value(in: 0...255).array(of: 0...300))

    /// What comes before and after the slice in its array: octets a careless look-behind or
    /// look-ahead would see.
    static let surround = Gen<[UInt8]?>.element(
        of: [[], [0x20], [0x0D], [0x0A], [0x20, 0x0D], [0x46, 0x72, 0x6F, 0x6D, 0x20]]
    ).compactMap { $0 }

    /// `bytes` as a slice of a larger array.
    static func slice(_ bytes: [UInt8], after before: [UInt8], before after: [UInt8]) -> ArraySlice<UInt8> {
        (before + bytes + after)[before.count..<(before.count + bytes.count)]
    }

    @Test func quotedPrintableEqualsTheReference() async {
        await propertyCheck(count: 3000, input: Self.input, Self.surround, Self.surround, Gen.bool()) {
            bytes, before, after, binary in
            let input = Self.slice(bytes, after: before, before: after)
            var out: [UInt8] = [0x2A]  // appended to what is there
            QuotedPrintable.encode(input, binary: binary, into: &out)
            #expect(out == [0x2A] + Reference.quotedPrintable(input, binary: binary), "binary \(binary): \(bytes)")
        }
    }

    @Test func scanEqualsTheReference() async {
        await propertyCheck(count: 3000, input: Self.input, Self.surround, Self.surround) { bytes, before, after in
            let input = Self.slice(bytes, after: before, before: after)
            #expect(Reference.Scan(Scan(input)) == Reference.Scan(input), "\(bytes)")
        }
    }

    /// Every piece after every column from 0 to 80 (and after a soft break), followed by each
    /// piece or the end: the edges of the line limit one by one, not left to chance.
    @Test func quotedPrintableEqualsTheReferenceAtEveryColumn() {
        let follows: [[UInt8]] = [[]] + Self.pieces.filter { $0.count <= 5 }
        for binary in [false, true] {
            for column in 0...80 {
                for prefix in [[UInt8](repeating: 0x61, count: column), [UInt8](repeating: 0xE1, count: column / 3)] {
                    for piece in Self.pieces where piece.count <= 30 {
                        for next in follows {
                            let input = (prefix + piece + next)[...]
                            let encoded = QuotedPrintable.encode(Array(input), binary: binary)
                            #expect(encoded == Reference.quotedPrintable(input, binary: binary), "\(Array(input))")
                        }
                    }
                }
            }
        }
    }

    /// Each flag alone, and long lines at the limit with CRs in them (which do not count).
    @Test func scanEqualsTheReferenceOnEachFlag() {
        let line = { (count: Int) in [UInt8](repeating: 0x61, count: count) }
        let cases: [[UInt8]] = [
            [], [0x0D], [0x0A], [0x0D, 0x0A], [0x00], [0x80], Array("From x".utf8), Array("\r\rFrom x".utf8),
            Array("a\r\nFrom x".utf8), Array("a \r\n".utf8), Array("a\t\n".utf8), Array("a \r\r\n".utf8),
            Array("a ".utf8),
            line(998), line(999), line(998) + [0x0D], line(998) + [0x0D, 0x0A], line(997) + [0x0D, 0x61, 0x61],
            line(999) + [0x0D, 0x0A], [0x0D] + line(998), Array("x\r\n".utf8) + line(999) + [0x0A],
        ]
        // A rare octet at each place within and around the eight looked at together.
        let rare = (0..<17).flatMap { offset in
            [0x00, 0x0D, 0x80, 0xFF, 0x0A].map { line(offset) + [UInt8($0)] + line(20) }
        }
        for bytes in cases + rare {
            for before in [[], [0x20], [0x0D]] as [[UInt8]] {
                let input = Self.slice(bytes, after: before, before: [0x20])
                #expect(Reference.Scan(Scan(input)) == Reference.Scan(input), "\(bytes)")
            }
        }
    }
}
