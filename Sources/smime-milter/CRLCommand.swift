import ArgumentParser
import Foundation
import Gateway
import SMIME

/// What the revocation cache holds, what failed and when it is tried again; refresh on demand.
struct CRLCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crl",
        abstract: "Show the fetched CRLs (from where, until when, what failed) or fetch them again now.",
        discussion: """
            The daemon keeps the CRLs it fetched under StateDirectory/crl-cache. --refresh fetches \
            each of them again now, checked against the CA certificate kept with it; the daemon \
            takes the new files within a minute, or at once on systemctl reload smime-milter.
            """)

    @Option(name: .long, help: "Configuration file (for StateDirectory).")
    var config: String = defaultConfigurationPath

    @Option(name: .long, help: "The cache directory itself, instead of the configuration's.")
    var directory: String?

    @Flag(name: .long, help: "Fetch every cached CRL again now.")
    var refresh = false

    func run() throws {
        let cache = try stateFile(
            "crl-cache", given: directory, config: config, command: "crl",
            missing: "the daemon creates it with the first CRL it fetches")
        if refresh {
            // The fetch rules are the configuration's: its trust anchors and FetchHosts.
            let configuration: Configuration
            let trust: TrustStore
            do {
                configuration = try Configuration.load(path: config)
                trust = try SignerLoader.trustStore(configuration)
            } catch {
                printError("smime-milter crl --refresh: \(error) (the fetch rules come from the configuration's TrustAnchors and FetchHosts)")
                throw ExitCode(exitUsage)
            }
            let outcomes = CRLCache.refresh(directory: cache, trust: trust, timeout: configuration.crlFetchTimeout * 3)
            for (url, outcome) in outcomes { print("\(url): \(outcome)") }
            if outcomes.isEmpty { print("nothing cached to refresh in \(cache)") }
            if outcomes.contains(where: { $0.outcome.hasPrefix("failed") }) { throw ExitCode(1) }
            return
        }
        print(Self.render(CRLCache.entries(directory: cache), directory: cache), terminator: "")
    }

    static func render(_ entries: [CRLCache.Entry], directory: String, now: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        var out = "CRL cache \(directory): \(entries.count) address\(entries.count == 1 ? "" : "es")\n"
        for entry in entries {
            out += entry.url + "\n"
            if let issuer = entry.issuer { out += "  issuer:      \(issuer)\n" }
            if let fetched = entry.fetchedAt {
                out += "  fetched:     \(formatter.string(from: fetched)), \(entry.bytes) bytes, \(entry.revokedCount) revoked\n"
            }
            if let next = entry.nextUpdate {
                let state = next > now ? "current" : "STALE (grace period, then temperror)"
                out += "  next update: \(formatter.string(from: next)) (\(state))\n"
            } else if entry.fetchedAt == nil {
                out += "  never fetched\n"
            }
            if let error = entry.lastError {
                out += "  failing:     \(entry.failures) time(s) in a row: \(error)\n"
                if let retry = entry.retryAt { out += "  next try:    \(formatter.string(from: retry))\n" }
            }
        }
        return out
    }
}
