internal import COpenSSL

/// Every failure of the `SMIME` module: a code callers and tests match, what we were doing,
/// OpenSSL's error queue drained into it at the point of failure, what to do, and where in our
/// code it was raised.
public struct SMIMEError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// An OpenSSL call failed where nothing in the input explains it.
        case openssl
        /// A file (certificate, key, trust anchor, CRL directory) is missing or unreadable.
        case file
        /// A certificate cannot be parsed, or is not where it should be.
        case certificate
        /// A key cannot be read, does not belong to its certificate, or cannot sign as asked.
        case key
        /// No usable trust anchor.
        case trust
        /// A CA's web server did not give what was asked (unreachable, not DER, too large, not
        /// issued by the right CA).
        case fetch
        /// A download the fetch rules refuse (host not named, port, non-public address), or a
        /// `FetchHosts` entry that cannot be read.
        case fetchRefused
        /// An OCSP answer was refused (unsigned by an authorised responder, another certificate,
        /// out of date, another request's nonce).
        case ocsp
    }

    public let code: Code
    /// What we were doing, such as `parsing the certificate`.
    public let operation: String
    /// OpenSSL's error strings, oldest first.
    public let openSSLErrors: [String]
    /// What to do about it, when we know.
    public let hint: String?
    /// Where it was raised: `#fileID:#line`.
    public let location: String

    public init(
        _ operation: String, code: Code = .openssl, openSSLErrors: [String] = [], hint: String? = nil,
        file: StaticString = #fileID, line: UInt = #line
    ) {
        self.code = code
        self.operation = operation
        self.openSSLErrors = openSSLErrors
        self.hint = hint
        self.location = "\(file):\(line)"
    }

    /// Builds the error and empties OpenSSL's thread-local error queue into it.
    static func drain(
        _ operation: String, code: Code = .openssl, hint: String? = nil, file: StaticString = #fileID, line: UInt = #line
    ) -> SMIMEError {
        SMIMEError(operation, code: code, openSSLErrors: OpenSSL.drainErrors(), hint: hint, file: file, line: line)
    }

    public var description: String {
        var text = operation
        if !openSSLErrors.isEmpty { text += ": " + openSSLErrors.joined(separator: "; ") }
        if let hint { text += " (\(hint))" }
        return text
    }
}

enum OpenSSL {
    /// Empties the calling thread's error queue, returning its entries as text.
    static func drainErrors() -> [String] {
        var errors: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            errors.append(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        return errors
    }
}
