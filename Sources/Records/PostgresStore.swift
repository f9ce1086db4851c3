public import Foundation
public import Gateway

/// The records of several mail servers in one PostgreSQL database: the same tables as the
/// local `events.sqlite` (`RecordsSchema`), each record and daily count with its server.
/// Records arrive only by forwarding from a server's local file (`forward`), and a record
/// forwarded twice is stored once: its key (server, queue ID, attempt, time) is unique and
/// the insert skips what is there, counting only what it inserted.
public final class PostgresStore {
    let connection: PostgresConnection

    /// Where the daemon and the commands find PostgreSQL: the URL of `EventDatabase`, and the
    /// password file (`EventDatabasePasswordFile`) or none, for libpq's own `PGPASSFILE`.
    public struct Target: Sendable, Equatable {
        public let url: String
        public let passwordFile: String?
        /// Seconds any connect or statement may take before the server counts as not answering.
        public let timeout: Double

        public init(url: String, passwordFile: String?, timeout: Double) {
            self.url = url
            self.passwordFile = passwordFile
            self.timeout = timeout
        }

        /// The target of a configuration whose `EventDatabase` is PostgreSQL.
        public init?(_ configuration: Configuration) {
            guard let url = configuration.eventDatabaseURL else { return nil }
            self.init(url: url, passwordFile: configuration.eventDatabasePasswordFile, timeout: Self.defaultTimeout)
        }

        public static let defaultTimeout: Double = 10
    }

    /// Connects; a writer (`migrate`) creates or migrates the tables, a reader only checks
    /// that it knows their version.
    public init(_ target: Target, migrate: Bool) throws {
        let password = try target.passwordFile.map(Self.readPassword)
        connection = try PostgresConnection(url: target.url, password: password, timeout: target.timeout)
        if migrate {
            try self.migrate()
        } else {
            let version = try schemaVersion()
            guard version > 0 else {
                throw RecordsError(
                    .empty, "\(connection.name) has no smime-milter records yet; a daemon with this EventDatabase creates them")
            }
        }
    }

    // MARK: schema

    /// The version of the tables, 0 when there are none. Throws when it is newer than this
    /// smime-milter knows.
    @discardableResult
    public func schemaVersion() throws -> Int {
        let exists = try connection.query("SELECT to_regclass('smime_milter_schema') IS NOT NULL")
        guard exists.first?.first == "t" else { return 0 }
        let version = Self.number(try connection.query("SELECT max(version) FROM smime_milter_schema"))
        guard version <= RecordsSchema.version else {
            throw RecordsError(
                .newerSchema,
                "\(connection.name) has records schema \(version), newer than this smime-milter knows (\(RecordsSchema.version)); "
                    + "upgrade smime-milter on this server")
        }
        return version
    }

    private func migrate() throws {
        if try schemaVersion() == RecordsSchema.version { return }
        try connection.transaction {
            // Two daemons starting at once: the second waits here, then finds the work done.
            try connection.query("SELECT pg_advisory_xact_lock(\(RecordsSchema.lockKey))")
            try connection.query("CREATE TABLE IF NOT EXISTS smime_milter_schema (version integer NOT NULL)")
            let version = try schemaVersion()
            for migration in RecordsSchema.migrations where migration.version > version {
                try connection.query(migration.postgres)
            }
            try connection.query("DELETE FROM smime_milter_schema")
            try connection.query("INSERT INTO smime_milter_schema VALUES (\(RecordsSchema.version))")
        }
    }

    // MARK: writing

    /// The columns a forwarded row fills, in `EventStore.Row`'s order.
    static let columns = [
        "server", "attempt", "time", "day", "queue_id", "direction", "unit", "recipient_units", "outcome", "result",
        "reason", "signer_subject", "signer_serial",
    ]

    /// Stores the rows and counts those not already there, in one statement (one transaction):
    /// the daily counts always match the records. Returns how many were new.
    @discardableResult
    func forward(_ rows: [EventStore.Row]) throws -> Int {
        guard !rows.isEmpty else { return 0 }
        var parameters: [String?] = []
        parameters.reserveCapacity(rows.count * Self.columns.count)
        var tuples: [String] = []
        for row in rows {
            let base = parameters.count
            parameters += row.values
            // attempt and time are numbers; the rest text.
            tuples.append(
                "(" + (1...Self.columns.count).map { index in
                    let cast = index == 2 ? "::integer" : index == 3 ? "::bigint" : ""
                    return "$\(base + index)\(cast)"
                }.joined(separator: ",") + ")")
        }
        let sql = """
            WITH new AS (
                INSERT INTO events (\(Self.columns.joined(separator: ", ")))
                VALUES \(tuples.joined(separator: ","))
                ON CONFLICT DO NOTHING
                RETURNING server, day, direction, unit, recipient_units, outcome, result, reason),
            counted AS (
                INSERT INTO daily (server, day, direction, unit, recipient_units, outcome, detail, count)
                SELECT server, day, direction,
                       CASE WHEN direction = 'incoming' THEN '' ELSE coalesce(unit, '(none)') END,
                       CASE WHEN direction = 'incoming' THEN recipient_units ELSE '[]' END,
                       outcome,
                       coalesce(CASE WHEN outcome = 'unsigned' THEN reason WHEN direction = 'incoming' THEN result END, ''),
                       count(*)
                  FROM new GROUP BY 1, 2, 3, 4, 5, 6, 7
                ON CONFLICT (server, day, direction, unit, recipient_units, outcome, detail)
                DO UPDATE SET count = daily.count + excluded.count)
            SELECT count(*) FROM new
            """
        return Self.number(try connection.query(sql, parameters))
    }

