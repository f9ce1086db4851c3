public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram per message, of
/// `KEY=VALUE` lines, to the unix socket `NOTIFY_SOCKET` names (a path, or `@name` for the
/// abstract namespace). Without `NOTIFY_SOCKET` (not started by systemd) every call does nothing.
public final class SystemdNotifier: Sendable {
    private let address: [UInt8]?
    /// How often `WATCHDOG=1` is due: half of `WATCHDOG_USEC`, nil when the unit has no watchdog.
    public let watchdogInterval: Double?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let path = environment["NOTIFY_SOCKET"], path.hasPrefix("/") || path.hasPrefix("@"), path.utf8.count < 108 {
            // The abstract namespace starts with a NUL byte in place of the '@'.
            address = path.hasPrefix("@") ? [0] + Array(path.utf8.dropFirst()) : Array(path.utf8)
        } else {
            address = nil
        }
        // WATCHDOG_PID, when set, must be this process (sd_watchdog_enabled(3)).
        let pidMatches = environment["WATCHDOG_PID"].map { $0 == String(getpid()) } ?? true
        if let usec = environment["WATCHDOG_USEC"].flatMap(Double.init), usec > 0, pidMatches, address != nil {
            watchdogInterval = usec / 2_000_000
        } else {
            watchdogInterval = nil
        }
    }

    public var isEnabled: Bool { address != nil }

    /// Sends `state` (e.g. `READY=1\nSTATUS=...`); false when there is no socket or it failed.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        guard let address else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { path in
            for (index, byte) in address.enumerated() { path[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + address.count)
        let bytes = Array(state.utf8)
        let sent = withUnsafePointer(to: &socketAddress) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sockaddrPointer, length) }
            }
        }
        return sent == bytes.count
    }
}
