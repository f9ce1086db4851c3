import Foundation
import Gateway
import Records
import TestSupport
import Testing

/// Records in PostgreSQL, with a real PostgreSQL 15 started for each test.
@Suite(.serialized, .enabled(if: TestPostgres.installed, "PostgreSQL 15 is not installed"))
struct PostgresStoreTests {
    let directory: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("records-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func withPostgres(_ body: (TestPostgres) throws -> Void) throws {
        let postgres = try TestPostgres()
        defer { postgres.stop() }
        try body(postgres)
    }

    func target(_ url: String, _ postgres: TestPostgres) throws -> PostgresStore.Target {
        PostgresStore.Target(url: url, passwordFile: try postgres.passwordFile(), timeout: 10)
    }

    /// November's records of two servers, in two files.
    func twoServers() throws -> (String, String) {
        let first = directory + "/mx1.sqlite"
        try EventStore(path: first).insert(
            [
                ReportTests.sent(ReportTests.stttt, .signed, on: "2026-11-03 09:00"),
                ReportTests.sent(ReportTests.tuPhap, .senderSigned, on: "2026-11-04 10:00", result: "pass"),
                ReportTests.sent(ReportTests.tuPhap, .unsigned, on: "2026-11-05 10:00", reason: "no-signer"),
                ReportTests.received([ReportTests.stttt, ReportTests.tuPhap], "pass", on: "2026-11-07 08:00"),
            ], server: "mx1")
        let second = directory + "/mx2.sqlite"
        try EventStore(path: second).insert(
            [
                ReportTests.sent(ReportTests.stttt, .signed, on: "2026-11-03 09:00"),
                ReportTests.sent(ReportTests.muongNhe, .unsigned, on: "2026-12-02 09:00", reason: "bounce"),
                ReportTests.sent(ReportTests.tuPhap, .deferred, on: "2026-11-05 11:00", reason: "token"),
                ReportTests.received([ReportTests.stttt], "fail", on: "2026-11-08 08:00"),
            ], server: "mx2")
        return (first, second)
    }

    func csv(_ counts: [EventStore.Count], _ range: ReportRange, byMonth: Bool) -> String {
        Report(counts: counts, range: range, byMonth: byMonth, units: ReportTests.units).rendered(
            .csv, language: .vi, generatedAt: ReportTests.stamp, timeZone: ReportTests.vietnam)
    }

    @Test func recordsForwardedTwiceArriveOnceAndTheReportEqualsTheMergedFiles() throws {
        try withPostgres { postgres in
            let (first, second) = try twoServers()
            let target = try target(try postgres.database("province"), postgres)
            for (path, server) in [(first, "mx1"), (second, "mx2")] {
                let progress = try RecordsMigration.run(from: path, to: target, server: server, renamed: false, report: { _, _ in })
                #expect(progress == .init(sent: 4, new: 4))
                #expect(try EventStore(path: path).waitingCount() == 0)
            }
            // The marks lost (a crash between PostgreSQL's commit and the file's): sent again, kept once.
            let copy = directory + "/copy.sqlite"
            try FileManager.default.copyItem(atPath: second, toPath: copy)
            _ = try TestPostgres.output("/usr/bin/python3", ["-c", "import sqlite3; c = sqlite3.connect('\(copy)'); c.execute('UPDATE events SET forwarded = 0'); c.commit()"])
            #expect(try RecordsMigration.run(from: copy, to: target, server: "mx2", renamed: false, report: { _, _ in }) == .init(sent: 4, new: 0))
            #expect(try postgres.psql("SELECT count(*), (SELECT sum(count) FROM daily) FROM events", database: "province") == "8|8")

            let database = try PostgresStore(target, migrate: false)
            for (range, byMonth) in [(ReportRange.all, false), (try ReportRange.days(from: "2026-11-01", to: "2026-12-31"), true),
                                     (try ReportRange.month("2026-11"), false)] {
                let files = try [first, second].flatMap {
                    try EventStore(path: $0, readOnly: true).counts(from: range.from, to: range.to, byMonth: byMonth)
                }
                let shared = try database.counts(from: range.from, to: range.to, byMonth: byMonth, server: nil)
                #expect(csv(shared, range, byMonth: byMonth) == csv(files, range, byMonth: byMonth))
            }
            let one = try database.counts(from: nil, to: nil, byMonth: false, server: "mx1")
            let file = try EventStore(path: first, readOnly: true).counts(from: nil, to: nil, byMonth: false)
            #expect(csv(one, .all, byMonth: false) == csv(file, .all, byMonth: false))
            #expect(try database.servers().map(\.name) == ["mx1", "mx2"])
        }
    }

