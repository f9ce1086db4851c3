public import Foundation
import SMIME

/// What `smime-milter check-config` does: read everything the configuration names, log in to
/// each token, sign a test message with every signing-table key and verify it against the
/// configured trust anchors (which proves that key and certificate belong together and that the
/// chain builds), and warn of certificates that expire soon.
public enum ConfigurationCheck {
    public struct Finding: Sendable, CustomStringConvertible {
        public enum Severity: String, Sendable {
            case ok, warning, error
        }

        public let severity: Severity
        public let message: String

        public init(severity: Severity, message: String) {
            self.severity = severity
            self.message = message
        }

        public var description: String { "\(severity.rawValue): \(message)" }
    }

    /// Certificates that expire within this many days are warned of.
    public static let expiryWarningDays = 30

    /// Every finding, in the order checked. The configuration would run when none is an error.
    ///
    /// With `tokens` false, token keys are not logged in to (the service unit checks before each
    /// start this way: a unit's token problem defers that unit's mail in the running daemon, and
    /// must not keep the daemon, and every other unit's signing, from starting).
    public static func run(configurationFile path: String, tokens: Bool = true, now: Date = Date()) -> [Finding] {
        var findings: [Finding] = []
        func ok(_ text: String) { findings.append(Finding(severity: .ok, message: text)) }
        func warn(_ text: String) { findings.append(Finding(severity: .warning, message: text)) }
        func fail(_ text: String) { findings.append(Finding(severity: .error, message: text)) }

        let configuration: Configuration
        do {
            configuration = try Configuration.load(path: path)
            ok("\(path) parses")
        } catch {
            fail("\(error)")
            return findings
        }

        // What `run` refuses at start, refused here first with the same words.
        if let userID = configuration.userID, let problem = Self.userProblem(userID) {
            fail("\(path): \(problem)")
        }
        if let module = configuration.pkcs11Module, module.hasPrefix("/"),
            !FileManager.default.isReadableFile(atPath: module)
        {
            fail("\(path): PKCS11Module \(module) does not exist or cannot be read; install the token vendor's module or correct the path")
        }

        var table: SigningTable?
        if let tablePath = configuration.signingTable {
            do {
                table = try SigningTable.load(path: tablePath)
                ok("signing table \(tablePath): \(table!.entries.count) entries")
            } catch { fail("\(error)") }
        } else if configuration.signs {
            warn("Mode \(configuration.mode) signs but no SigningTable is set: no mail will be signed; add SigningTable")
        }
        if let authorized = configuration.authorizedSigners {
            do {
                let loaded = try AuthorizedSigners.load(path: authorized)
                ok("authorized signers \(authorized): \(loaded.patterns.count) logins")
            } catch { fail("\(error)") }
        }

        if let unitsPath = configuration.units {
            do {
                let units = try Units.load(path: unitsPath)
                ok("units \(unitsPath): \(units.names.count) units")
            } catch { fail("\(error)") }
        }
        if let metrics = configuration.metricsListen {
            switch ListenCheck.check(metrics) {
            case .free: ok("MetricsListen \(metrics): free to listen on")
            case .servedBySmimeMilter: ok("MetricsListen \(metrics): served by the running smime-milter")
            case .problem(let problem): fail(problem)
            }
        }
        if let database = configuration.eventDatabasePath {
            let directory = (database as NSString).deletingLastPathComponent
            if !FileManager.default.fileExists(atPath: directory) {
                warn("EventDatabase \(database): the directory \(directory) does not exist; no records are kept until it does (mail is not affected)")
            }
        }

        var trust: TrustStore?
        do {
            trust = try SignerLoader.trustStore(configuration)
            ok("trust anchors: \(trust!.anchors.map { $0.commonName ?? $0.subject }.joined(separator: "; "))")
            for anchor in trust!.anchors { expiry(of: anchor, as: "trust anchor", now: now, warn: warn, fail: fail) }
            if configuration.revocationCheck == .crlFetch || configuration.revocationCheck == .ocsp {
                let policy = trust!.fetchPolicy
                let named = policy.named.sorted()
                let listed = policy.listed.map { entry in entry.port.map { "\(entry.host):\($0)" } ?? entry.host }
                ok(
                    "fetching only from: "
                        + (named.isEmpty && listed.isEmpty
                            ? "nowhere (no trust anchor or intermediate names a URL; add hosts to FetchHosts)"
                            : (named.map { "\($0) (named by the CA certificates, port 80)" } + listed.map { "\($0) (FetchHosts)" })
                                .joined(separator: ", ")))
            }
        } catch {
            fail("trust anchors \(configuration.trustAnchors.joined(separator: ", ")): \(error)")
        }

        for entry in table?.entries ?? [] {
            let name = "signing table line \(entry.line) (\(entry.pattern))"
            if !tokens && entry.key.lowercased().hasPrefix("pkcs11:") {
                ok("\(name): token key not checked (--no-tokens)")
                continue
            }
            do {
                let signer = try SignerLoader.signer(for: entry, configuration: configuration)
                let certificate = try Certificate(der: signer.certificate)
                let content = Array("Content-Type: text/plain\r\n\r\nsmime-milter check-config\r\n".utf8)
                let cms = try CMSSigning.sign(
                    content: content, signer: signer, digest: configuration.digestAlgorithm, signingTime: Date())
                if let trust {
                    let verifier = Verifier(
                        trust: trust, signingTimeSkew: TimeInterval(configuration.signingTimeSkew),
                        allowSHA1Signatures: configuration.allowSHA1Signatures)
                    let verdict = verifier.verify(cms: cms, detachedContent: content, from: nil)
                    switch verdict.result {
                    case .pass:
                        ok("\(name): signs as \(certificate.commonName ?? certificate.subject) <\(certificate.emailAddresses.joined(separator: ", "))>, chain verifies")
                    case .temperror:
                        ok("\(name): signs as \(certificate.commonName ?? certificate.subject), chain verifies")
                        warn("\(name): the revocation status of its certificate could not be had now: \(verdict.reason)")
                    case .fail where verdict.reason.hasPrefix("certificate revoked"):
                        fail("\(name): \(verdict.reason); the certificate must be replaced")
                    case .fail:
                        fail("\(name): the key does not match the certificate (\(verdict.reason)); point cert= or the URI's id at the pair")
                    default:
                        fail("\(name): a test signature is \(verdict.result.rawValue): \(verdict.reason); add the issuing CA to chain= or TrustAnchors")
                    }
                }
                if let tokenSigner = signer as? TokenSigner, tokenSigner.key.pinStateAtLogin == .countLow {
                    warn("\(name): token \(tokenSigner.key.tokenLabel) counted wrong PIN tries (CKF_USER_PIN_COUNT_LOW); "
                        + "make sure nothing else tries a wrong PIN on it before it locks")
                }
                expiry(of: certificate, as: name, now: now, warn: warn, fail: fail)
                for intermediate in try signer.chain.map({ try Certificate(der: $0) }) {
                    expiry(of: intermediate, as: "\(name) chain certificate", now: now, warn: warn, fail: fail)
                }
            } catch {
                fail("\(name): \(error)")
            }
        }

        if !FileManager.default.isWritableFile(atPath: configuration.stateDirectory) {
            warn("StateDirectory \(configuration.stateDirectory) is not writable: statistics will not be saved; create it for the service user")
        }
        return findings
    }

    /// Why `UserID` (user[:group]) cannot be switched to, if it cannot.
    public static func userProblem(_ userID: String) -> String? {
        let parts = userID.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        if parts[0].isEmpty || getpwnam(parts[0]) == nil {
            return "UserID \(userID): no user \(parts[0]); create it (systemd-sysusers) or fix UserID"
        }
        if parts.count == 2 && getgrnam(parts[1]) == nil {
            return "UserID \(userID): no group \(parts[1]); create it or fix UserID"
        }
        return nil
    }

    static func expiry(
        of certificate: Certificate, as name: String, now: Date, warn: (String) -> Void, fail: (String) -> Void
    ) {
        let who = certificate.commonName ?? certificate.subject
        let formatter = ISO8601DateFormatter()
        if certificate.notAfter < now {
            fail("\(name): certificate \"\(who)\" expired on \(formatter.string(from: certificate.notAfter)); renew it")
        } else if certificate.notAfter < now.addingTimeInterval(Double(expiryWarningDays) * 86400) {
            let days = Int(certificate.notAfter.timeIntervalSince(now) / 86400)
            warn("\(name): certificate \"\(who)\" expires in \(days) days (\(formatter.string(from: certificate.notAfter))); renew it")
        }
    }
}
