import ArgumentParser

@main
struct SMIMEMilter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smime-milter",
        abstract: "S/MIME signing and verifying milter for Postfix, with keys on PKCS#11 tokens.",
        version: "0.1.0",
        subcommands: [
            RunCommand.self, CheckConfigCommand.self, TokensCommand.self, SignCommand.self, VerifyCommand.self,
            BenchCommand.self,
        ]
    )
}

/// Exit status for unusable input or configuration (sysexits would say 64-78; the milter's
/// documentation promises 2).
let exitUsage: Int32 = 2

/// A subcommand whose feature is not built yet says so plainly and exits 2.
func notYetBuilt(_ name: String) -> ExitCode {
    printError("smime-milter \(name): not available in this version yet")
    return ExitCode(exitUsage)
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the milter daemon in the foreground.")

    @Option(name: .long, help: "Configuration file.")
    var config: String = "/etc/smime-milter/smime-milter.conf"

    func run() throws { throw notYetBuilt("run") }
}

struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate the configuration, tokens, keys and chains.")

    @Option(name: .long, help: "Configuration file.")
    var config: String = "/etc/smime-milter/smime-milter.conf"

    func run() throws { throw notYetBuilt("check-config") }
}

