public import Gateway
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Asks the milter's own socket whether its loop still answers: connects as an MTA would, sends
/// an option negotiation (SMFIC_OPTNEG) and waits for the milter's reply, then quits. Only a
/// loop that accepts and serves a connection passes; a wedged one times out.
public enum MilterProbe {
    /// nil when the milter answered within `timeout` seconds, else what went wrong.
    public static func problem(_ socket: SocketSpec, timeout: Double) -> String? {
        let fd: Int32
        switch socket {
        case .unix(let path):
            fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return "cannot make a socket: \(String(cString: strerror(errno)))" }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                close(fd)
                return "socket path too long"
            }
            withUnsafeMutableBytes(of: &address.sun_path) { for (i, b) in bytes.enumerated() { $0[i] = b } }
            setTimeout(fd, timeout)
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if result != 0 {
                let text = String(cString: strerror(errno))
                close(fd)
                return "milter socket \(socket) refused the connection: \(text)"
            }
        case .inet(let port, let host), .inet6(let port, let host):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_family = { if case .inet6 = socket { return AF_INET6 } else { return AF_INET } }()
            // Ask a wildcard listener on its loopback address.
            let target = host == "0.0.0.0" ? "127.0.0.1" : host == "::" ? "::1" : host
            var list: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(target, String(port), &hints, &list) == 0, let info = list else {
                return "cannot resolve \(target)"
            }
            defer { freeaddrinfo(list) }
            fd = Glibc.socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return "cannot make a socket: \(String(cString: strerror(errno)))" }
            setTimeout(fd, timeout)
            if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 {
                let text = String(cString: strerror(errno))
                close(fd)
                return "milter socket \(socket) refused the connection: \(text)"
            }
        }
        defer { close(fd) }
        // SMFIC_OPTNEG: version 6, every action and protocol step offered, as Postfix does.
        var negotiate: [UInt8] = [0, 0, 0, 13, UInt8(ascii: "O")]
        for value: UInt32 in [6, 0x1FF, 0x1F_FFFF] { negotiate += withUnsafeBytes(of: value.bigEndian, Array.init) }
        guard send(fd, negotiate, negotiate.count, Int32(MSG_NOSIGNAL)) == negotiate.count else {
            return "milter socket \(socket): cannot send: \(String(cString: strerror(errno)))"
        }
        var reply = [UInt8](repeating: 0, count: 5)
        let received = recv(fd, &reply, reply.count, Int32(MSG_WAITALL))
        guard received == 5, reply[4] == UInt8(ascii: "O") else {
            return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
                ? "the milter loop did not answer on \(socket) within \(Int(timeout)) s"
                : "the milter loop on \(socket) did not answer an option negotiation"
        }
        let quit: [UInt8] = [0, 0, 0, 1, UInt8(ascii: "Q")]
        _ = send(fd, quit, quit.count, Int32(MSG_NOSIGNAL))
        return nil
    }

    private static func setTimeout(_ fd: Int32, _ seconds: Double) {
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }
}
