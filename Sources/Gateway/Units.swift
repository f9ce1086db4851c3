import Foundation

/// The units of the province (key `Units`): which unit an address belongs to, for the records
/// and the report. Lines are `PATTERN NAME`, the pattern as in the signing table, the name the
/// rest of the line in UTF-8 (`*@stttt.dienbien.gov.vn  Sở Thông tin và Truyền thông`);
/// several patterns may name one unit. Without the table, an address's unit is its domain.
public struct Units: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let pattern: String
        public let name: String
        public let line: Int
    }

    public let entries: [Entry]

    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// Every unit named, in the order of first appearance.
    public var names: [String] { Gateway.unique(entries.map(\.name)) }

    public static func load(path: String) throws -> Units {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(file: path, line: nil, message: "cannot read the units table", hint: "check Units")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: path)
    }

    public static func parse(_ text: String, file: String) throws -> Units {
        var entries: [Entry] = []
        for (number, line) in TableText.lines(text) {
            let (first, rest) = TableText.nameAndRest(line)
            let pattern = first.lowercased()
            let name = rest.precomposedStringWithCanonicalMapping
            guard AddressPattern.isPattern(pattern) else {
                throw ConfigurationError(
                    file: file, line: number, message: "'\(pattern)' is not a pattern",
                    hint: "use an address, *@domain, *@.parent-domain or *, then the unit's name")
            }
            guard !name.isEmpty else {
                throw ConfigurationError(
                    file: file, line: number, message: "'\(pattern)' has no unit name",
                    hint: "write the unit's name after the pattern: \(pattern)  Sở Thông tin và Truyền thông")
            }
            if let earlier = entries.first(where: { $0.pattern == pattern }) {
                throw ConfigurationError(
                    file: file, line: number, message: "pattern '\(pattern)' appears twice (first on line \(earlier.line))",
                    hint: "keep one line per pattern")
            }
            entries.append(Entry(pattern: pattern, name: name, line: number))
        }
        return Units(entries: entries)
    }

    /// The unit of an address: the most specific pattern's name, else the address's domain.
    public func unit(of address: String) -> String {
        for candidate in AddressPattern.candidates(for: address) {
            if let entry = entries.first(where: { $0.pattern == candidate }) { return entry.name }
        }
        return Units.domain(of: address)
    }

    /// The domain of an address, lower case; `(none)` without one.
    public static func domain(of address: String) -> String {
        guard let at = address.lastIndex(of: "@") else { return "(none)" }
        return address[address.index(after: at)...].lowercased()
    }
}