    @Test func aSchemaOneFileIsMigratedAndItsRetriesKeptApart() throws {
        try withPostgres { postgres in
            // A file as schema 1 wrote it: the same queue ID three times in the same second
            // (deferred, then tried again), which only the attempt tells apart.
            let path = directory + "/old.sqlite"
            let schemaOne = """
                CREATE TABLE events (id INTEGER PRIMARY KEY, time INTEGER NOT NULL, day TEXT NOT NULL, queue_id TEXT, direction TEXT NOT NULL,
                    unit TEXT, recipient_units TEXT NOT NULL, outcome TEXT NOT NULL, result TEXT, reason TEXT, signer_subject TEXT, signer_serial TEXT);
                CREATE INDEX events_day ON events (day);
                CREATE TABLE daily (day TEXT NOT NULL, direction TEXT NOT NULL, unit TEXT NOT NULL, recipient_units TEXT NOT NULL,
                    outcome TEXT NOT NULL, detail TEXT NOT NULL, count INTEGER NOT NULL,
                    PRIMARY KEY (day, direction, unit, recipient_units, outcome, detail)) WITHOUT ROWID;
                INSERT INTO events VALUES (1, 1794000000, '2026-11-05', 'Q1', 'outgoing', 'u', '[]', 'deferred', NULL, 'token', NULL, NULL);
                INSERT INTO events VALUES (2, 1794000000, '2026-11-05', 'Q1', 'outgoing', 'u', '[]', 'deferred', NULL, 'token', NULL, NULL);
                INSERT INTO events VALUES (3, 1794000000, '2026-11-05', 'Q1', 'outgoing', 'u', '[]', 'signed', NULL, NULL, NULL, NULL);
                INSERT INTO events VALUES (4, 1794000000, '2026-11-05', 'Q2', 'outgoing', 'u', '[]', 'signed', NULL, NULL, NULL, NULL);
                INSERT INTO daily VALUES ('2026-11-05', 'outgoing', 'u', '[]', 'signed', '', 2);
                PRAGMA application_id = \(0x534D_4D52);
                PRAGMA user_version = 1;
                """
            _ = try TestPostgres.output(
                "/usr/bin/python3", ["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()", path, schemaOne])
            let target = try target(try postgres.database("old"), postgres)
            let progress = try RecordsMigration.run(from: path, to: target, server: "old-mx", renamed: false, report: { _, _ in })
            #expect(progress == .init(sent: 4, new: 4))
            #expect(try postgres.psql("SELECT string_agg(queue_id || ':' || attempt, ' ' ORDER BY id) FROM events", database: "old")
                == "Q1:1 Q1:2 Q1:3 Q2:1")
            #expect(try postgres.psql("SELECT DISTINCT server FROM events", database: "old") == "old-mx")
            // A new record of Q1 in the migrated file is its fourth attempt.
            try EventStore(path: path).insert([Event(time: Date(), queueID: "Q1", direction: .outgoing, unit: "u", recipientUnits: [], outcome: .signed)], server: "mx")
            #expect(try RecordsMigration.run(from: path, to: target, server: "old-mx", renamed: false, report: { _, _ in }) == .init(sent: 1, new: 1))
            #expect(try postgres.psql("SELECT max(attempt) FROM events WHERE queue_id = 'Q1'", database: "old") == "4")
        }
    }

    @Test func aNewerSchemaIsRefusedByNameAndVersion() throws {
        try withPostgres { postgres in
            let url = try postgres.database("newer")
            try postgres.psql("CREATE TABLE smime_milter_schema (version integer NOT NULL); INSERT INTO smime_milter_schema VALUES (7); ALTER TABLE smime_milter_schema OWNER TO smime", database: "newer")
            #expect {
                _ = try PostgresStore(try target(url, postgres), migrate: true)
            } throws: { error in
                (error as? RecordsError)?.code == .newerSchema && "\(error)".contains("has records schema 7, newer than this smime-milter knows")
            }
        }
        let path = directory + "/newer.sqlite"
        _ = try EventStore(path: path)
        _ = try TestPostgres.output("/usr/bin/python3", ["-c", "import sqlite3; c = sqlite3.connect('\(path)'); c.execute('PRAGMA user_version = 9'); c.commit()"])
        #expect { _ = try EventStore(path: path) } throws: { ($0 as? RecordsError)?.code == .newerSchema }
    }

    @Test func theWriterForwardsWhatItWritesAndKeepsItWhenTheDatabaseIsAway() throws {
        try withPostgres { postgres in
            let url = try postgres.database("writer")
            let path = directory + "/events.sqlite"
            let writer = EventWriter(
                path: path, server: "mx1", forwardTo: try target(url, postgres), retentionDays: 400, logger: .init(label: "test"))
            for number in 0..<300 {
                writer.record(Event(time: Date(), queueID: "W\(number)", direction: .outgoing, unit: "u", recipientUnits: [], outcome: .signed))
            }
            let deadline = Date(timeIntervalSinceNow: 20)
            while (try? postgres.psql("SELECT count(*) FROM events", database: "writer")) != "300" && Date() < deadline {
                usleep(200_000)
            }
            writer.stop()
            #expect(try postgres.psql("SELECT count(*), count(DISTINCT queue_id), (SELECT sum(count) FROM daily) FROM events", database: "writer") == "300|300|300")
            #expect(try EventStore(path: path).waitingCount() == 0)
        }
        // Nobody listening: the records stay in the file.
        let path = directory + "/away.sqlite"
        let away = PostgresStore.Target(url: "postgresql://smime@127.0.0.1:\(TestPostgres.freePort())/none", passwordFile: nil, timeout: 2)
        let writer = EventWriter(path: path, server: "mx1", forwardTo: away, retentionDays: 400, logger: .init(label: "test"))
        writer.record(Event(time: Date(), queueID: "A1", direction: .outgoing, unit: "u", recipientUnits: [], outcome: .signed))
        writer.stop()
        #expect(try EventStore(path: path).waitingCount() == 1)
    }

    @Test func aServerThatNeverAnswersCostsTheTimeoutAndNoMore() throws {
        let port = TestPostgres.freePort()
        let silent = try SilentServer(port: UInt16(port))
        defer { silent.close() }
        let target = PostgresStore.Target(url: "postgresql://smime@127.0.0.1:\(port)/records", passwordFile: nil, timeout: 2)
        let started = Date()
        #expect {
            _ = try PostgresStore(target, migrate: true)
        } throws: { error in
            (error as? RecordsError)?.code == .postgres && "\(error)".contains("no answer for 2 s")
        }
        #expect(Date().timeIntervalSince(started) < 4)
    }

    @Test func thePasswordFileIsReadAsPINFilesAre() throws {
        let path = directory + "/password"
        try Data("secret\n".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        let target = PostgresStore.Target(url: "postgresql://smime@127.0.0.1:1/records", passwordFile: path, timeout: 2)
        #expect {
            _ = try PostgresStore(target, migrate: false)
        } throws: { error in
            "\(error)" == "EventDatabasePasswordFile \(path): the file is readable by group or others (mode 0644); chmod 0600 \(path)"
        }
    }

    @Test func aPasswordInTheURLIsRefused() throws {
        #expect(Configuration.postgresURLProblem("postgresql://smime:secret@db.example/records") != nil)
        #expect(Configuration.postgresURLProblem("postgresql://smime@db.example/records?password=secret") != nil)
        #expect(Configuration.postgresURLProblem("postgresql://smime@db.example:5432/records?sslmode=verify-full") == nil)
        #expect(throws: ConfigurationError.self) {
            try Configuration.parse("TrustAnchors /x\nEventDatabase postgresql://smime:secret@db.example/records\n", file: "c")
        }
        let configuration = try Configuration.parse(
            "TrustAnchors /x\nStateDirectory /var/lib/x\nEventDatabase postgresql://smime@db.example/records\n", file: "c")
        #expect(configuration.eventDatabaseURL == "postgresql://smime@db.example/records")
        #expect(configuration.eventDatabasePath == "/var/lib/x/events.sqlite", "the spool")
    }
}
