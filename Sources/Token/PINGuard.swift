internal import COpenSSL
import Foundation
public import Logging
import Synchronization

/// Keeps a wrong PIN from locking a token.
///
/// USB tokens lock their user PIN after a few wrong tries, and only the certificate authority
/// can unlock it. So a PIN the token refused is never presented to it again until the PIN
/// source's content changes: the refusal is written under the state directory (token label and
/// serial, a salted PBKDF2 digest of the PIN, never the PIN), where every later message, a
/// reload, a restart and `check-config` find it. Logins to one token are serialised across
/// processes with a lock file, so that the daemon and `check-config` cannot both try the same
/// wrong PIN at once.
///
/// Before any login the token's flags decide: `CKF_USER_PIN_LOCKED` or `CKF_USER_PIN_FINAL_TRY`
/// means no automatic login at all; `CKF_USER_PIN_COUNT_LOW` is logged as a warning. Each change
/// of a token's state is logged once, not once per message.
public final class PINGuard: Sendable {
    /// Where refusals are kept; nil keeps them in memory only (a process that cannot write
    /// the state directory still never repeats a wrong PIN itself).
    public let directory: String?
    private let logger: Logger
    private let memory = Mutex<[String: Refusal]>([:])
    /// The last state logged for each token, so that each change is logged once.
    private let logged = Mutex<[String: TokenPINState]>([:])
    /// Held during a login when there is no directory (and so no lock file).
    private let memoryLogins = Mutex(())

    /// One guard per directory in a process, so that reloads keep what was logged.
    private static let guards = Mutex<[String: PINGuard]>([:])

    /// The guard for `directory` (created with mode 0700 when missing).
    public static func at(_ directory: String?, logger: Logger = Logger(label: "smime-milter.token")) -> PINGuard {
        guards.withLock { guards in
            let key = directory ?? ""
            if let existing = guards[key] { return existing }
            let made = PINGuard(directory: directory, logger: logger)
            guards[key] = made
            return made
        }
    }

