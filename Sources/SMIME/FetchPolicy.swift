import Foundation

/// Where the verifier may download revocation data and CA certificates from.
///
/// Incoming mail chooses the addresses its certificates name, so a download goes only where the
/// province itself fetches:
/// - the host is named by a URL (CRL distribution point, OCSP responder, CA issuers) in a
///   configured trust anchor or intermediate, or is listed in `FetchHosts`;
/// - plain `http://`, on port 80, unless `FetchHosts` lists `host:port`;
/// - every address the host resolves to is public (not loopback, private, shared, link-local,
///   multicast, reserved or unspecified), unless `FetchHosts` names that host itself; the
///   connection goes to an address that was checked, never to a second lookup.
public struct FetchPolicy: Sendable, Equatable {
    /// One `FetchHosts` entry: a host name or address, and the one port it adds (nil: port 80).
    public struct Entry: Sendable, Hashable {
        public let host: String
        public let port: Int?
    }

    /// What the postmaster listed in `FetchHosts`.
    public let listed: [Entry]
    /// Hosts (lower case) that configured CA certificates name in their URLs.
    public let named: Set<String>

    /// How many downloads one message may start; what a message needs beyond that counts as
    /// unavailable (a real chain needs one or two).
    public static let downloadsPerMessage = 4

    /// - Parameter fetchHosts: `FetchHosts` entries: `host`, `host:port`, `[v6]` or `[v6]:port`.
    public init(fetchHosts: [String], named: Set<String> = []) throws {
        listed = try fetchHosts.map { try Self.entry($0) }
        self.named = named
    }

    /// The same rules with the hosts that `certificates`' URLs name added.
    func naming(_ urls: [String]) -> FetchPolicy {
        var copy = self
        copy.addNamed(urls.compactMap { try? Self.parse($0).host })
        return copy
    }

    private mutating func addNamed(_ hosts: [String]) {
        self = FetchPolicy(listed: listed, named: named.union(hosts))
    }

    private init(listed: [Entry], named: Set<String>) {
        self.listed = listed
        self.named = named
    }