    /// Deletes `server`'s records of days before `date`'s, and their counts.
    @discardableResult
    public func prune(server: String, before date: Date) throws -> Int {
        let day = EventStore.day(date)
        return try connection.transaction {
            let removed = try connection.query(
                "WITH gone AS (DELETE FROM events WHERE server = $1 AND day < $2 RETURNING 1) SELECT count(*) FROM gone",
                [server, day])
            try connection.query("DELETE FROM daily WHERE server = $1 AND day < $2", [server, day])
            return Self.number(removed)
        }
    }

    /// The number in the first column of the first row, 0 for none.
    static func number(_ rows: [[String?]]) -> Int {
        Int(rows.first?.first.flatMap { $0 } ?? "0") ?? 0
    }

    // MARK: reading

    /// The daily counts in range, summed by period in the database: what `EventStore.counts`
    /// returns for one file, here for every server or for `server` alone.
    public func counts(from: String?, to: String?, byMonth: Bool, server: String?) throws -> [EventStore.Count] {
        let rows = try connection.query(
            """
            SELECT \(byMonth ? "substr(day, 1, 7)" : "''"), direction, unit, recipient_units, outcome, detail, sum(count)
              FROM daily WHERE day >= $1 AND day <= $2 AND ($3::text IS NULL OR server = $3)
             GROUP BY 1, 2, 3, 4, 5, 6
            """,
            [from ?? "0000-00-00", to ?? "9999-99-99", server])
        return EventStore.counts(
            rows.lazy.map { ($0[0] ?? "", $0[1] ?? "", $0[2], $0[3], $0[4] ?? "", $0[5], Int($0[6] ?? "0") ?? 0) })
    }

    /// The servers that have records, with how many each.
    public func servers() throws -> [(name: String, records: Int)] {
        try connection.query("SELECT server, count(*) FROM events GROUP BY 1 ORDER BY 1").map {
            ($0[0] ?? "", Int($0[1] ?? "0") ?? 0)
        }
    }

    // MARK: check-config

    /// What `check-config` says of a PostgreSQL `EventDatabase`: connected, with which schema and
    /// records, or what is wrong. A warning, not an error: records wait in `spool` meanwhile,
    /// and the daemon must start (mail does not wait for the database).
    public static func check(_ target: Target, spool: String) -> ConfigurationCheck.Finding {
        do {
            let store = try PostgresStore(target, migrate: false)
            let servers = try store.servers()
            let records = servers.reduce(0) { $0 + $1.records }
            return ConfigurationCheck.Finding(
                severity: .ok,
                message: "EventDatabase \(target.url): connected, records schema \(RecordsSchema.version), \(records) records from "
                    + "\(servers.count) server\(servers.count == 1 ? "" : "s")")
        } catch let error as RecordsError where error.code == .empty {
            return ConfigurationCheck.Finding(
                severity: .ok,
                message: "EventDatabase \(target.url): connected; no tables yet, the daemon creates them (its user needs CREATE on the database)")
        } catch {
            return ConfigurationCheck.Finding(
                severity: .warning,
                message: "EventDatabase: \(error); until it is fixed records are kept in \(spool) and forwarded later (mail is not affected)")
        }
    }

    // MARK: password

    /// Reads the password file as PIN files are read: a regular file that group and others
    /// cannot read, owned by the user that reads it. The password is never logged.
    static func readPassword(_ path: String) throws -> String {
        func refuse(_ detail: String) -> RecordsError {
            RecordsError(.unreadable, "EventDatabasePasswordFile \(path): \(detail)")
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw refuse("\(String(cString: strerror(errno))); create it with the password, mode 0600, owned by the daemon's user")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw refuse("it is not a regular file; name the file holding the password") }
        let mode = info.st_mode & 0o777
        if mode & 0o077 != 0 {
            throw refuse(String(format: "the file is readable by group or others (mode %04o); chmod 0600 %@", mode, path))
        }
        let euid = geteuid()
        if euid != 0 && info.st_uid != euid {
            throw refuse("the file belongs to uid \(info.st_uid), not to uid \(euid) that runs smime-milter; chown it")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw refuse("\(String(cString: strerror(errno))); make it readable by the daemon's user")
        }
        var password = String(decoding: data, as: UTF8.self)
        while let last = password.last, last.isNewline { password.removeLast() }
        guard !password.isEmpty else { throw refuse("the file is empty; write the database user's password into it") }
        return password
    }
}
