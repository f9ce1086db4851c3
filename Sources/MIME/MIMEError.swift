/// Errors of the `MIME` module: malformed input the parser cannot represent, and input over one
/// of the configured `MIMELimits`.
public struct MIMEError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// The header section is larger than `MIMELimits.maximumHeaderBytes`.
        case headerTooLarge
        /// More header fields than `MIMELimits.maximumHeaderCount`.
        case tooManyHeaders
        /// Multipart nesting deeper than `MIMELimits.maximumDepth`.
        case tooDeep
        /// More body parts than `MIMELimits.maximumParts`.
        case tooManyParts
        /// Structure that cannot be used as asked (a multipart/signed without two parts, ...).
        case malformed
    }

    public let kind: Kind
    public let detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    /// Shorthand for `.malformed`.
    public init(_ detail: String) {
        self.init(.malformed, detail)
    }

    public var description: String { detail }
}

/// Bounds against hostile input. Exceeding one is a `MIMEError`, never a crash or runaway memory.
public struct MIMELimits: Sendable, Equatable {
    public var maximumHeaderBytes: Int
    public var maximumHeaderCount: Int
    public var maximumDepth: Int
    public var maximumParts: Int

    public init(
        maximumHeaderBytes: Int = 1 << 20, maximumHeaderCount: Int = 2000, maximumDepth: Int = 32,
        maximumParts: Int = 10_000
    ) {
        self.maximumHeaderBytes = maximumHeaderBytes
        self.maximumHeaderCount = maximumHeaderCount
        self.maximumDepth = maximumDepth
        self.maximumParts = maximumParts
    }

    public static let `default` = MIMELimits()
}