    /// Parses one `FetchHosts` entry, with an error that says how to write it.
    static func entry(_ text: String) throws -> Entry {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var host = Substring(trimmed)
        var port: Int?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw bad(text) }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let number = Int(rest.dropFirst()) else { throw bad(text) }
                port = number
            }
        } else if let colon = host.firstIndex(of: ":"), host.filter({ $0 == ":" }).count == 1 {
            guard let number = Int(host[host.index(after: colon)...]) else { throw bad(text) }
            port = number
            host = host[..<colon]
        }
        let name = normalised(String(host))
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-.:_".contains($0) }) else { throw bad(text) }
        if let port, !(1...65535).contains(port) { throw bad(text) }
        return Entry(host: name, port: port)
    }

    private static func bad(_ text: String) -> SMIMEError {
        SMIMEError(
            "FetchHosts entry '\(text)' is not a host", code: .fetchRefused,
            hint: "write a host name or address, optionally with :port (IPv6 in brackets: [2001:db8::1]:8080)")
    }

    static func normalised(_ host: String) -> String {
        var host = host.lowercased()
        while host.hasSuffix(".") { host.removeLast() }
        return host
    }

    // MARK: deciding

    /// Where one URL leads, once the rules allow it.
    struct Target: Sendable, Equatable {
        let host: String
        let port: Int
        /// Path and query, as sent in the request line.
        let path: String
        /// `FetchHosts` names the host itself: its addresses may be loopback or private.
        let listed: Bool
    }

    /// Why a URL is not fetched.
    enum Refusal: Error, Equatable, CustomStringConvertible {
        case notHTTP
        case malformed
        case hostNotNamed(String)
        case port(String, Int)
        case address(String, String)

        var description: String {
            switch self {
            case .notHTTP: "only http:// addresses are fetched"
            case .malformed: "the address cannot be read"
            case .hostNotNamed(let host):
                "\(host) is named by no configured trust anchor or intermediate (add it to FetchHosts to fetch from it)"
            case .port(let host, let port): "port \(port) is not 80 (add \(host):\(port) to FetchHosts to fetch from it)"
            case .address(let host, let address):
                "\(host) has the non-public address \(address) (add \(host) to FetchHosts to fetch from it)"
            }
        }
    }

    /// The URL-level rules: scheme, host and port. Addresses are checked when connecting.
    func target(_ url: String) -> Result<Target, Refusal> {
        let parts: (host: String, port: Int?, path: String)
        do { parts = try Self.parse(url) } catch let refusal as Refusal { return .failure(refusal) } catch {
            return .failure(.malformed)
        }
        let port = parts.port ?? 80
        let entries = listed.filter { $0.host == parts.host }
        let listedHost = !entries.isEmpty
        guard listedHost || named.contains(parts.host) else { return .failure(.hostNotNamed(parts.host)) }
        guard port == 80 || entries.contains(where: { $0.port == port }) else {
            return .failure(.port(parts.host, port))
        }
        return .success(Target(host: parts.host, port: port, path: parts.path, listed: listedHost))
    }

    /// Splits an `http://` URL; user information, fragments and anything odd are refused.
    static func parse(_ url: String) throws -> (host: String, port: Int?, path: String) {
        guard url.lowercased().hasPrefix("http://") else { throw Refusal.notHTTP }
        let rest = url.dropFirst(7)
        let end = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<end]
        var path = String(rest[end...])
        if path.isEmpty { path = "/" } else if path.hasPrefix("?") { path = "/" + path }
        guard !authority.isEmpty, !authority.contains("@"), !url.contains("#"),
            url.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "\\" })
        else { throw Refusal.malformed }
        guard let entry = try? entry(String(authority)) else { throw Refusal.malformed }
        return (entry.host, entry.port, path)
    }

    // MARK: addresses

    /// Whether `address` (4 or 16 bytes, network order) may be connected to without the host
    /// being listed: nil when public, else what it is.
    static func nonPublic(_ address: [UInt8]) -> String? {
        if address.count == 4 { return nonPublicIPv4(address) }
        guard address.count == 16 else { return "unknown" }
        let a = address
        if a.allSatisfy({ $0 == 0 }) { return "unspecified" }
        if a[0..<15].allSatisfy({ $0 == 0 }) && a[15] == 1 { return "loopback" }
        // IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96) and NAT64 (64:ff9b::/96) carry an
        // IPv4 address that is judged as one.
        if a[0..<10].allSatisfy({ $0 == 0 }) && a[10] == 0xff && a[11] == 0xff { return nonPublicIPv4(Array(a[12...])) }
        if a[0..<12].allSatisfy({ $0 == 0 }) { return nonPublicIPv4(Array(a[12...])) ?? "IPv4-compatible" }
        if a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b { return nonPublicIPv4(Array(a[12...])) }
        if a[0] == 0xff { return "multicast" }
        if a[0] == 0xfe && a[1] & 0xc0 == 0x80 { return "link-local" }
        if a[0] == 0xfe && a[1] & 0xc0 == 0xc0 { return "site-local" }
        if a[0] & 0xfe == 0xfc { return "private" }
        if a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8 { return "documentation" }
        return nil
    }

    private static func nonPublicIPv4(_ a: [UInt8]) -> String? {
        switch (a[0], a[1]) {
        case (0, _): return "unspecified"
        case (10, _), (172, 16...31), (192, 168): return "private"
        case (100, 64...127): return "shared (carrier-grade NAT)"
        case (127, _): return "loopback"
        case (169, 254): return "link-local"
        case (192, 0) where a[2] == 0 || a[2] == 2: return "reserved"
        case (198, 18...19): return "benchmarking"
        case (198, 51) where a[2] == 100, (203, 0) where a[2] == 113: return "documentation"
        case (224...239, _): return "multicast"
        case (240...255, _): return "reserved"
        default: return nil
        }
    }
}
