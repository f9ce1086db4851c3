internal import CSQLite
public import Foundation
public import Gateway

/// The records' SQLite file: one row per message (`Event`), in WAL mode so that `report` reads
/// while the daemon writes. Used by one thread at a time (the daemon's writer, or the report).
public final class EventStore {
    public let path: String
    private let db: OpaquePointer

    /// "SMMR" in the file header (`PRAGMA application_id`): tells our files from others.
    static let applicationID: Int32 = 0x534D_4D52

    /// Opens (and, for writing, creates) the file. Throws `RecordsError` naming the file and
    /// the fix when it is not ours, locked or unreadable.
    public init(path: String, readOnly: Bool = false) throws {
        self.path = path
        if readOnly && !FileManager.default.fileExists(atPath: path) {
            throw RecordsError(.unreadable, "\(path): no such records database; check --database or EventDatabase")
        }
        var handle: OpaquePointer?
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let status = sqlite3_open_v2(path, &handle, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard let handle else { throw RecordsError(.sqlite, "\(path): SQLite could not open it (out of memory)") }
        // Owned from here: closed below when anything fails, else by deinit.
        guard status == SQLITE_OK else {
            let message = String(cString: sqlite3_errmsg(handle))
            sqlite3_close_v2(handle)
            throw RecordsError(.unreadable, "\(path): cannot open the records database: \(message); check the path and its permissions")
        }
        db = handle
        do {
            sqlite3_busy_timeout(db, 2000)
            try prepare(readOnly: readOnly)
        } catch {
            sqlite3_close_v2(db)
            throw error
        }
    }

    deinit {
        sqlite3_close_v2(db)
    }

    private func prepare(readOnly: Bool) throws {
        if readOnly { return try check(writer: false) }
        // The daemon's writer and forwarder open the file at once: the check and the migration
        // run under the write lock, so that one migrates and the other finds it done.
        try execute("BEGIN IMMEDIATE")
        do {
            try check(writer: true)
            try execute("COMMIT")
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
        // Lasting, and a no-op once set; a second connection racing the first to set it may find
        // the file busy, and the next open sets it.
        try? execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=NORMAL")
    }

    /// Refuses a file that is not ours or is newer; a writer brings it up to date (a reader
    /// reads what is there: the counts are the same in every version).
    private func check(writer: Bool) throws {
        let id = try integer("PRAGMA application_id")
        let empty = try integer("SELECT count(*) FROM sqlite_schema") == 0
        if id == 0 && writer && empty {
            try execute("PRAGMA application_id = \(Self.applicationID)")
        } else if id != Int(Self.applicationID) {
            throw RecordsError(
                .notOurs, "\(path) is not an smime-milter records database (application id \(id)); name the events.sqlite file of EventDatabase")
        }
        let version = try integer("PRAGMA user_version")
        guard version <= RecordsSchema.version else {
            throw RecordsError(
                .newerSchema,
                "\(path) has records schema \(version), newer than this smime-milter knows (\(RecordsSchema.version)); use the newer smime-milter that wrote it")
        }
        guard writer && version < RecordsSchema.version else { return }
        for migration in RecordsSchema.migrations where migration.version > version {
            try execute(migration.sqlite)
        }
        try execute("PRAGMA user_version = \(RecordsSchema.version)")
    }

    // MARK: writing

    /// Adds the events, and their daily counts, in one transaction. `server` (`ServerName`) is
    /// stored with each; each gets its attempt, one more than the records of its queue ID.
    public func insert(_ events: [Event], server: String) throws {
        try execute("BEGIN IMMEDIATE")
        do {
            let record = try Statement(
                db, path,
                """
                INSERT INTO events (time, day, queue_id, direction, unit, recipient_units, outcome, result, reason,
                                    signer_subject, signer_serial, server, attempt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?12,
                        (SELECT coalesce(max(attempt), 0) + 1 FROM events WHERE queue_id IS ?3))
                """)
            let count = try Statement(
                db, path,
                """
                INSERT INTO daily VALUES (?, ?, ?, ?, ?, ?, ?7)
                ON CONFLICT (day, direction, unit, recipient_units, outcome, detail) DO UPDATE SET count = count + ?7
                """)
            // The batch's counts are summed here first: a few rows to update instead of one per message.
            struct Key: Hashable {
                let day, direction, unit, recipients, outcome, detail: String
            }
            var daily: [Key: Int] = [:]
            for event in events {
                let day = Self.day(event.time)
                let incoming = event.direction == .incoming
                let recipients = Self.json(event.recipientUnits)
                record.bind(1, Int64(event.time.timeIntervalSince1970))
                record.bind(2, day)
                record.bind(3, event.queueID)
                record.bind(4, event.direction.rawValue)
                record.bind(5, event.unit)
                record.bind(6, recipients)
                record.bind(7, event.outcome.rawValue)
                record.bind(8, event.result)
                record.bind(9, event.reason)
                record.bind(10, event.signerSubject)
                record.bind(11, event.signerSerial)
                record.bind(12, server)
                try record.run()
                let key = Key(
                    day: day, direction: event.direction.rawValue, unit: incoming ? "" : event.unit ?? "(none)",
                    recipients: incoming ? recipients : "[]", outcome: event.outcome.rawValue,
                    detail: (event.outcome == .unsigned ? event.reason : incoming ? event.result : nil) ?? "")
                daily[key, default: 0] += 1
            }
            for (key, number) in daily {
                for (index, value) in [key.day, key.direction, key.unit, key.recipients, key.outcome, key.detail].enumerated() {
                    count.bind(Int32(index + 1), value)
                }
                count.bind(7, Int64(number))
                try count.run()
            }
            try execute("COMMIT")
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Deletes records of days before `date`'s, and their counts; returns how many records.
    /// With `keepWaiting`, records not yet forwarded to PostgreSQL stay.
    @discardableResult
    public func prune(before date: Date, keepWaiting: Bool) throws -> Int {
        let day = Self.day(date)
        try execute("BEGIN IMMEDIATE")
        do {
            try execute("DELETE FROM events WHERE day < '\(day)'\(keepWaiting ? " AND forwarded = 1" : "")")
            let removed = Int(sqlite3_changes(db))
            try execute("DELETE FROM daily WHERE day < '\(day)'")
            try execute("COMMIT")
            return removed
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    // MARK: forwarding

    /// One record as it is forwarded to PostgreSQL: the columns of `events`, as text.
    struct Row {
        let id: Int64
        /// server, attempt, time, day, queue_id, direction, unit, recipient_units, outcome,
        /// result, reason, signer_subject, signer_serial: `PostgresStore.columns`' order.
        let values: [String?]
    }

    /// The first `limit` records not yet forwarded, oldest first; a record without a server
    /// (written before schema 2), or every record when `renamed`, gets `server`.
    func waiting(limit: Int, server: String, renamed: Bool) throws -> [Row] {
        let statement = try Statement(
            db, path,
            """
            SELECT id, CASE WHEN ?3 THEN ?1 ELSE coalesce(server, ?1) END, attempt, time, day, queue_id, direction, unit, recipient_units, outcome,
                   result, reason, signer_subject, signer_serial
              FROM events WHERE forwarded = 0 ORDER BY id LIMIT ?2
            """)
        statement.bind(1, server)
        statement.bind(2, Int64(limit))
        statement.bind(3, Int64(renamed ? 1 : 0))
        var rows: [Row] = []
        while try statement.step() {
            rows.append(Row(id: statement.integer(0), values: (1..<14).map { statement.text(Int32($0)) }))
        }
        return rows
    }

    /// Marks the records through `id` forwarded: called only once PostgreSQL has committed them.
    func markForwarded(through id: Int64) throws {
        try execute("UPDATE events SET forwarded = 1 WHERE forwarded = 0 AND id <= \(id)")
    }

    /// How many records wait to be forwarded.
    public func waitingCount() throws -> Int {
        try integer("SELECT count(*) FROM events WHERE forwarded = 0")
    }

    // MARK: reading

    /// Messages counted by period (`YYYY-MM` when `byMonth`, else empty), unit and what became
    /// of them, for days `from` through `to` (`YYYY-MM-DD`, either may be nil).
    public struct Count: Sendable, Equatable {
        public let period: String
        public let direction: Event.Direction
        public let unit: String
        public let outcome: Event.Outcome
        /// The reason of an unsigned message; the verdict's result of a verified one.
        public let detail: String?
        public let count: Int
    }

    public func counts(from: String?, to: String?, byMonth: Bool) throws -> [Count] {
        // The daily counts in range, grouped again by period; mail from outside is then counted
        // for each recipient's unit.
        let sql = """
            SELECT \(byMonth ? "substr(day, 1, 7)" : "''"), direction, unit, recipient_units, outcome, detail, sum(count)
              FROM daily WHERE day >= ?1 AND day <= ?2 GROUP BY 1, 2, 3, 4, 5, 6
            """
        let statement = try Statement(db, path, sql)
        statement.bind(1, from ?? "0000-00-00")
        statement.bind(2, to ?? "9999-99-99")
        var rows: [(String, String, String?, String?, String, String?, Int)] = []
        while try statement.step() {
            rows.append(
                (statement.text(0) ?? "", statement.text(1) ?? "", statement.text(2), statement.text(3), statement.text(4) ?? "",
                 statement.text(5), Int(statement.integer(6))))
        }
        return Self.counts(rows)
    }

    /// The counts of daily rows summed by period (period, direction, unit, recipient units,
    /// outcome, detail, count), whichever database they come from: mail from outside is
    /// counted for each recipient's unit.
    static func counts(_ rows: some Sequence<(String, String, String?, String?, String, String?, Int)>) -> [Count] {
        var counts: [Count] = []
        var decoded: [String: [String]] = [:]
        for (period, directionName, unit, recipients, outcomeName, detailText, count) in rows {
            guard let direction = Event.Direction(rawValue: directionName), let outcome = Event.Outcome(rawValue: outcomeName)
            else { continue }
            let detail = detailText.flatMap { $0.isEmpty ? nil : $0 }
            let units: [String]
            if direction == .incoming {
                let json = recipients ?? "[]"
                if decoded[json] == nil {
                    decoded[json] = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String] ?? []
                }
                units = decoded[json]!
            } else {
                units = [unit ?? "(none)"]
            }
            for unit in units {
                counts.append(Count(period: period, direction: direction, unit: unit, outcome: outcome, detail: detail, count: count))
            }
        }
        return counts
    }

    /// Reads the columns the report counts from every record once: the benchmark's baseline,
    /// what the report would cost without the daily counts.
    public func scanAll() throws {
        _ = try integer("SELECT sum(length(direction) + length(unit) + length(outcome) + length(reason)) FROM events")
    }

    // MARK: helpers

    /// The server's local day, as the report's periods are.
    static func day(_ date: Date) -> String {
        var time = time_t(date.timeIntervalSince1970)
        var parts = tm()
        localtime_r(&time, &parts)
        // Without `String(format:)`, which cost as much as the rest of a record's insert.
        func padded(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.utf8.count)) + digits
        }
        return padded(Int(parts.tm_year) + 1900, 4) + "-" + padded(Int(parts.tm_mon) + 1, 2) + "-"
            + padded(Int(parts.tm_mday), 2)
    }

    /// A JSON array of strings (RFC 8259 escapes), written directly: this runs once per message.
    static func json(_ names: [String]) -> String {
        var out = "["
        for (index, name) in names.enumerated() {
            if index > 0 { out += "," }
            out += "\""
            for scalar in name.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            out += "\""
        }
        return out + "]"
    }

    private func execute(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        let status = sqlite3_exec(db, sql, nil, nil, &error)
        defer { sqlite3_free(error) }
        guard status == SQLITE_OK else {
            throw Self.error(status, error.map { String(cString: $0) } ?? "", path: path)
        }
    }

    private func integer(_ sql: String) throws -> Int {
        let statement = try Statement(db, path, sql)
        guard try statement.step() else { return 0 }
        return Int(statement.integer(0))
    }

    /// One thrown error for SQLite's status codes, naming the file and what to do.
    static func error(_ status: Int32, _ message: String, path: String) -> RecordsError {
        switch status & 0xFF {
        case SQLITE_BUSY, SQLITE_LOCKED:
            return RecordsError(.locked, "\(path) is locked by another process (\(message)); try again, or read a copy of it")
        case SQLITE_NOTADB:
            return RecordsError(.notOurs, "\(path) is not an SQLite database; name the events.sqlite file of EventDatabase")
        case SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_READONLY, SQLITE_AUTH:
            return RecordsError(.unreadable, "\(path): \(message); check the file's permissions and the directory's")
        default:
            return RecordsError(.sqlite, "\(path): \(message)")
        }
    }
}

/// A prepared statement, finalised when released.
final class Statement {
    private let statement: OpaquePointer
    private let path: String
    private let db: OpaquePointer

    init(_ db: OpaquePointer, _ path: String, _ sql: String) throws {
        var prepared: OpaquePointer?
        let status = sqlite3_prepare_v2(db, sql, -1, &prepared, nil)
        guard status == SQLITE_OK, let prepared else {
            throw EventStore.error(status, String(cString: sqlite3_errmsg(db)), path: path)
        }
        statement = prepared
        self.path = path
        self.db = db
    }

    deinit {
        sqlite3_finalize(statement)
    }

    func bind(_ index: Int32, _ value: String?) {
        guard let value else {
            sqlite3_bind_null(statement, index)
            return
        }
        sqlite3_bind_text(statement, index, value, -1, smime_milter_sqlite_transient())
    }

    func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(statement, index, value)
    }

    /// Runs a statement that returns no rows, and resets it for the next values.
    func run() throws {
        defer { sqlite3_reset(statement) }
        let status = sqlite3_step(statement)
        guard status == SQLITE_DONE || status == SQLITE_ROW else {
            throw EventStore.error(status, String(cString: sqlite3_errmsg(db)), path: path)
        }
    }

    /// The next row: true while there is one.
    func step() throws -> Bool {
        let status = sqlite3_step(statement)
        switch status {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw EventStore.error(status, String(cString: sqlite3_errmsg(db)), path: path)
        }
    }

    func text(_ column: Int32) -> String? {
        guard let bytes = sqlite3_column_text(statement, column) else { return nil }
        return String(cString: bytes)
    }

    func integer(_ column: Int32) -> Int64 {
        sqlite3_column_int64(statement, column)
    }
}