    init(directory: String?, logger: Logger) {
        if let directory {
            try? FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        self.directory = directory.flatMap { FileManager.default.isWritableFile(atPath: $0) ? $0 : nil }
        self.logger = logger
    }

    // MARK: what a token's flags allow

    /// Throws, with what to do, when the token's flags forbid an automatic login; logs a warning
    /// when the count is low. `flags` are `CK_TOKEN_INFO.flags`.
    func checkFlags(_ flags: UInt, token: TokenIdentity) throws {
        let state = state(of: token, flags: flags)
        note(state, token: token)
        switch state {
        case .locked:
            throw TokenError(
                .locked, operation: "logging in to token \(token.label)",
                detail: "the token's user PIN is locked (CKF_USER_PIN_LOCKED); no login is attempted. Only the "
                    + "certificate authority can unlock it with the SO PIN; mail for this key is deferred until then")
        case .finalTry:
            throw TokenError(
                .finalTry, operation: "logging in to token \(token.label)",
                detail: "one wrong PIN more locks the token (CKF_USER_PIN_FINAL_TRY), so smime-milter does not "
                    + "log in by itself. Check the PIN file against the PIN the certificate authority issued, then log "
                    + "in once by hand (pkcs11-tool --login --test --token-label '\(token.label)'); a good login resets "
                    + "the count and the next message signs")
        case .ok, .countLow, .refused:
            break  // a refused PIN is stopped in `login`, where it is compared with the current one
        }
    }

    // MARK: logging in

    /// An automatic login as the daemon and the tools make it: the token's flags first, then
    /// the PIN from its source, presented by `login` unless the token refused it before.
    func logIn(token: TokenIdentity, flags: UInt, pin source: PINSource, _ login: ([UInt8]) throws -> Void) throws {
        try checkFlags(flags, token: token)
        let pin = try source.read()
        try self.login(token: token, pin: pin, source: source.description) { try login(pin) }
    }

    /// Runs `login` with `pin` unless the token refused that same PIN before. A refusal
    /// (`CKR_PIN_INCORRECT`, `CKR_PIN_LOCKED`) is recorded; a success clears the record. Logins
    /// are one at a time: across processes by the token's lock file, and without a directory
    /// (a process that cannot write one) by a lock of this guard's.
    func login(token: TokenIdentity, pin: [UInt8], source: String, _ login: () throws -> Void) throws {
        let lock = try lockFile(token)
        defer { if lock >= 0 { close(lock) } }
        if lock < 0 {
            try memoryLogins.withLock { _ in try guardedLogin(token: token, pin: pin, source: source, login) }
        } else {
            try guardedLogin(token: token, pin: pin, source: source, login)
        }
    }

    private func guardedLogin(token: TokenIdentity, pin: [UInt8], source: String, _ login: () throws -> Void) throws {
        if let refusal = refusal(for: token) {
            if refusal.matches(pin) {
                throw TokenError(
                    .pinRefused, operation: "logging in to token \(token.label)",
                    returnValue: refusal.returnValue,
                    detail: "the token refused this PIN on \(Self.timestamp(refusal.refusedAt)); it is not presented "
                        + "again, so that the token does not lock. Write the right PIN into \(source); the next message "
                        + "logs in once with it, no restart needed")
            }
            logger.notice(
                "the PIN source changed since the token refused its PIN: logging in once with the new PIN",
                metadata: ["token.label": "\(token.label)", "token.pin_source": "\(source)"])
        }
        do {
            try login()
        } catch let error as TokenError
            where error.returnValueName == "CKR_PIN_INCORRECT" || error.returnValueName == "CKR_PIN_LOCKED"
        {
            record(Refusal(pin: pin, returnValue: error.returnValue ?? 0), for: token)
            note(.refused, token: token)
            throw TokenError(
                .pin, operation: error.operation, returnValue: error.returnValue,
                detail: "the token refused the PIN from \(source); it will not be presented again until that "
                    + "source changes (each wrong try brings the token closer to locking). Write the right PIN into it")
        }
        if refusal(for: token) != nil { clear(token) }
        note(.ok, token: token)
    }

    /// The PIN state smime-milter knows for a token: a refusal on record, else what `flags` say.
    public func state(of token: TokenIdentity, flags: UInt) -> TokenPINState {
        let state = TokenPINState(flags: flags)
        if state == .locked || state == .finalTry { return state }
        return refusal(for: token) == nil ? state : .refused
    }

    /// Logs a token's state when it differs from the last one logged.
    private func note(_ state: TokenPINState, token: TokenIdentity) {
        let previous = logged.withLock { logged in
            defer { logged[token.key] = state }
            return logged[token.key]
        }
        guard previous != state, !(previous == nil && state == .ok) else { return }
        let metadata: Logger.Metadata = ["token.label": "\(token.label)", "token.pin_state": "\(state.rawValue)"]
        switch state {
        case .ok: logger.notice("token accepted the PIN", metadata: metadata)
        case .countLow:
            logger.warning(
                "the token counted a wrong PIN (CKF_USER_PIN_COUNT_LOW); check the PIN file before it locks",
                metadata: metadata)
        case .finalTry, .locked, .refused:
            logger.error("token PIN state: \(state.rawValue); mail for its keys is deferred", metadata: metadata)
        }
    }

    // MARK: the records

    struct Refusal: Codable {
        var salt: [UInt8]
        var digest: [UInt8]
        var refusedAt: Date
        var returnValue: UInt

        init(pin: [UInt8], returnValue: UInt) {
            var generator = SystemRandomNumberGenerator()
            salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
            digest = Self.derive(pin, salt: salt)
            refusedAt = Date()
            self.returnValue = returnValue
        }

        func matches(_ pin: [UInt8]) -> Bool {
            let other = Self.derive(pin, salt: salt)
            // Constant time, though the digest is no secret to the daemon's own user.
            return other.count == digest.count && zip(other, digest).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
        }

        /// PBKDF2-HMAC-SHA256: a short numeric PIN must not be read back from the file at a glance.
        static func derive(_ pin: [UInt8], salt: [UInt8]) -> [UInt8] {
            var output = [UInt8](repeating: 0, count: 32)
            let ok = pin.withUnsafeBufferPointer { pinBytes in
                pinBytes.withMemoryRebound(to: CChar.self) { pinChars in
                    PKCS5_PBKDF2_HMAC(
                        pinChars.baseAddress, Int32(pinChars.count), salt, Int32(salt.count), 20_000, EVP_sha256(),
                        Int32(output.count), &output)
                }
            }
            return ok == 1 ? output : []
        }
    }

    private func path(_ token: TokenIdentity, _ suffix: String) -> String? {
        directory.map { "\($0)/\(token.fileName)\(suffix)" }
    }

    func refusal(for token: TokenIdentity) -> Refusal? {
        if let path = path(token, ".json") {
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            guard let refusal = try? JSONDecoder().decode(Refusal.self, from: data) else {
                logger.warning("ignoring an unreadable PIN refusal record", metadata: ["token.record": "\(path)"])
                return nil
            }
            return refusal
        }
        return memory.withLock { $0[token.key] }
    }

    private func record(_ refusal: Refusal, for token: TokenIdentity) {
        guard let path = path(token, ".json") else {
            memory.withLock { $0[token.key] = refusal }
            return
        }
        do {
            try JSONEncoder().encode(refusal).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            // Still never repeated by this process.
            memory.withLock { $0[token.key] = refusal }
            logger.error(
                "cannot record the PIN refusal: \(error); only this process will remember it",
                metadata: ["token.record": "\(path)"])
        }
    }

    private func clear(_ token: TokenIdentity) {
        memory.withLock { _ = $0.removeValue(forKey: token.key) }
        if let path = path(token, ".json") { try? FileManager.default.removeItem(atPath: path) }
    }

    /// An exclusive lock on the token's lock file, held while checking and logging in; -1 when
    /// there is no directory.
    private func lockFile(_ token: TokenIdentity) throws -> Int32 {
        guard let path = path(token, ".lock") else { return -1 }
        // Read-only and 0644: check-config run as root and the daemon's user must both open it.
        let fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw TokenError(
                .pin, operation: "opening \(path)",
                detail: "\(String(cString: strerror(errno))); make the state directory writable by the daemon's user")
        }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        return fd
    }

