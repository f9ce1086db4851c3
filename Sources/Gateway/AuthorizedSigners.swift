import Foundation

/// Which SMTP logins may send as which From addresses: lines of `LOGIN PATTERN[,PATTERN...]`,
/// patterns as in the signing table (`address`, `*@domain`, `*@.parent`, `*`). A login with
/// no line may sign as nobody.
public struct AuthorizedSigners: Sendable, Equatable {
    public let patterns: [String: [String]]

    public init(patterns: [String: [String]]) {
        self.patterns = patterns
    }

    public static func load(path: String) throws -> AuthorizedSigners {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(
                file: path, line: nil, message: "cannot read the authorized signers table", hint: "check AuthorizedSigners")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: path)
    }

    public static func parse(_ text: String, file: String) throws -> AuthorizedSigners {
        var patterns: [String: [String]] = [:]
        for (number, line) in TableText.lines(text) {
            let fields = TableText.fields(line, commas: true).map { $0.lowercased() }
            guard let login = fields.first else { continue }
            guard fields.count >= 2 else {
                throw ConfigurationError(
                    file: file, line: number, message: "login '\(login)' has no address patterns",
                    hint: "write LOGIN PATTERN[,PATTERN...], e.g. vanthu *@stttt.dienbien.gov.vn")
            }
            for pattern in fields.dropFirst() where !AddressPattern.isPattern(pattern) {
                throw ConfigurationError(
                    file: file, line: number, message: "'\(pattern)' is not a pattern",
                    hint: "use an address, *@domain, *@.parent-domain or *")
            }
            patterns[login, default: []] += fields.dropFirst()
        }
        return AuthorizedSigners(patterns: patterns)
    }

    /// True when `login` may send as `address`.
    public func allows(login: String, address: String) -> Bool {
        guard let allowed = patterns[login.lowercased()] else { return false }
        return AddressPattern.candidates(for: address).contains(where: allowed.contains)
    }
}
