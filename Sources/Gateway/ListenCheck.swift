import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `check-config`'s test of `MetricsListen`: whether the daemon could listen there now.
public enum ListenCheck {
    enum Result: Equatable {
        case free
        /// In use, by a running smime-milter's own metrics endpoint.
        case servedBySmimeMilter
        case problem(String)
    }

    static func check(_ spec: SocketSpec) -> Result {
        let (host, port, family): (String, Int, Int32)
        switch spec {
        case .inet(let p, let h): (host, port, family) = (h, p, AF_INET)
        case .inet6(let p, let h): (host, port, family) = (h, p, AF_INET6)
        case .unix: return .problem("MetricsListen \(spec) is a local socket; write for example inet:9894@127.0.0.1")
        }
        var hints = addrinfo()
        hints.ai_family = family
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let info = list else {
            return .problem("MetricsListen \(spec): cannot resolve \(host); write an address of this host, e.g. inet:9894@127.0.0.1")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .problem("MetricsListen \(spec): cannot make a socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // As the daemon binds: SO_REUSEADDR, so that connections in TIME_WAIT do not count.
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return .free }
        let error = errno
        if error == EADDRINUSE, answersAsSmimeMilter(host: host, port: port, family: family) { return .servedBySmimeMilter }
        return .problem(bindProblem(spec, errno: error, String(cString: strerror(error))))
    }

    /// What to tell the postmaster when binding `spec` failed with `code` (`detail` says it
    /// otherwise): the same words from `check-config` and from the daemon at start-up.
    public static func bindProblem(_ spec: SocketSpec, errno code: Int32, _ detail: String) -> String {
        switch code {
        case EADDRINUSE:
            "MetricsListen \(spec): the address is already in use by another process; stop it or choose another port"
        case EADDRNOTAVAIL:
            "MetricsListen \(spec): no interface of this host has that address; write one of its addresses, e.g. inet:9894@127.0.0.1"
        case EACCES:
            "MetricsListen \(spec): permission denied; choose a port above 1023"
        default:
            "MetricsListen \(spec): cannot listen: \(detail); check the address or choose another port"
        }
    }

    /// Whether whoever listens there answers `/metrics` with smime-milter's build_info: then the
    /// port is the running daemon's own and a restart will get it back. A wildcard listener is
    /// asked on loopback.
    private static func answersAsSmimeMilter(host: String, port: Int, family: Int32) -> Bool {
        let target = host == "0.0.0.0" ? "127.0.0.1" : host == "::" ? "::1" : host
        var hints = addrinfo()
        hints.ai_family = family
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(target, String(port), &hints, &list) == 0, let info = list else { return false }
        defer { freeaddrinfo(list) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else { return false }
        let request = Array("GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return false }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while response.count < 1 << 20 {
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { break }
            response += chunk[0..<count]
        }
        return String(decoding: response, as: UTF8.self).contains("smime_milter_build_info")
    }
}
