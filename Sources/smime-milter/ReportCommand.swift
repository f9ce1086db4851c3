import ArgumentParser
import Foundation
import Gateway
import Records

/// `smime-milter report`: the province's report from one or more records databases.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Which units sign their mail: per unit and period, with the plan's indicator.",
        discussion: """
            Reads the records the daemon keeps (EventDatabase); several --database options merge the files of \
            several mail servers. Units come from the configuration's Units table; a unit with no mail counts as \
            not signing. Without a period option, every record is read. With --mail (or --mail-to), the report is \
            mailed through the local sendmail instead of printed: the text summary and the HTML page as \
            alternatives, the CSV attached, so that it leaves signed by the gateway like any unit's mail.
            """)

    @Option(name: .long, help: "Configuration file (for Units and EventDatabase).")
    var config: String = defaultConfigurationPath

    @Option(name: .long, help: "One month, YYYY-MM.")
    var month: String?

    @Option(name: .long, help: "One year, YYYY.")
    var year: String?

    @Option(name: .long, help: "First day, YYYY-MM-DD (with --to).")
    var from: String?

    @Option(name: .long, help: "Last day, YYYY-MM-DD (with --from).")
    var to: String?

    @Option(name: .long, help: "last-month or last-year, counted from today in the server's time zone (for timers).")
    var period: String?

    @Option(name: .long, help: "'month': one period per month.")
    var by: String?

    @Option(name: .long, help: "text, csv or html.")
    var format: String = "text"

    @Option(name: .long, help: "Language of the HTML page, the mail and the text report's reasons: vi or en.")
    var lang: String = "vi"

    @Option(name: .long, help: "Write here instead of standard output (replaced only when the report is complete).")
    var output: String?

    @Option(
        name: .long,
        help: "Records database, a file or postgresql://USER@HOST:PORT/DB; repeat to merge several mail servers' files (default: EventDatabase).")
    var database: [String] = []

    @Option(name: .long, help: "Only this server's records (ServerName), from a PostgreSQL database.")
    var server: String?

    @Option(name: .long, help: "A unit signs when at least this share of the mail it sends is signed.")
    var unitShare: Double = 0.5

    @Option(name: .long, help: "The plan's target: this share of the units sign.")
    var target: Double = 0.5

    @Flag(name: .long, help: "Mail the report to ReportMailTo from ReportMailFrom (the configuration's).")
    var mail = false

    @Option(name: .long, help: "Mail the report to these addresses, comma-separated (instead of ReportMailTo).")
    var mailTo: String?

    @Option(name: .long, help: "The report mail's From and envelope sender (instead of ReportMailFrom).")
    var mailFrom: String?

    @Option(name: .long, help: "The sendmail program the report mail is handed to.")
    var sendmail: String = "/usr/sbin/sendmail"

    func run() throws {
        do {
            guard let format = ReportFormat(rawValue: format) else { throw usage("--format \(format): use text, csv or html") }
            guard let language = ReportLanguage(rawValue: lang) else { throw usage("--lang \(lang): use vi or en") }
            let (report, configuration) = try makeReport()
            // One moment and the server's zone for everything this run writes: the page, the mail.
            let now = Date()
            let timeZone = TimeZone.current
            if mail || mailTo != nil || mailFrom != nil {
                let mail = try makeMail(report, configuration: configuration, language: language, now: now, timeZone: timeZone)
                if let output {
                    try write(report.rendered(format, language: language, generatedAt: now, timeZone: timeZone), to: output)
                }
                try ReportSender(program: sendmail).send(mail)
                printError("smime-milter report: \(report.label) sent to \(mail.to.joined(separator: ", ")): \(mail.subject)")
                return
            }
            let text = report.rendered(format, language: language, generatedAt: now, timeZone: timeZone)
            if format == .csv { printError(report.indicatorSentence) }
            if let output {
                try write(text, to: output)
            } else {
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        } catch let error as ReportSender.Failure {
            printError("smime-milter report: \(error)")
            throw ExitCode(1)
        } catch let error as RecordsError {
            printError("smime-milter report: \(error)")
            throw ExitCode(exitUsage)
        } catch let error as ConfigurationError {
            printError("smime-milter report: \(error)")
            throw ExitCode(exitUsage)
        }
    }

    func usage(_ message: String) -> RecordsError { RecordsError(.badPeriod, message) }

    func makeReport() throws -> (Report, Configuration) {
        let selected = [month != nil, year != nil, from != nil || to != nil, period != nil].filter { $0 }.count
        guard selected <= 1 else { throw usage("give one of --month, --year, --from/--to or --period") }
        let range: ReportRange
        if let period {
            range = try .previous(period, before: Date(), timeZone: TimeZone.current)
        } else if let month {
            range = try .month(month)
        } else if let year {
            range = try .year(year)
        } else if from != nil || to != nil {
            guard let from, let to else { throw usage("--from and --to go together") }
            range = try .days(from: from, to: to)
        } else {
            range = .all
        }
        guard by == nil || by == "month" else { throw usage("--by \(by!): only --by month") }
        guard (0...1).contains(unitShare), (0...1).contains(target) else {
            throw usage("--unit-share and --target are shares from 0 to 1, e.g. 0.5")
        }
        let configuration = try Configuration.load(path: config)
        let units = try configuration.units.map(Units.load)
        var paths = database
        if paths.isEmpty {
            guard let path = configuration.eventDatabaseURL ?? configuration.eventDatabasePath else {
                throw usage("EventDatabase is none in \(config): name a file with --database")
            }
            paths = [path]
        }
        if server != nil && !paths.contains(where: Configuration.isPostgresURL) {
            throw usage("--server reads one server's records from a PostgreSQL database; a file holds one server's already")
        }
        var counts: [EventStore.Count] = []
        for path in paths {
            if let problem = Configuration.postgresURLProblem(path) { throw usage("--database: \(problem)") }
            if Configuration.isPostgresURL(path) {
                let target = PostgresStore.Target(
                    url: path, passwordFile: configuration.eventDatabasePasswordFile, timeout: PostgresStore.Target.defaultTimeout)
                counts += try PostgresStore(target, migrate: false).counts(
                    from: range.from, to: range.to, byMonth: by == "month", server: server)
            } else {
                counts += try EventStore(path: path, readOnly: true).counts(from: range.from, to: range.to, byMonth: by == "month")
            }
        }
        let report = Report(counts: counts, range: range, byMonth: by == "month", units: units, unitShare: unitShare, target: target)
        return (report, configuration)
    }

    /// The whole message, before anything is handed to sendmail; recipients and sender from the
    /// options, else from ReportMailTo and ReportMailFrom.
    func makeMail(_ report: Report, configuration: Configuration, language: ReportLanguage, now: Date, timeZone: TimeZone)
        throws -> ReportMail
    {
        let recipients = mailTo.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            ?? configuration.reportMailTo
        guard !recipients.isEmpty else {
            throw usage("no recipients: give --mail-to ADDRESS[,ADDRESS...] or set ReportMailTo in \(config)")
        }
        guard let sender = mailFrom ?? configuration.reportMailFrom else {
            throw usage(
                "no sender: give --mail-from ADDRESS or set ReportMailFrom in \(config) (an address the SigningTable signs for)")
        }
        for address in recipients + [sender] where !Configuration.isMailAddress(address) {
            throw usage("'\(address)' is not a mail address; write local@domain, e.g. vanphong.ubnd@dienbien.gov.vn")
        }
        return ReportMail(
            report: report, language: language, from: sender, to: recipients, generatedAt: now, timeZone: timeZone,
            identifier: UUID().uuidString.lowercased())
    }

    /// Written atomically (a temporary file beside it, renamed over it), as the daemon writes its
    /// state files: a failure never leaves half a report over a good file.
    func write(_ text: String, to path: String) throws {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw RecordsError(.unreadable, "cannot write \(path): \(error.localizedDescription); check the directory")
        }
    }
}
