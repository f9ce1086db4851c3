import ArgumentParser
import Foundation
import Gateway
import Records

/// `smime-milter records`: what is done to the records databases themselves.
struct RecordsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "records", abstract: "Move a server's records into PostgreSQL.",
        subcommands: [RecordsMigrateCommand.self])
}

/// `smime-milter records migrate --from FILE --to postgresql://...`: a server's history, from its
/// `events.sqlite` into the shared PostgreSQL database. Each record is marked in the file once
/// PostgreSQL has committed it, so an interrupted migration goes on where it stopped; a record
/// sent twice is stored once (the same forwarding the daemon does).
struct RecordsMigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Copy a server's records file into a PostgreSQL database (resumable, idempotent).")

    @Option(name: .long, help: "Configuration file (for ServerName and EventDatabasePasswordFile).")
    var config: String = defaultConfigurationPath

    @Option(name: .long, help: "The server's records file (events.sqlite); it is written to: records are marked as moved.")
    var from: String

    @Option(name: .long, help: "postgresql://USER@HOST:PORT/DB?sslmode=... (default: EventDatabase of the configuration).")
    var to: String?

    @Option(
        name: .long,
        help: "Store the records as this server's (default: the server each was written by; ServerName for records older than that).")
    var server: String?

    @Option(name: .long, help: "File holding the PostgreSQL password (default: EventDatabasePasswordFile, else libpq's PGPASSFILE).")
    var passwordFile: String?

    func run() throws {
        do {
            // The configuration is optional here: the file may come from another server.
            let configuration = FileManager.default.fileExists(atPath: config) ? try Configuration.load(path: config) : nil
            guard let url = to ?? configuration?.eventDatabaseURL else {
                throw RecordsError(.badPeriod, "name the PostgreSQL database with --to postgresql://USER@HOST:PORT/DB")
            }
            guard Configuration.isPostgresURL(url) else {
                throw RecordsError(.badPeriod, "--to \(url): not a postgresql:// URL")
            }
            if let problem = Configuration.postgresURLProblem(url) { throw RecordsError(.badPeriod, "--to: \(problem)") }
            guard let server = server ?? configuration?.serverName else {
                throw RecordsError(.badPeriod, "name the server the records are from with --server (its ServerName)")
            }
            let target = PostgresStore.Target(
                url: url, passwordFile: passwordFile ?? configuration?.eventDatabasePasswordFile,
                timeout: PostgresStore.Target.defaultTimeout)
            let progress = try RecordsMigration.run(from: from, to: target, server: server, renamed: self.server != nil) {
                sent, new in
                printError("\(sent) records sent, \(new) new")
            }
            print("\(from): \(progress.sent) records sent to \(url), \(progress.new) new, "
                + "\(progress.sent - progress.new) already there")
        } catch let error as RecordsError {
            printError("smime-milter records migrate: \(error)")
            throw ExitCode(error.code == .badPeriod ? exitUsage : 1)
        } catch let error as ConfigurationError {
            printError("smime-milter records migrate: \(error)")
            throw ExitCode(exitUsage)
        }
    }
}