    private static func timestamp(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }
}

/// Which token a refusal belongs to: its label and serial number.
public struct TokenIdentity: Sendable, Hashable {
    public let label: String
    public let serial: String

    public init(label: String, serial: String) {
        self.label = label
        self.serial = serial
    }

    var key: String { "\(label)\u{0}\(serial)" }

    /// A file name that survives any label: hexadecimal of label and serial.
    var fileName: String {
        "pin-" + Array(key.utf8).map { String(format: "%02x", $0) }.joined()
    }
}

/// A token's user-PIN state as `smime-milter tokens` shows it.
public enum TokenPINState: String, Sendable {
    case ok
    case countLow = "count low"
    case finalTry = "final try"
    case locked
    /// The token refused the PIN smime-milter has, and it is not presented again.
    case refused = "refused, not retried"

    /// From `CK_TOKEN_INFO.flags`; when flags contradict each other the strictest wins.
    init(flags: UInt) {
        if flags & 0x0004_0000 != 0 {  // CKF_USER_PIN_LOCKED
            self = .locked
        } else if flags & 0x0002_0000 != 0 {  // CKF_USER_PIN_FINAL_TRY
            self = .finalTry
        } else if flags & 0x0001_0000 != 0 {  // CKF_USER_PIN_COUNT_LOW
            self = .countLow
        } else {
            self = .ok
        }
    }
}
