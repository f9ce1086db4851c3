/// A records database that cannot be used: what is wrong with which file, and what to do.
public struct RecordsError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Equatable {
        /// Not an SQLite file, or SQLite but not ours.
        case notOurs
        /// Written by a newer smime-milter: a schema version this one does not know.
        case newerSchema
        /// A PostgreSQL database without smime-milter's tables yet.
        case empty
        /// Another process holds a lock.
        case locked
        /// Missing or unreadable.
        case unreadable
        /// A bad period or option for the report.
        case badPeriod
        case sqlite
        /// PostgreSQL refused, failed or did not answer in time.
        case postgres
    }

    public let code: Code
    public let message: String
    /// PostgreSQL's SQLSTATE (`28P01`, `3D000`, `53100`, ...) when the server gave one.
    public let sqlState: String?

    public init(_ code: Code, _ message: String, sqlState: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
    }

    public var description: String { message }
}
