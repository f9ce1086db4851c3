import ArgumentParser
import Foundation
import Gateway
import Logging
import Milter
import Monitoring
import Records

@main
struct SMIMEMilter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smime-milter",
        abstract: "S/MIME signing and verifying milter for Postfix, with keys on PKCS#11 tokens.",
        version: smimeMilterVersion,
        subcommands: [
            RunCommand.self, CheckConfigCommand.self, TokensCommand.self, SignCommand.self, VerifyCommand.self,
            StatsCommand.self, ReportCommand.self, RecordsCommand.self, CRLCommand.self, BenchCommand.self,
        ]
    )
}

/// Where the configuration is read from when `--config` does not say (the package's conffile).
let defaultConfigurationPath = "/etc/smime-milter/smime-milter.conf"

/// Exit status for unusable input or configuration (sysexits would say 64-78; the milter's
/// documentation promises 2).
let exitUsage: Int32 = 2

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the milter daemon in the foreground.")

    @Option(name: .long, help: "Configuration file.")
    var config: String = defaultConfigurationPath

    @Flag(name: .long, help: "Log to standard error even when the configuration says Syslog yes.")
    var stderr = false

    func run() throws {
        // Before anything can start a thread: the signal thread alone takes HUP, TERM and INT.
        ProcessSetup.blockSignals()
        let configuration: Configuration
        do {
            configuration = try Configuration.load(path: config)
        } catch {
            printError("smime-milter: \(error)")
            throw ExitCode(exitUsage)
        }
        let sink: DaemonLogHandler.Sink = configuration.syslog && !stderr ? .syslog : .standardError
        if sink == .syslog { DaemonLogHandler.openSyslog() }
        LoggingSystem.bootstrap { _ in DaemonLogHandler(sink: sink, logLevel: DaemonLogHandler.level(configuration.logLevel)) }
        let logger = Logger(label: "smime-milter")
        do {
            let monitor = Monitor(version: smimeMilterVersion, logger: logger)
            try MilterService(
                configurationPath: config, configuration: configuration, logger: logger,
                spoolDirectory: configuration.spoolDirectory, monitor: monitor
            ).run()
        } catch {
            logger.critical("\(error)")
            if sink == .syslog { printError("smime-milter: \(error)") }
            throw ExitCode(1)
        }
    }
}

struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate the configuration, tokens, keys and chains.")

    @Option(name: .long, help: "Configuration file.")
    var config: String = defaultConfigurationPath

    @Flag(name: .long, help: "Print only warnings and errors.")
    var quiet = false

    @Flag(name: .long, help: "Do not log in to tokens (the service unit's check before each start).")
    var noTokens = false

    func run() throws {
        var findings = ConfigurationCheck.run(configurationFile: config, tokens: !noTokens)
        // The records' PostgreSQL is reached here, where the Records module is at hand.
        if let configuration = try? Configuration.load(path: config), let target = PostgresStore.Target(configuration),
            let spool = configuration.eventDatabasePath
        {
            findings.append(PostgresStore.check(target, spool: spool))
        }
        for finding in findings where !(quiet && finding.severity == .ok) {
            print(finding)
        }
        let errors = findings.filter { $0.severity == .error }.count
        let warnings = findings.filter { $0.severity == .warning }.count
        print(errors == 0
            ? "configuration would run (\(warnings) warning\(warnings == 1 ? "" : "s"))"
            : "configuration would NOT run: \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
        if errors > 0 { throw ExitCode(1) }
    }
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Print the per-unit message counters the daemon saves.")

    @Option(name: .long, help: "Configuration file (for StateDirectory).")
    var config: String = defaultConfigurationPath

    @Option(name: .long, help: "Statistics file (default: StateDirectory/statistics.json).")
    var file: String?

    @Flag(name: .long, help: "Print the JSON as saved.")
    var json = false

    func run() throws {
        let path = try stateFile(
            "statistics.json", given: file, config: config, command: "stats",
            missing: "the daemon writes it every minute and at exit")
        if json {
            print(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self))
            return
        }
        let snapshot = try Statistics.read(from: path)
        let formatter = ISO8601DateFormatter()
        print("since \(formatter.string(from: snapshot.since)), written \(snapshot.written.map(formatter.string) ?? "-")")
        print(snapshot.units.isEmpty ? "no messages yet" : Statistics.table(snapshot))
    }
}


/// A file under the configuration's StateDirectory (or `given`), which must exist; a clear error
/// and the usage exit status otherwise.
func stateFile(_ name: String, given: String?, config: String, command: String, missing: String) throws -> String {
    let path: String
    if let given {
        path = given
    } else {
        do {
            path = try Configuration.load(path: config).stateDirectory + "/" + name
        } catch {
            printError("smime-milter \(command): \(error)")
            throw ExitCode(exitUsage)
        }
    }
    guard FileManager.default.fileExists(atPath: path) else {
        printError("smime-milter \(command): \(path) does not exist yet; \(missing)")
        throw ExitCode(exitUsage)
    }
    return path
}
