internal import CPostgres
import Foundation

/// One libpq connection, used by one thread (the records forwarder, or a command). Every call
/// has a deadline: libpq is driven non-blocking and the socket waited on with `poll`, so a
/// server that stops answering (stopped, hung, a dropped network) costs the caller at most
/// `timeout` seconds, after which the connection is closed and a `RecordsError` thrown.
final class PostgresConnection {
    private let connection: OpaquePointer
    /// The database as the log may name it: the URL, which never holds a password.
    let name: String
    let timeout: Double

    /// Connects to `url` (a libpq URI, `postgresql://USER@HOST:PORT/DB?sslmode=...`). The
    /// password, when given, is passed to libpq beside the URL, never inside it.
    init(url: String, password: String?, timeout: Double) throws {
        name = url
        self.timeout = timeout
        var keywords = ["dbname", "connect_timeout", "application_name"]
        var values = [url, String(max(2, Int(timeout.rounded(.up)))), "smime-milter"]
        if let password {
            keywords.append("password")
            values.append(password)
        }
        let started: OpaquePointer? = Self.withCStrings(keywords) { keywordPointers in
            Self.withCStrings(values) { valuePointers in
                PQconnectStartParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let started else { throw RecordsError(.postgres, "\(url): libpq could not start a connection (out of memory)") }
        // Owned from here: every stored property is set, so deinit runs, and finishes the
        // connection, also when finishing connecting throws.
        connection = started
        try finishConnecting()
    }

    deinit {
        PQfinish(connection)
    }

    private func finishConnecting() throws {
        guard PQstatus(connection) != CONNECTION_BAD else { throw failure("cannot connect") }
        let deadline = Date(timeIntervalSinceNow: timeout)
        var status = PGRES_POLLING_WRITING
        while true {
            switch status {
            case PGRES_POLLING_OK:
                guard PQsetnonblocking(connection, 1) == 0 else { throw failure("cannot connect") }
                return
            case PGRES_POLLING_FAILED:
                throw failure("cannot connect")
            case PGRES_POLLING_READING:
                try wait(reading: true, until: deadline)
            default:
                try wait(reading: false, until: deadline)
            }
            status = PQconnectPoll(connection)
        }
    }

    // MARK: queries

    /// The rows of one statement (several `;`-separated statements when `parameters` is empty),
    /// as text; NULL is nil. Throws the server's error with its SQLSTATE.
    @discardableResult
    func query(_ sql: String, _ parameters: [String?] = []) throws -> [[String?]] {
        let deadline = Date(timeIntervalSinceNow: timeout)
        let sent: Int32
        if parameters.isEmpty {
            sent = PQsendQuery(connection, sql)
        } else {
            sent = Self.withOptionalCStrings(parameters) { pointers in
                PQsendQueryParams(connection, sql, Int32(parameters.count), nil, pointers, nil, nil, 0)
            }
        }
        guard sent == 1 else { throw failure("cannot send a statement") }
        // Non-blocking: what does not fit in the socket's buffer is flushed as the socket allows.
        while true {
            let flushed = PQflush(connection)
            if flushed == 0 { break }
            guard flushed == 1 else { throw failure("cannot send a statement") }
            try wait(reading: false, until: deadline)
        }
        var rows: [[String?]] = []
        var problem: RecordsError?
        while true {
            while PQisBusy(connection) == 1 {
                try wait(reading: true, until: deadline)
                guard PQconsumeInput(connection) == 1 else { throw failure("lost the connection") }
            }
            guard let result = PQgetResult(connection) else { break }
            defer { PQclear(result) }
            switch PQresultStatus(result) {
            case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                continue
            case PGRES_TUPLES_OK:
                rows = Self.rows(of: result)
            default:
                if problem == nil { problem = Self.error(of: result, database: name) }
            }
        }
        if let problem { throw problem }
        return rows
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try query("BEGIN")
        do {
            let value = try body()
            try query("COMMIT")
            return value
        } catch {
            if PQstatus(connection) == CONNECTION_OK { _ = try? query("ROLLBACK") }
            throw error
        }
    }

    // MARK: helpers

    /// Waits until the socket is ready, or throws when `deadline` passes first.
    private func wait(reading: Bool, until deadline: Date) throws {
        let socket = PQsocket(connection)
        guard socket >= 0 else { throw failure("lost the connection") }
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else {
                // The same words whatever was waited for: the log says it once per outage.
                throw RecordsError(.postgres, "\(name): no answer for \(Int(timeout)) s; the server is down, hung or unreachable")
            }
            var descriptor = pollfd(fd: socket, events: Int16(reading ? POLLIN : POLLOUT), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(left, 1) * 1000) + 1)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw failure("lost the connection") }
        }
    }

    private func failure(_ what: String) -> RecordsError {
        let message = String(cString: PQerrorMessage(connection)).split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return RecordsError(.postgres, "\(name): \(what): \(message.isEmpty ? "no reason given" : message)\(Self.hint(message))")
    }

    /// What to do about libpq's usual connection failures (libpq gives no SQLSTATE for them; the
    /// words are only shown, never decided on).
    static func hint(_ message: String) -> String {
        if message.contains("password authentication failed") || message.contains("no password supplied") {
            return "; check EventDatabasePasswordFile (or PGPASSFILE) against the role's password"
        }
        if message.contains("database") && message.contains("does not exist") {
            return "; create it (createdb -O USER DATABASE) or correct the URL"
        }
        if message.contains("Connection refused") {
            return "; is PostgreSQL running and listening there (listen_addresses, port)?"
        }
        return ""
    }

    static func rows(of result: OpaquePointer) -> [[String?]] {
        let columns = PQnfields(result)
        return (0..<PQntuples(result)).map { row in
            (0..<columns).map { column in
                PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
            }
        }
    }

    /// The server's error: its message and SQLSTATE, with what a postmaster does about the
    /// usual ones.
    static func error(of result: OpaquePointer, database: String) -> RecordsError {
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
        let message = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
            ?? String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
        let hint: String
        switch state {
        case "53100": hint = "; the database server's disk is full, free space there"
        case "42501": hint = "; grant the user the rights on the database (see README, Several mail servers)"
        default: hint = ""
        }
        return RecordsError(.postgres, "\(database): \(message) (SQLSTATE \(state))\(hint)", sqlState: state)
    }

    static func withCStrings<T>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> T) -> T {
        withOptionalCStrings(strings.map { Optional($0) }) { pointers in
            body(pointers + [nil])
        }
    }

    /// C strings for `strings`, valid during `body` (nil stays a null pointer).
    static func withOptionalCStrings<T>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> T) -> T {
        let copies = strings.map { $0.map { strdup($0)! } }
        defer { for copy in copies { free(copy) } }
        return body(copies.map { $0.map { UnsafePointer($0) } })
    }
}
