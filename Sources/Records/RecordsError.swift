/// A records database that cannot be used: what is wrong with which file, and what to do.
public struct RecordsError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Equatable {
        /// Not an SQLite file, or SQLite but not ours.
        case notOurs
        /// Another process holds a lock.
        case locked
        /// Missing or unreadable.
        case unreadable
        /// A bad period or option for the report.
        case badPeriod
        case sqlite
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
