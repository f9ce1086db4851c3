import Foundation

/// Every failure of the `Token` module: what went wrong, at which step, the PKCS#11 return
/// value by name where there is one, and what the postmaster can do about it.
///
/// A PIN never appears in an error.
public struct TokenError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The module could not be loaded or initialised.
        case module
        /// The `pkcs11:` URI is malformed or names something unsupported.
        case uri
        /// No token (or no object) matches the URI.
        case notFound
        /// The PIN could not be read, or the token refused it.
        case pin
        /// The token refused this same PIN before: it is not presented again until its source changes.
        case pinRefused
        /// The token's user PIN is locked: no automatic login.
        case locked
        /// The token's user PIN is at its final try (one wrong PIN more locks it): no automatic login.
        case finalTry
        /// The token was there but now is not, even after one recovery attempt.
        case unavailable
        /// No free session, or no signature, within the deadline.
        case timeout
        /// The token has not answered a call for longer than the signing timeout: messages for
        /// it fail at once until it answers again.
        case stuck
        /// The key cannot do what was asked (mechanism, key type).
        case unsupported
        /// Any other PKCS#11 failure.
        case pkcs11
    }

    public let code: Code
    /// The step that failed, such as `C_Login` or `reading the PIN file`.
    public let operation: String
    /// The PKCS#11 return value, when the failure came from the module.
    public let returnValue: UInt?
    /// What happened and what to do, in a sentence a postmaster can act on.
    public let detail: String

    public init(_ code: Code, operation: String, returnValue: UInt? = nil, detail: String) {
        self.code = code
        self.operation = operation
        self.returnValue = returnValue
        self.detail = detail
    }

    /// The symbolic name of the PKCS#11 return value, such as `CKR_PIN_INCORRECT`.
    public var returnValueName: String? {
        returnValue.map(PKCS11ReturnValue.name)
    }

    public var description: String {
        var text = "\(operation): "
        if let name = returnValueName {
            text += "\(name): "
        }
        return text + detail
    }

    /// True for the return values after which the token is found again and the operation
    /// retried once: the session or the device went away, or the login was lost.
    public var isRecoverable: Bool {
        guard let rv = returnValue else { return false }
        return PKCS11ReturnValue.recoverable.contains(rv)
    }
}

/// Names and groups of PKCS#11 return values (PKCS#11 v2.40 section 5.1).
enum PKCS11ReturnValue {
    static let recoverable: Set<UInt> = [
        0x0B3,  // CKR_SESSION_HANDLE_INVALID
        0x032,  // CKR_DEVICE_REMOVED
        0x0E0,  // CKR_TOKEN_NOT_PRESENT
        0x101,  // CKR_USER_NOT_LOGGED_IN
        0x0B0,  // CKR_SESSION_CLOSED
        0x030,  // CKR_DEVICE_ERROR
        0x003,  // CKR_SLOT_ID_INVALID
        0x190,  // CKR_CRYPTOKI_NOT_INITIALIZED
        0x060,  // CKR_KEY_HANDLE_INVALID: the token came back with new handles
        0x082,  // CKR_OBJECT_HANDLE_INVALID
    ]

    static func name(_ rv: UInt) -> String {
        names[rv] ?? String(format: "CKR_0x%08lX", rv)
    }

    private static let names: [UInt: String] = [
        0x000: "CKR_OK", 0x001: "CKR_CANCEL", 0x002: "CKR_HOST_MEMORY", 0x003: "CKR_SLOT_ID_INVALID",
        0x005: "CKR_GENERAL_ERROR", 0x006: "CKR_FUNCTION_FAILED", 0x007: "CKR_ARGUMENTS_BAD",
        0x010: "CKR_ATTRIBUTE_READ_ONLY", 0x011: "CKR_ATTRIBUTE_SENSITIVE",
        0x012: "CKR_ATTRIBUTE_TYPE_INVALID", 0x013: "CKR_ATTRIBUTE_VALUE_INVALID",
        0x020: "CKR_DATA_INVALID", 0x021: "CKR_DATA_LEN_RANGE", 0x030: "CKR_DEVICE_ERROR",
        0x031: "CKR_DEVICE_MEMORY", 0x032: "CKR_DEVICE_REMOVED", 0x050: "CKR_FUNCTION_CANCELED",
        0x054: "CKR_FUNCTION_NOT_SUPPORTED", 0x060: "CKR_KEY_HANDLE_INVALID", 0x062: "CKR_KEY_SIZE_RANGE",
        0x063: "CKR_KEY_TYPE_INCONSISTENT", 0x068: "CKR_KEY_FUNCTION_NOT_PERMITTED",
        0x070: "CKR_MECHANISM_INVALID", 0x071: "CKR_MECHANISM_PARAM_INVALID",
        0x082: "CKR_OBJECT_HANDLE_INVALID", 0x090: "CKR_OPERATION_ACTIVE",
        0x091: "CKR_OPERATION_NOT_INITIALIZED", 0x0A0: "CKR_PIN_INCORRECT", 0x0A1: "CKR_PIN_INVALID",
        0x0A2: "CKR_PIN_LEN_RANGE", 0x0A3: "CKR_PIN_EXPIRED", 0x0A4: "CKR_PIN_LOCKED",
        0x0B0: "CKR_SESSION_CLOSED", 0x0B1: "CKR_SESSION_COUNT", 0x0B3: "CKR_SESSION_HANDLE_INVALID",
        0x0B5: "CKR_SESSION_READ_ONLY", 0x0B6: "CKR_SESSION_EXISTS", 0x0C0: "CKR_SIGNATURE_INVALID",
        0x0C1: "CKR_SIGNATURE_LEN_RANGE", 0x0D0: "CKR_TEMPLATE_INCOMPLETE",
        0x0D1: "CKR_TEMPLATE_INCONSISTENT", 0x0E0: "CKR_TOKEN_NOT_PRESENT",
        0x0E1: "CKR_TOKEN_NOT_RECOGNIZED", 0x0E2: "CKR_TOKEN_WRITE_PROTECTED",
        0x100: "CKR_USER_ALREADY_LOGGED_IN", 0x101: "CKR_USER_NOT_LOGGED_IN",
        0x102: "CKR_USER_PIN_NOT_INITIALIZED", 0x103: "CKR_USER_TYPE_INVALID",
        0x104: "CKR_USER_ANOTHER_ALREADY_LOGGED_IN", 0x105: "CKR_USER_TOO_MANY_TYPES",
        0x150: "CKR_BUFFER_TOO_SMALL", 0x190: "CKR_CRYPTOKI_NOT_INITIALIZED",
        0x191: "CKR_CRYPTOKI_ALREADY_INITIALIZED",
    ]
}
