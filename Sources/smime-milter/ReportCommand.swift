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
            not signing. Without a period option, every record is read.
            """)

    @Option(name: .long, help: "Configuration file (for Units and EventDatabase).")
    var config: String = "/etc/smime-milter/smime-milter.conf"

    @Option(name: .long, help: "One month, YYYY-MM.")
    var month: String?

    @Option(name: .long, help: "One year, YYYY.")
    var year: String?

    @Option(name: .long, help: "First day, YYYY-MM-DD (with --to).")
    var from: String?

    @Option(name: .long, help: "Last day, YYYY-MM-DD (with --from).")
    var to: String?

    @Option(name: .long, help: "'month': one period per month.")
    var by: String?

    @Option(name: .long, help: "text, csv or html.")
    var format: String = "text"

    @Option(name: .long, help: "HTML language: vi or en.")
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

    func run() throws {
        do {
            guard let format = ReportFormat(rawValue: format) else { throw usage("--format \(format): use text, csv or html") }
            guard let language = ReportLanguage(rawValue: lang) else { throw usage("--lang \(lang): use vi or en") }
            let report = try makeReport()
            let text = report.rendered(format, language: language)
            if format == .csv { printError(report.indicatorSentence) }
            if let output {
                try write(text, to: output)
            } else {
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        } catch let error as RecordsError {
            printError("smime-milter report: \(error)")
            throw ExitCode(exitUsage)
        } catch let error as ConfigurationError {
            printError("smime-milter report: \(error)")
            throw ExitCode(exitUsage)
        }
    }

    func usage(_ message: String) -> RecordsError { RecordsError(.badPeriod, message) }

    func makeReport() throws -> Report {
        let selected = [month != nil, year != nil, from != nil || to != nil].filter { $0 }.count
        guard selected <= 1 else { throw usage("give one of --month, --year or --from/--to") }
        let range: ReportRange
        if let month {
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
        return Report(counts: counts, range: range, byMonth: by == "month", units: units, unitShare: unitShare, target: target)
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
