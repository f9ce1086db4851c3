/// Where the milter listens: `local:PATH` / `unix:PATH`, `inet:PORT@HOST`, `inet6:PORT@[HOST]`.
public enum SocketSpec: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case inet(port: Int, host: String)
    case inet6(port: Int, host: String)

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let problem: String
        public let fix: String
        public var description: String { "\(problem); \(fix)" }
    }

    public init(parsing text: String) throws {
        func portAndHost(_ rest: Substring, default host: String) throws -> (Int, String) {
            let parts = rest.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
            guard let port = Int(parts[0]), (1...65535).contains(port) else {
                throw ParseError(
                    problem: "socket \(text): '\(parts[0])' is not a port from 1 to 65535", fix: "write for example inet:8893@127.0.0.1")
            }
            var host = parts.count == 2 ? String(parts[1]) : host
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return (port, host)
        }
        if text.hasPrefix("local:") || text.hasPrefix("unix:") {
            let path = String(text.drop(while: { $0 != ":" }).dropFirst())
            guard path.hasPrefix("/") else {
                throw ParseError(
                    problem: "socket \(text): the path is not absolute",
                    fix: "write for example local:/var/spool/postfix/smime-milter/smime-milter.sock")
            }
            self = .unix(path: path)
        } else if text.hasPrefix("inet6:") {
            let (port, host) = try portAndHost(text.dropFirst(6), default: "::")
            self = .inet6(port: port, host: host)
        } else if text.hasPrefix("inet:") {
            let (port, host) = try portAndHost(text.dropFirst(5), default: "0.0.0.0")
            self = .inet(port: port, host: host)
        } else {
            throw ParseError(
                problem: "'\(text)' is not a socket", fix: "write local:/PATH, inet:PORT@HOST or inet6:PORT@[HOST]")
        }
    }

    /// The form `smfi_setconn` takes.
    public var libmilterForm: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .inet(let port, let host): "inet:\(port)@\(host)"
        case .inet6(let port, let host): "inet6:\(port)@\(host)"
        }
    }

    public var description: String {
        switch self {
        case .unix(let path): "local:\(path)"
        case .inet(let port, let host): "inet:\(port)@\(host)"
        case .inet6(let port, let host): "inet6:\(port)@[\(host)]"
        }
    }

    /// What to put in Postfix's `smtpd_milters` for this socket. A path under Postfix's queue
    /// directory is given relative to it: Postfix's daemons run there, chrooted or not.
    public var postfixForm: String {
        switch self {
        case .unix(let path):
            let chroot = "/var/spool/postfix"
            return path.hasPrefix(chroot + "/") ? "unix:\(path.dropFirst(chroot.count + 1))" : "unix:\(path)"
        case .inet(let port, let host): return "inet:\(host):\(port)"
        case .inet6(let port, let host): return "inet:[\(host)]:\(port)"
        }
    }
}
