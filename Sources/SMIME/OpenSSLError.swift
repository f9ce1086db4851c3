internal import COpenSSL

/// A failure inside OpenSSL, with the library's own error queue drained into it at the point
/// of failure.
public struct SMIMEError: Error, CustomStringConvertible, Sendable {
    /// What we were doing, such as `parsing the certificate`.
    public let operation: String
    /// OpenSSL's error strings, oldest first.
    public let openSSLErrors: [String]
    /// What to do about it, when we know.
    public let hint: String?

    public init(_ operation: String, openSSLErrors: [String] = [], hint: String? = nil) {
        self.operation = operation
        self.openSSLErrors = openSSLErrors
        self.hint = hint
    }

    /// Builds the error and empties OpenSSL's thread-local error queue into it.
    static func drain(_ operation: String, hint: String? = nil) -> SMIMEError {
        SMIMEError(operation, openSSLErrors: OpenSSL.drainErrors(), hint: hint)
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
