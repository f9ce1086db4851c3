public import Foundation

/// The outcome of verifying one message: a value, not an error (a bad signature is a normal
/// result). Results are those of RFC 7281 / RFC 8601.
public struct Verdict: Sendable, Equatable, Codable {
    public enum Result: String, Sendable, Codable {
        /// Valid signature, trusted chain, right usage, signer address matches From.
        case pass
        /// Bad signature, tampered content, or a revoked certificate.
        case fail
        /// Valid signature but not acceptable: untrusted, expired, wrong usage, address mismatch.
        case policy
        /// Signed, but the signature could not be processed (unsupported, signer certificate missing).
        case neutral
        /// A revocation source could not be reached; trying later may give an answer.
        case temperror
        /// The CMS structure is malformed.
        case permerror
        /// No signature.
        case none
    }

    public var result: Result
    /// Why, in a sentence of English (logs, `Authentication-Results`); empty for a plain pass.
    public var reason: String
    /// Why, as a value the readable header renders in the recipients' language.
    public var because: VerdictReason?
    /// The signer's subject (RFC 2253, UTF-8) and parts of it.
    public var subject: String?
    public var commonName: String?
    public var organization: String?
    public var emailAddresses: [String]
    public var serial: String?
    public var issuer: String?
    public var signingTime: Date?
    /// Subjects from the signer up to the trust anchor, when a chain was built.
    public var chain: [String]
    /// The body part that carried the signature (`1` in a `multipart/mixed`), nil for the message.
    public var part: String?

    public init(
        result: Result, reason: String = "", subject: String? = nil, commonName: String? = nil,
        organization: String? = nil, emailAddresses: [String] = [], serial: String? = nil, issuer: String? = nil,
        signingTime: Date? = nil, chain: [String] = [], part: String? = nil
    ) {
        self.result = result
        self.reason = reason
        self.subject = subject
        self.commonName = commonName
        self.organization = organization
        self.emailAddresses = emailAddresses
        self.serial = serial
        self.issuer = issuer
        self.signingTime = signingTime
        self.chain = chain
        self.part = part
    }

    /// A verdict for a reason, its English text in `reason`.
    public init(result: Result, because: VerdictReason) {
        self.init(result: result, reason: because.english)
        self.because = because
    }

    /// Sets the result and why.
    public mutating func set(_ result: Result, because reason: VerdictReason?) {
        self.result = result
        self.because = reason
        self.reason = reason?.english ?? ""
    }

    /// Fills the signer fields from a certificate.
    mutating func describe(_ certificate: Certificate) {
        subject = certificate.subject
        commonName = certificate.commonName
        organization = certificate.organization
        emailAddresses = certificate.emailAddresses
        serial = certificate.serial
        issuer = certificate.issuer
    }
}
