import Foundation

/// A PostgreSQL 15 cluster of its own for one test: `initdb` in a temporary directory, started
/// with `pg_ctl` on 127.0.0.1 and a free port, run as the postgres user when the tests run as
/// root (initdb refuses root), stopped by its PID in `stop`.
final class TestPostgres {
    static let bin = "/usr/lib/postgresql/15/bin"
    static let password = "records-secret"
    static var installed: Bool { FileManager.default.fileExists(atPath: bin + "/initdb") }

    let directory: String
    let port: Int
    private let user: String?

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        user = geteuid() == 0 ? "postgres" : nil
        if let user, let entry = getpwnam(user) { chown(directory, entry.pointee.pw_uid, gid_t(UInt32.max)) }
        port = Self.freePort()
        try run(
            Self.bin + "/initdb",
            ["-D", directory + "/data", "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])
        try run(
            Self.bin + "/pg_ctl",
            ["-D", directory + "/data", "-l", directory + "/log", "-w", "-t", "30", "-o",
             "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
        try psql("CREATE ROLE smime LOGIN PASSWORD '\(Self.password)'")
    }

    /// Fast shutdown, by the postmaster's PID; waits for it to end.
    func stop() {
        if let text = try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8),
            let pid = Int32(text.split(separator: "\n").first ?? "")
        {
            kill(pid, SIGINT)
            let deadline = Date(timeIntervalSinceNow: 30)
            while kill(pid, 0) == 0 && Date() < deadline { usleep(100_000) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A new database owned by the test role; its URL.
    func database(_ name: String) throws -> String {
        try psql("CREATE DATABASE \(name) OWNER smime")
        return "postgresql://smime@127.0.0.1:\(port)/\(name)"
    }

    /// A password file as the daemon wants it (mode 0600).
    func passwordFile(_ text: String = password, mode: Int = 0o600) throws -> String {
        let path = directory + "/password-\(UUID().uuidString)"
        try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, mode_t(mode))
        return path
    }

    @discardableResult
    func psql(_ sql: String, database: String = "postgres") throws -> String {
        try Self.output(
            "/usr/bin/psql",
            ["-h", directory, "-p", "\(port)", "-U", "postgres", "-d", database, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
    }

    private func run(_ command: String, _ arguments: [String]) throws {
        if let user {
            // setpriv execs the command as the user (runuser forks and waits for it, and started
            // from a test process, whose signal mask it inherits, would wait past pg_ctl's end).
            _ = try Self.output("/usr/bin/setpriv", ["--reuid=\(user)", "--regid=\(user)", "--init-groups", command] + arguments)
        } else {
            _ = try Self.output(command, arguments)
        }
    }

    /// Runs a command to its end; its output. posix_spawn and waitpid, not Foundation's Process,
    /// which did not see pg_ctl end once pg_ctl had started the server in the background. The
    /// output goes to a file, not a pipe, which the server would hold open.
    static func output(_ command: String, _ arguments: [String]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pg-output-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([command] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw NSError(domain: "TestPostgres", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(command): \(String(cString: strerror(spawned)))"])
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw NSError(domain: "TestPostgres", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(command) \(arguments): \(text)"])
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func freePort() -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
