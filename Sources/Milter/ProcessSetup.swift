internal import CShims
import Foundation
import Gateway
import Logging

/// What the daemon does to its own process before it serves mail: memory policy, signals, the
/// service user, the spool directory.
public enum ProcessSetup {
    /// Large bodies (over 1 MB) get pages of their own, returned to the system when freed. With
    /// glibc's default the limit rises to 32 MB after the first large free, and each libmilter
    /// thread's arena then keeps what a large message used: 4 concurrent 30 MB messages took
    /// 314 MB instead of 135 MB (BENCHMARKS.md).
    static func prepareMemory() {
        smime_milter_set_mmap_threshold(1 << 20)
    }

    // MARK: signals

    /// Blocks SIGHUP, SIGTERM and SIGINT in the calling thread; threads made later inherit that,
    /// and the service's signal thread alone takes them with `nextSignal` (libmilter's own
    /// signal thread is parked from now on, see signals.c). Call it before any thread exists.
    public static func blockSignals() {
        smime_milter_take_signals()
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for the next SIGHUP, SIGTERM or SIGINT.
    static func nextSignal() -> Int32? {
        var set = signalSet()
        let signal = sigwaitinfo(&set, nil)
        return signal > 0 || errno == EINTR ? signal : nil
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGHUP, SIGTERM, SIGINT] { sigaddset(&set, signal) }
        return set
    }

    // MARK: user and directories

    /// Switches to `UserID` after the socket is open. Running on as root needs `UserID root`.
    static func dropPrivileges(_ userID: String?, socket: SocketSpec, logger: Logger) throws {
        guard geteuid() == 0 else { return }
        guard let userID else {
            throw StartError(
                description: "refusing to run as root: set UserID (e.g. UserID smime-milter) or start as that user (systemd User=)")
        }
        if let problem = ConfigurationCheck.userProblem(userID) { throw StartError(description: problem) }
        let parts = userID.split(separator: ":", maxSplits: 1).map(String.init)
        guard let user = getpwnam(parts[0]) else { throw StartError(description: "UserID \(userID): no user") }
        if user.pointee.pw_uid == 0 {
            logger.warning("running as root because UserID is \(userID)")
            return
        }
        var gid = user.pointee.pw_gid
        if parts.count == 2 {
            guard let group = getgrnam(parts[1]) else { throw StartError(description: "UserID \(userID): no group") }
            gid = group.pointee.gr_gid
        }
        let uid = user.pointee.pw_uid
        if case .unix(let path) = socket { _ = chown(path, uid, gid) }
        guard initgroups(parts[0], gid) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
            throw StartError(description: "cannot switch to \(userID): \(String(cString: strerror(errno)))")
        }
    }

    /// A private directory for this run's spooled bodies.
    static func makeSpoolDirectory(in parent: String) throws -> String {
        var template = Array((parent + "/smime-milter.XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw StartError(
                description: "cannot create a spool directory in \(parent): \(String(cString: strerror(errno))); fix SpoolDirectory")
        }
        return String(cString: made)
    }
}
