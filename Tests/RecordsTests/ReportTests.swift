import Foundation
import Gateway
import Records
import TestSupport
import Testing

/// Records written by the store, read back as the province's report.
@Suite struct ReportTests {
    static let units = try! Units.parse(
        """
        *@stttt.dienbien.gov.vn      Sở Thông tin và Truyền thông
        *@sotuphap.dienbien.gov.vn   Sở Tư pháp
        *@ubnd.muongnhe.dienbien.gov.vn  Ủy ban nhân dân huyện Mường Nhé
        """, file: "units")

    let directory: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("records-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// A local time, as the server's clock gives it.
    static func day(_ text: String) -> Date {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = .current
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        return formatter.date(from: text)!
    }

    static func sent(_ unit: String, _ outcome: Event.Outcome, on day: String, reason: String? = nil, result: String? = nil)
        -> Event
    {
        Event(
            time: Self.day(day), direction: .outgoing, unit: unit, recipientUnits: [], outcome: outcome, result: result,
            reason: reason)
    }

    static func received(_ units: [String], _ result: String, on day: String) -> Event {
        Event(time: Self.day(day), direction: .incoming, unit: nil, recipientUnits: units, outcome: .verified, result: result)
    }

    static let stttt = "Sở Thông tin và Truyền thông"
    static let vietnam = TimeZone(identifier: "Asia/Ho_Chi_Minh")!
    /// 2026-12-01 09:30 in Việt Nam (02:30 UTC).
    static let stamp = Date(timeIntervalSince1970: 1_796_092_200)
    static let tuPhap = "Sở Tư pháp"
    static let muongNhe = "Ủy ban nhân dân huyện Mường Nhé"

    /// November: STTTT signs everything through the gateway, Tư pháp's staff sign half of theirs
    /// themselves, Mường Nhé sends nothing; two messages arrive. One December message and one
    /// deferred one are not counted in November.
    func november() throws -> String {
        let path = directory + "/events.sqlite"
        let store = try EventStore(path: path)
        try store.insert([
            Self.sent(Self.stttt, .signed, on: "2026-11-03 09:00"),
            Self.sent(Self.stttt, .signed, on: "2026-11-30 23:30"),
            Self.sent(Self.tuPhap, .senderSigned, on: "2026-11-04 10:00", result: "pass"),
            Self.sent(Self.tuPhap, .unsigned, on: "2026-11-05 10:00", reason: "no-signer"),
            Self.sent(Self.tuPhap, .deferred, on: "2026-11-05 11:00", reason: "token"),
            Self.sent("dienbien.gov.vn", .unsigned, on: "2026-11-06 08:00", reason: "no-signer"),
            Self.received([Self.stttt, Self.tuPhap], "pass", on: "2026-11-07 08:00"),
            Self.received([Self.stttt], "fail", on: "2026-11-08 08:00"),
            Self.sent(Self.stttt, .unsigned, on: "2026-12-01 00:10", reason: "bounce"),
        ], server: "mx1")
        return path
    }

    func report(_ paths: [String], range: ReportRange, byMonth: Bool = false) throws -> Report {
        let counts = try paths.flatMap { try EventStore(path: $0, readOnly: true).counts(from: range.from, to: range.to, byMonth: byMonth) }
        return Report(counts: counts, range: range, byMonth: byMonth, units: Self.units)
    }

    @Test func csvHasTheExactRowsAndAByteOrderMark() throws {
        let csv = try report([november()], range: .month("2026-11")).rendered(.csv, language: .vi, generatedAt: Self.stamp, timeZone: Self.vietnam)
        #expect(csv.hasPrefix("\u{FEFF}period,unit,outgoing,signed_by_gateway,signed_by_sender,unsigned,signed_share,incoming,incoming_pass,incoming_fail,incoming_other\r\n"))
        let rows = csv.split(separator: "\r\n").dropFirst().map(String.init)
        #expect(rows == [
            "2026-11,Sở Thông tin và Truyền thông,2,2,0,0,1.000,2,1,1,0",
            "2026-11,Sở Tư pháp,2,0,1,1,0.500,1,1,0,0",
            "2026-11,Ủy ban nhân dân huyện Mường Nhé,0,0,0,0,,0,0,0,0",
            "2026-11,dienbien.gov.vn,1,0,0,1,0.000,0,0,0,0",
            "2026-11,total,5,2,1,2,0.600,3,2,1,0",
        ])
    }

    @Test func theIndicatorCountsEveryPlannedUnitAndAUnitWithoutMailDoesNotSign() throws {
        let report = try report([november()], range: .month("2026-11"))
        #expect(report.indicator.signingUnits == 2 && report.indicator.units == 3)
        #expect(report.indicator.met)
        #expect(report.indicatorSentence == "indicator 2026-11: 2 of 3 units sign at least 50% of the mail they send (67%); target 50%: met")
        let strict = Report(counts: [], range: .all, byMonth: false, units: Self.units, unitShare: 0.9, target: 0.5)
        #expect(!strict.indicator.met)
    }

    @Test func byMonthGivesOnePeriodPerMonthAndSeveralServersAdd() throws {
        let first = try november()
        let secondDirectory = directory + "/mx2"
        try FileManager.default.createDirectory(atPath: secondDirectory, withIntermediateDirectories: true)
        let second = secondDirectory + "/events.sqlite"
        try EventStore(path: second).insert([Self.sent(Self.muongNhe, .signed, on: "2026-12-02 09:00")], server: "mx2")
        let report = try report([first, second], range: .days(from: "2026-11-01", to: "2026-12-31"), byMonth: true)
        #expect(report.periods.map(\.label) == ["2026-11", "2026-12"])
        #expect(report.periods[1].units[Self.muongNhe]?.signedByGateway == 1)
        #expect(report.periods[1].units[Self.stttt]?.unsignedReasons == ["bounce": 1])
        #expect(report.overall[Self.muongNhe]?.share == 1)
        let csv = report.rendered(.csv, language: .vi, generatedAt: Self.stamp, timeZone: Self.vietnam)
        #expect(csv.contains("\r\n2026-12,total,2,1,0,1,0.500,0,0,0,0\r\n"))
    }

    @Test func textColumnsLineUpWithVietnameseNames() throws {
        let text = try report([november()], range: .month("2026-11")).rendered(.text, language: .en, generatedAt: Self.stamp, timeZone: Self.vietnam)
        let rows = text.split(separator: "\n").filter { $0.hasPrefix("Sở") || $0.hasPrefix("Ủy") || $0.hasPrefix("total") }
        #expect(rows.count == 4)
        // Right-aligned columns: every row as long as the others, counted in characters.
        #expect(Set(rows.map(\.count)).count == 1, "\(text)")
        #expect(text.contains("unsigned, commonest reasons:\n  Sở Tư pháp: no certificate for the sender's address 1"))
    }

    @Test func htmlIsOnePageInVietnameseWithTheIndicatorFirst() throws {
        let html = try report([november()], range: .month("2026-11")).rendered(.html, language: .vi, generatedAt: Self.stamp, timeZone: Self.vietnam)
        #expect(html.contains("<html lang=\"vi\">"))
        #expect(!html.contains("<script") && !html.contains("<link") && !html.contains("http://") && !html.contains("https://")
            || html.contains("xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(!html.contains("<script") && !html.contains("<link") && !html.contains("@import"))
        let indicator = try #require(html.range(of: "class=\"indicator met\""))
        let firstTable = try #require(html.range(of: "<table>"))
        #expect(indicator.lowerBound < firstTable.lowerBound)
        #expect(html.contains("Ủy ban nhân dân huyện Mường Nhé") && html.contains("Đạt") && html.contains("<svg"))
        let english = try report([november()], range: .month("2026-11")).rendered(.html, language: .en, generatedAt: Self.stamp, timeZone: Self.vietnam)
        #expect(english.contains("<html lang=\"en\">") && english.contains("Share signed"))
    }

    @Test(arguments: ["2026-13", "26-11", "2026-1", "november"])
    func aBadMonthIsRefusedWithTheFormat(text: String) {
        #expect { try ReportRange.month(text) } throws: { "\($0)".contains("write YYYY-MM") }
    }

    @Test func aFileOfAnotherFormatIsNamedAsSuch() throws {
        let text = directory + "/notes.txt"
        try String(repeating: "not a database\n", count: 100).write(toFile: text, atomically: true, encoding: .utf8)
        #expect { try EventStore(path: text, readOnly: true) } throws: { ($0 as? RecordsError)?.code == .notOurs }
        let other = directory + "/other.sqlite"
        let made = try TestPKI.run(["python3", "-c", "import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute('create table t (a)')", other])
        #expect(made.status == 0, "\(made.output)")
        #expect { try EventStore(path: other, readOnly: true) } throws: { error in
            (error as? RecordsError)?.code == .notOurs && "\(error)".contains("not an smime-milter records database")
        }
        #expect { try EventStore(path: directory + "/missing.sqlite", readOnly: true) } throws: { ($0 as? RecordsError)?.code == .unreadable }
    }

    /// Another process holds the file exclusively: a clear "locked" after the busy timeout, not a hang.
    @Test func aDatabaseLockedByAnotherProcessIsNamedAsLocked() throws {
        let path = try november()
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        holder.arguments = [
            "-c",
            "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('PRAGMA locking_mode=EXCLUSIVE'); "
                + "c.execute('BEGIN EXCLUSIVE'); c.execute('INSERT INTO events (time, day, direction, recipient_units, outcome) VALUES (0, \"x\", \"outgoing\", \"[]\", \"signed\")'); "
                + "print('locked', flush=True); time.sleep(30)",
            path,
        ]
        let output = Pipe()
        holder.standardOutput = output
        try holder.run()
        defer {
            kill(holder.processIdentifier, SIGKILL)
            holder.waitUntilExit()
        }
        _ = output.fileHandleForReading.availableData  // "locked"
        let started = Date()
        #expect {
            _ = try EventStore(path: path, readOnly: true).counts(from: nil, to: nil, byMonth: false)
        } throws: { error in (error as? RecordsError)?.code == .locked && "\(error)".contains("locked by another process") }
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func theWriterWritesOffThePathAndAnUnwritableFileLosesNoMail() throws {
        let path = directory + "/writer.sqlite"
        let writer = EventWriter(path: path, server: "test", forwardTo: nil, retentionDays: 400, logger: .init(label: "test"))
        for number in 0..<250 { writer.record(Self.sent(Self.stttt, .signed, on: "2026-11-0\(number % 9 + 1) 10:00")) }
        writer.stop()
        let counts = try EventStore(path: path, readOnly: true).counts(from: nil, to: nil, byMonth: false)
        #expect(counts.reduce(0) { $0 + $1.count } == 250)

        let broken = EventWriter(path: directory + "/no/such/dir/events.sqlite", server: "test", forwardTo: nil, retentionDays: 400, logger: .init(label: "test"))
        // Every record() returns and the writer stops: the mail path never waits on the file
        // (a writer that waited would hang here, and the test run's time limit would say so).
        // How fast recording is, is measured by `make bench`, not here.
        let event = Self.sent(Self.stttt, .signed, on: "2026-11-01 10:00")
        for _ in 0..<1000 { broken.record(event) }
        broken.stop()
    }

    @Test func unitNamesWithQuotesAndBackslashesSurviveTheRecords() throws {
        let odd = "Phòng \"Một cửa\" \\ số 1"
        let path = directory + "/odd.sqlite"
        try EventStore(path: path).insert([Self.received([odd, Self.stttt], "pass", on: "2026-11-07 08:00")], server: "mx1")
        let counts = try EventStore(path: path, readOnly: true).counts(from: nil, to: nil, byMonth: false)
        #expect(Set(counts.map(\.unit)) == [odd, Self.stttt])
    }

    @Test func recordsPastTheRetentionAreDeleted() throws {
        let path = try november()
        let store = try EventStore(path: path)
        #expect(try store.prune(before: Self.day("2026-11-05 00:00"), keepWaiting: false) == 2)
        let left = try store.counts(from: nil, to: nil, byMonth: false)
        #expect(left.reduce(0) { $0 + $1.count } == 8, "\(left)")
    }
}
