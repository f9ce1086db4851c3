import Foundation

/// The signing table: which key signs mail from which address. Lines are
/// `PATTERN KEY [cert=FILE] [chain=FILE]`; `#` starts a comment. Lookup order for an address:
/// the exact address, `*@domain`, `*@.parent` for each parent domain (nearest first), `*`.
public struct SigningTable: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let pattern: String
        /// A `pkcs11:` URI or the path of a PEM key file.
        public let key: String
        public let certificate: String?
        public let chain: String?
        public let line: Int
    }

    public let entries: [Entry]

    public init(entries: [Entry]) {
        self.entries = entries
    }

    public static func load(path: String) throws -> SigningTable {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(file: path, line: nil, message: "cannot read the signing table", hint: "check SigningTable")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: path)
    }

    public static func parse(_ text: String, file: String) throws -> SigningTable {
        var entries: [Entry] = []
        // A `#` inside a pkcs11: URI is not a comment: only one at the start or after white space is.
        for (number, line) in TableText.lines(text) {
            let fields = TableText.fields(line, commas: false)
            guard !fields.isEmpty else { continue }
            guard fields.count >= 2 else {
                throw ConfigurationError(
                    file: file, line: number, message: "'\(fields[0])' has no key",
                    hint: "write PATTERN pkcs11:token=...;object=...?pin-source=file:/PATH [cert=FILE] [chain=FILE]")
            }
            let pattern = fields[0].lowercased()
            guard AddressPattern.isPattern(pattern) else {
                throw ConfigurationError(
                    file: file, line: number, message: "'\(fields[0])' is not a pattern",
                    hint: "use an address, *@domain, *@.parent-domain or *")
            }
            var certificate: String?
            var chain: String?
            for option in fields.dropFirst(2) {
                if option.hasPrefix("cert=") {
                    certificate = String(option.dropFirst(5))
                } else if option.hasPrefix("chain=") {
                    chain = String(option.dropFirst(6))
                } else {
                    throw ConfigurationError(
                        file: file, line: number, message: "unknown option '\(option)'", hint: "only cert=FILE and chain=FILE follow the key")
                }
            }
            if entries.contains(where: { $0.pattern == pattern }) {
                throw ConfigurationError(
                    file: file, line: number, message: "pattern '\(pattern)' appears twice", hint: "keep one line per pattern")
            }
            let key = fields[1]
            if !key.lowercased().hasPrefix("pkcs11:") && certificate == nil {
                throw ConfigurationError(
                    file: file, line: number, message: "the PEM key \(key) has no certificate",
                    hint: "add cert=FILE (only token keys can take the certificate from the token)")
            }
            entries.append(Entry(pattern: pattern, key: key, certificate: certificate, chain: chain, line: number))
        }
        return SigningTable(entries: entries)
    }

    /// The entry for an address, or nil when none matches.
    public func lookup(_ address: String) -> Entry? {
        for candidate in AddressPattern.candidates(for: address) {
            if let entry = entries.first(where: { $0.pattern == candidate }) { return entry }
        }
        return nil
    }
}

/// The address patterns of the signing and units tables: an address, `*@domain`,
/// `*@.parent-domain` (any domain below it) or `*`.
public enum AddressPattern {
    /// The patterns that match an address, most specific first.
    static func candidates(for address: String) -> [String] {
        let address = address.lowercased()
        guard let at = address.lastIndex(of: "@") else { return ["*"] }
        let domain = address[address.index(after: at)...]
        var candidates = [address, "*@" + domain]
        var parent = Substring(domain)
        while let dot = parent.firstIndex(of: ".") {
            parent = parent[parent.index(after: dot)...]
            candidates.append("*@." + parent)
        }
        candidates.append("*")
        return candidates
    }

    /// An address, `*@domain`, `*@.parent` or `*`.
    static func isPattern(_ pattern: String) -> Bool {
        pattern == "*" || pattern.hasPrefix("*@") || (pattern.contains("@") && !pattern.contains("*"))
    }

    /// The mail domain a pattern speaks for, as a `LocalDomains` entry: `domain` for an address
    /// or `*@domain`, `.parent` for `*@.parent`; nil for `*`.
    static func domain(of pattern: String) -> String? {
        guard pattern != "*", let at = pattern.lastIndex(of: "@") else { return nil }
        return String(pattern[pattern.index(after: at)...])
    }
}
