import Foundation

/// Where the PIN of a token comes from: the `pin-source` (or, discouraged, `pin-value`) of the
/// key's URI. The PIN itself is read only when logging in and is never logged.
///
/// - `file:/etc/smime-milter/pins/stttt` or a bare absolute path: a file readable by its owner
///   only (mode 0400 or 0600), owned by the user the daemon runs as.
/// - `cred:NAME`: a systemd credential (`LoadCredential=NAME:...`), read from
///   `$CREDENTIALS_DIRECTORY/NAME`.
public enum PINSource: Sendable, Equatable, CustomStringConvertible {
    case file(String)
    case credential(String)
    case value(String)

    /// Where the PIN comes from, never the PIN.
    public var description: String {
        switch self {
        case .file(let path): "the PIN file \(path)"
        case .credential(let name): "the credential \(name)"
        case .value: "the pin-value of the key URI"
        }
    }

    /// The PIN source a URI asks for, or nil when it names none.
    public init?(uri: PKCS11URI) throws {
        if let source = uri.pinSource {
            if source.hasPrefix("cred:") {
                self = .credential(String(source.dropFirst(5)))
            } else if source.hasPrefix("file:") {
                var path = String(source.dropFirst(5))
                // file:///path and file:/path both name /path.
                while path.hasPrefix("//") { path.removeFirst() }
                self = .file(path)
            } else if source.hasPrefix("/") {
                self = .file(source)
            } else {
                throw TokenError(
                    .pin, operation: "reading the PIN source",
                    detail: "pin-source '\(source)' is neither file:/ABSOLUTE/PATH nor cred:NAME")
            }
        } else if let value = uri.pinValue {
            self = .value(value)
        } else {
            return nil
        }
    }

    /// Reads the PIN. Refuses files that others can read.
    public func read() throws -> [UInt8] {
        switch self {
        case .value(let pin):
            return Array(pin.utf8)
        case .credential(let name):
            guard let directory = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"] else {
                throw TokenError(
                    .pin, operation: "reading the PIN credential",
                    detail: "pin-source cred:\(name) needs systemd's CREDENTIALS_DIRECTORY; "
                        + "add LoadCredential=\(name):/PATH to the service unit")
            }
            return try Self.readFile(directory + "/" + name, checkMode: false)
        case .file(let path):
            return try Self.readFile(path, checkMode: true)
        }
    }

    private static func readFile(_ path: String, checkMode: Bool) throws -> [UInt8] {
        let operation = "reading the PIN file \(path)"
        var info = stat()
        guard stat(path, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            throw TokenError(
                .pin, operation: operation,
                detail: "\(reason); create it with the token's user PIN, mode 0600, owned by the daemon's user")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw TokenError(
                .pin, operation: operation, detail: "it is not a regular file; point pin-source at the file holding the PIN")
        }
        if checkMode {
            let mode = info.st_mode & 0o777
            if mode & 0o077 != 0 {
                throw TokenError(
                    .pin, operation: operation,
                    detail: String(format: "the file is readable by group or others (mode %04o); chmod 0600 %@", mode, path))
            }
            let euid = geteuid()
            if euid != 0 && info.st_uid != euid {
                throw TokenError(
                    .pin, operation: operation,
                    detail: "the file belongs to uid \(info.st_uid), not to uid \(euid) that runs smime-milter; chown it")
            }
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw TokenError(
                .pin, operation: operation,
                detail: "\(String(cString: strerror(errno))); make it readable by the daemon's user")
        }
        defer { try? handle.close() }
        var pin: [UInt8]
        do {
            pin = Array(try handle.readToEnd() ?? Data())
        } catch {
            throw TokenError(.pin, operation: operation, detail: "\(error); make it readable by the daemon's user")
        }
        while let last = pin.last, last == 0x0A || last == 0x0D { pin.removeLast() }
        if pin.isEmpty {
            throw TokenError(.pin, operation: operation, detail: "the file is empty; write the token's user PIN into it")
        }
        return pin
    }
}
