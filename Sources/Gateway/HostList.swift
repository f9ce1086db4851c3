import Foundation

/// A list of IPv4 and IPv6 addresses and CIDR ranges (`InternalHosts`): the clients whose mail
/// is originating. Entries come inline or, for an entry starting with `/`, from a file of one
/// entry per line with `#` comments.
public struct HostList: Sendable, Equatable {
    /// One address or range: the network's bytes (4 or 16) and the prefix length.
    public struct Range: Sendable, Equatable, CustomStringConvertible {
        public let network: [UInt8]
        public let prefixLength: Int

        public var description: String {
            let text: String
            if network.count == 4 {
                text = network.map(String.init).joined(separator: ".")
            } else {
                text = stride(from: 0, to: 16, by: 2).map { String(UInt16(network[$0]) << 8 | UInt16(network[$0 + 1]), radix: 16) }
                    .joined(separator: ":")
            }
            return "\(text)/\(prefixLength)"
        }

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == network.count else { return false }
            var remaining = prefixLength
            for (a, n) in zip(address, network) where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if a & mask != n & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    public let ranges: [Range]

    /// The default: the loopback addresses, which also covers mail Postfix hands over through
    /// `non_smtpd_milters` (it presents those as a connection from localhost).
    public static let loopback = try! HostList(entries: ["127.0.0.1", "::1"], file: "(default)")

    public init(ranges: [Range]) {
        self.ranges = ranges
    }

    /// Parses entries; an entry starting with `/` names a file of entries. `file` and `line`
    /// locate the entries in errors.
    public init(entries: [String], file: String, line: Int? = nil) throws {
        var ranges: [Range] = []
        for entry in entries {
            if entry.hasPrefix("/") {
                // A regular file only: a device or a FIFO named by mistake would never end.
                var status = stat()
                guard stat(entry, &status) == 0, status.st_mode & S_IFMT == S_IFREG,
                    let data = FileManager.default.contents(atPath: entry)
                else {
                    throw ConfigurationError(
                        file: file, line: line, message: "cannot read the internal hosts file \(entry)",
                        hint: "check the path (of a regular file) and that the service user may read it")
                }
                for (number, line) in TableText.lines(String(decoding: data, as: UTF8.self)) {
                    for item in TableText.fields(line, commas: true) {
                        ranges.append(try HostList.range(item, file: entry, line: number))
                    }
                }
            } else {
                ranges.append(try HostList.range(entry, file: file, line: line))
            }
        }
        self.ranges = ranges
    }

    /// True when the address (text form, as libmilter reports it) is in the list.
    public func contains(_ address: String) -> Bool {
        guard let bytes = HostList.parseAddress(address) else { return false }
        // An IPv4 client on an IPv6 socket arrives as ::ffff:a.b.c.d.
        let mapped: [UInt8]? =
            bytes.count == 16 && bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF
            ? Array(bytes[12...]) : nil
        return ranges.contains { $0.contains(bytes) || (mapped.map($0.contains) ?? false) }
    }

    static func range(_ text: String, file: String, line: Int?) throws -> Range {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let network = parseAddress(String(parts[0])) else {
            throw ConfigurationError(
                file: file, line: line, message: "'\(text)' is not an IP address or CIDR range",
                hint: "write addresses and ranges such as 10.20.0.0/16 or 2001:db8::/32 (host names are not looked up)")
        }
        var prefix = network.count * 8
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...network.count * 8).contains(length) else {
                throw ConfigurationError(
                    file: file, line: line, message: "'\(text)' has a bad prefix length",
                    hint: "use /0 to /\(network.count * 8) for an IPv\(network.count == 4 ? 4 : 6) range")
            }
            prefix = length
        }
        return Range(network: network, prefixLength: prefix)
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 address in text form (brackets allowed), else nil.
    static func parseAddress(_ text: String) -> [UInt8]? {
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if text.lowercased().hasPrefix("ipv6:") { text = text.dropFirst(5) }
        var v4 = in_addr()
        if inet_pton(AF_INET, String(text), &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, String(text), &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}
