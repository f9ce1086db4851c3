/// Errors of the `MIME` module.
public struct MIMEError: Error, CustomStringConvertible, Sendable {
    public let detail: String

    public init(_ detail: String) {
        self.detail = detail
    }

    public var description: String { detail }
}
