import ArgumentParser
import Foundation
import Gateway
import MIME
import SMIME
import Token

/// Reads a file, or standard input for "-" or nothing.
func readInput(_ path: String?) throws -> [UInt8] {
    if let path, path != "-" {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandFailure("cannot read \(path)")
        }
        return Array(data)
    }
    return Array(FileHandle.standardInput.readDataToEndOfFile())
}

/// A failure that exits 2 with one line naming the problem.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}

/// Runs a command body; any error becomes one line on standard error and exit status 2.
func runReportingFailure(_ name: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        printError("smime-milter \(name): \(error)")
        throw ExitCode(exitUsage)
    }
}

struct SignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Sign a message file exactly as the milter would; the signed message goes to standard output.",
        discussion: "With --config, the signer is chosen from the signing table by --from or the message's From.")

    @Option(name: .long, help: "Configuration file whose SigningTable chooses the signer.")
    var config: String?

    @Option(name: .long, help: "The address to look up in the signing table (default: the message's author).")
    var from: String?

    @Option(name: .long, help: "Key: a pkcs11: URI (with pin-source) or a PEM private key file (instead of --config).")
    var key: String?

    @Option(name: .long, help: "Certificate PEM file (default for a token key: the certificate on the token).")
    var cert: String?

    @Option(name: .long, help: "PEM file of intermediate certificates to include.")
    var chain: String?

    @Option(name: .long, help: "PKCS#11 module when the URI names none (default: p11-kit's registered modules).")
    var module: String?

    @Option(name: .long, help: "Digest: sha-256, sha-384 or sha-512.")
    var digest: String = "sha-256"

    @Option(name: .long, help: "Where refused PINs are recorded (default: the configuration's StateDirectory).")
    var stateDirectory: String?

    @Option(name: .long, help: "Signature scheme: rsa, rsa-pss or ecdsa (default: the key's).")
    var scheme: String?

    @Argument(help: "Message file (default: standard input).")
    var input: String?

    func run() throws {
        try runReportingFailure("sign") {
            guard let requestedDigest = DigestAlgorithm(rawValue: digest) else {
                throw CommandFailure("unknown digest \(digest); use sha-256, sha-384 or sha-512")
            }
            let chosen = try scheme.map { name -> SignatureScheme in
                guard let value = SignatureScheme(rawValue: name) else {
                    throw CommandFailure("unknown scheme \(name); use rsa, rsa-pss or ecdsa")
                }
                return value
            }
            let message = try readInput(input)
            var digestAlgorithm = requestedDigest
            // Without --config, the key table's defaults (SigningTimeSkew); with it, the file's.
            var configuration = Configuration()
            let signer: any Signer
            if let config {
                configuration = try Configuration.load(path: config)
                guard let tablePath = configuration.signingTable else {
                    throw CommandFailure("\(config) has no SigningTable; add one or give --key")
                }
                let table = try SigningTable.load(path: tablePath)
                let author = try from ?? Verification.authorAddress(Message(bytes: message).root.headers)
                guard let author, let entry = table.lookup(author) else {
                    throw CommandFailure("no signing table entry matches \(from ?? "the message's From address"); nothing to sign with")
                }
                digestAlgorithm = configuration.digestAlgorithm
                var guarded = configuration
                if let stateDirectory { guarded.stateDirectory = stateDirectory }
                signer = try SignerLoader.signer(for: entry, configuration: guarded)
            } else if let key {
                signer = try SignerLoader.signer(
                    key: key, certificate: cert, chain: chain, modulePath: module, poolSize: configuration.sessionPoolSize,
                    waitTimeout: Double(configuration.signingTimeout), scheme: chosen,
                    pinGuard: CommandPINGuard.make(config: nil, stateDirectory: stateDirectory),
                    certificateOption: "--cert FILE")
            } else {
                throw CommandFailure("give --config FILE (signing table) or --key")
            }
            let now = Date()
            let skew = TimeInterval(configuration.signingTimeSkew)
            if Signing.signingTime(for: try Message.headerSection(message).headers, now: now, skew: skew) == nil {
                printError(
                    "smime-milter sign: signed without signingTime: the Date header is more than SigningTimeSkew "
                        + "(\(configuration.signingTimeSkew / 60) minutes) from now")
            }
            let signed = try Signing.sign(
                message: message, signer: signer, digest: digestAlgorithm, signingTimeSkew: skew, now: now)
            FileHandle.standardOutput.write(Data(signed))
        }
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a message file and print the headers the milter would add.",
        discussion: """
            Exit status 0 when a verdict was reached, whatever it is; 2 on unusable input or options. \
            With --config, everything that shapes the verdict and the headers (trust anchors, intermediates, CRLs, \
            revocation check, SigningTimeSkew, AllowSHA1Signatures, AuthservID, AddReadableHeader, HeaderLanguage) \
            comes from the configuration file, exactly as the milter reads it.
            """)

    @Option(name: .long, help: "Configuration file (replaces the trust and revocation options).")
    var config: String?

    @Option(name: .long, help: "Trust anchor PEM file or directory (repeatable).")
    var trust: [String] = ["/etc/smime-milter/trust"]

    @Option(name: .long, help: "PEM file of intermediate CAs to use when a message lacks them (repeatable).")
    var intermediates: [String] = []

    @Option(name: .long, help: "Directory of CRLs (PEM or DER).")
    var crlDirectory: String?

    @Option(name: .long, help: "Revocation check: none, crl, crl+fetch or ocsp.")
    var revocation: String = "none"

    @Option(name: .long, help: "Seconds to wait in total for revocation data.")
    var fetchTimeout: Int = 5

    @Option(name: .long, help: "Host or host:port to fetch from besides those the trust anchors name (repeatable; as FetchHosts).")
    var fetchHost: [String] = []

    @Option(name: .long, help: "The authserv-id written into Authentication-Results.")
    var authservID: String = "localhost"

    @Option(name: .long, help: "The From address to match (default: the message's).")
    var from: String?

    @Flag(name: .long, help: "Print the verdict as one JSON object.")
    var json = false

    @Argument(help: "Message file (default: standard input).")
    var input: String?

    func run() throws {
        try runReportingFailure("verify") {
            guard let check = RevocationCheck(rawValue: revocation) else {
                throw CommandFailure("unknown revocation check \(revocation); use none, crl, crl+fetch or ocsp")
            }
            // Everything that shapes the verdict and the headers comes from one Configuration: the
            // file's, built by the daemon's own factory, or the key table's defaults and the options.
            var configuration = Configuration()
            let verifier: Verifier
            if let config {
                configuration = try Configuration.load(path: config)
                verifier = try SignerLoader.verifier(configuration)
            } else {
                configuration.authservID = authservID
                verifier = Verifier(
                    trust: try TrustStore(
                        anchors: trust, intermediates: intermediates, crlDirectory: crlDirectory, revocation: check,
                        fetchTimeout: fetchTimeout, fetchHosts: fetchHost, cacheDirectory: nil,
                        gracePeriod: TimeInterval(configuration.crlGracePeriod)),
                    signingTimeSkew: TimeInterval(configuration.signingTimeSkew),
                    allowSHA1Signatures: configuration.allowSHA1Signatures)
            }
            let message = try Message(bytes: readInput(input))
            let author = from ?? Verification.authorAddress(message.root.headers)
            let verdict = Verification.verify(message: message, from: author, verifier: verifier)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                encoder.dateEncodingStrategy = .iso8601
                print(String(decoding: try encoder.encode(verdict), as: UTF8.self))
            } else {
                for field in VerificationHeaders.fields(verdict, configuration: configuration) {
                    print(HeaderField.fold(name: field.name, value: field.value).replacingOccurrences(of: "\r\n", with: "\n"))
                }
            }
        }
    }
}
