/// The line rules every configuration file and table shares (smime-milter.conf(5)): lines end
/// with LF or CRLF; a `#` at the start of a line or after a space or tab starts a comment that
/// runs to the end of the line (a `#` inside a word, as in a `pkcs11:` URI or a path, is part of
/// it); space, tab and CR around the rest are not part of it.
enum TableText {
    /// Each line's content, comment and surrounding white space removed, with its 1-based
    /// number; lines left empty are skipped.
    static func lines(_ text: String) -> [(number: Int, content: Substring)] {
        var result: [(Int, Substring)] = []
        // Split on the LF scalar: a CRLF pair is one Character in Swift and would not match "\n".
        let scalars = text.unicodeScalars
        var start = scalars.startIndex
        var number = 0
        while start <= scalars.endIndex {
            let end = scalars[start...].firstIndex(of: "\n") ?? scalars.endIndex
            number += 1
            let content = TableText.content(Substring(scalars[start..<end]))
            if !content.isEmpty { result.append((number, content)) }
            if end == scalars.endIndex { break }
            start = scalars.index(after: end)
        }
        return result
    }

    /// One line's content: up to a comment, without surrounding space, tab and CR.
    static func content(_ line: Substring) -> Substring {
        let scalars = line.unicodeScalars
        var end = scalars.endIndex
        var previous: Unicode.Scalar = " "
        for index in scalars.indices {
            let scalar = scalars[index]
            if scalar == "#" && isBlank(previous) {
                end = index
                break
            }
            previous = scalar
        }
        var kept = scalars[scalars.startIndex..<end]
        while let first = kept.first, isBlank(first) || first == "\r" { kept = kept.dropFirst() }
        while let last = kept.last, isBlank(last) || last == "\r" { kept = kept.dropLast() }
        return Substring(kept)
    }

    /// A field separator: space or tab.
    static func isBlank(_ scalar: Unicode.Scalar) -> Bool { scalar == " " || scalar == "\t" }
}

extension TableText {
    /// The fields of a line's content, separated by spaces and tabs (and commas, with `commas`).
    static func fields(_ content: Substring, commas: Bool) -> [String] {
        content.unicodeScalars.split(whereSeparator: { isBlank($0) || (commas && $0 == ",") })
            .map { String(String.UnicodeScalarView($0)) }
    }

    /// The first field of a line's content and the rest after the white space that follows it.
    static func nameAndRest(_ content: Substring) -> (name: String, rest: String) {
        let scalars = content.unicodeScalars
        let nameEnd = scalars.firstIndex(where: isBlank) ?? scalars.endIndex
        var rest = scalars[nameEnd...]
        while let first = rest.first, isBlank(first) { rest = rest.dropFirst() }
        return (String(String.UnicodeScalarView(scalars[..<nameEnd])), String(String.UnicodeScalarView(rest)))
    }
}
