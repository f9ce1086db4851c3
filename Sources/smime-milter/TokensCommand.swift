import ArgumentParser
import Foundation
import Gateway
import SMIME
import Token

struct TokensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens",
        abstract: "List PKCS#11 modules, tokens, keys and certificates, with the URI to configure.",
        discussion: """
            Without --module, every module registered with p11-kit is listed. Private keys are \
            usually visible only after login: give --pin-source LABEL=file:/PATH for that token. \
            That login keeps the daemon's rules: no login at a token's final PIN try or when it \
            is locked, and a PIN the token refused before is not presented again (--config or \
            --state-directory says where those refusals are kept).
            """)

    @Option(name: .long, help: "PKCS#11 module to load instead of the p11-kit registered ones.")
    var module: String?

    @Option(name: .long, help: "Take PKCS11Module and StateDirectory from this configuration file.")
    var config: String?

    @Option(name: .long, help: "Where refused PINs are recorded (default: the configuration's, else /var/lib/smime-milter).")
    var stateDirectory: String?

    @Option(name: .long, help: "LABEL=SOURCE: log in to token LABEL with the PIN from SOURCE (file:/PATH or cred:NAME).")
    var pinSource: [String] = []

    func run() throws {
        var pins: [String: PINSource] = [:]
        for entry in pinSource {
            guard let equals = entry.firstIndex(of: "=") else {
                throw ValidationError("--pin-source wants LABEL=file:/PATH, got '\(entry)'")
            }
            let label = String(entry[..<equals])
            let uri = PKCS11URI(token: label, pinSource: String(entry[entry.index(after: equals)...]))
            pins[label] = try PINSource(uri: uri)
        }
        let modules: [TokenInventory.Module]
        do {
            var configuration = Configuration()
            if let config { configuration = try Configuration.load(path: config) }
            if let stateDirectory { configuration.stateDirectory = stateDirectory }
            modules = try TokenInventory.list(
                modulePath: module ?? configuration.pkcs11Module, pins: pins,
                pinGuard: SignerLoader.pinGuard(configuration))
        } catch {
            printError("smime-milter tokens: \(error)")
            throw ExitCode(exitUsage)
        }
        print(Self.render(modules, pins: pins), terminator: "")
    }

    static func render(_ modules: [TokenInventory.Module], pins: [String: PINSource], now: Date = Date()) -> String {
        var out = ""
        for module in modules {
            if module.name == "p11-kit-trust" {
                out += "module p11-kit-trust: the system's trust anchors, no signing keys (not listed)\n"
                continue
            }
            out += "module \(module.name)" + (module.path.map { " (\($0))" } ?? "") + "\n"
            if let error = module.error { out += "  error: \(error)\n" }
            if module.slots.isEmpty && module.error == nil { out += "  no token present\n" }
            for slot in module.slots {
                let details = [slot.manufacturer, slot.model, slot.serial.map { "serial \($0)" }].compactMap { $0 }
                out += "  slot \(slot.id): token \"\(slot.tokenLabel)\" (\(details.joined(separator: ", ")))"
                out += slot.loginRequired ? ", login required\n" : "\n"
                out += "    user PIN: \(slot.pinState.rawValue)\n"
                out += "    token URI: \(slot.uri)\n"
                if let error = slot.error { out += "    login failed: \(error)\n" }
                let privateKeys = slot.objects.filter { $0.kind == .privateKey }
                // Without login most tokens hide private keys; their public halves share id and label.
                let keys = privateKeys.isEmpty ? slot.objects.filter { $0.kind == .publicKey } : privateKeys
                if privateKeys.isEmpty && slot.loginRequired && pins[slot.tokenLabel] == nil {
                    out += "    (not logged in: private keys are inferred from public keys)\n"
                }
                for key in keys {
                    let uri = PKCS11URI(
                        token: slot.tokenLabel, object: key.label, id: key.id.isEmpty ? nil : key.id,
                        type: .privateKey, pinSource: "file:/etc/smime-milter/pins/\(slot.tokenLabel)")
                    out += "    key \(key.keyType?.description ?? "?") label=\(key.label ?? "-") id=\(hex(key.id))\n"
                    out += "      \(uri)\n"
                }
                for object in slot.objects where object.kind == .certificate {
                    out += "    certificate label=\(object.label ?? "-") id=\(hex(object.id))\n"
                    guard let der = object.certificate, let certificate = try? Certificate(der: der) else {
                        out += "      (not an X.509 certificate OpenSSL can read)\n"
                        continue
                    }
                    out += "      subject: \(certificate.subject)\n"
                    out += "      issuer:  \(certificate.issuer)\n"
                    if !certificate.emailAddresses.isEmpty {
                        out += "      e-mail:  \(certificate.emailAddresses.joined(separator: ", "))\n"
                    }
                    let days = Int(certificate.notAfter.timeIntervalSince(now) / 86400)
                    let state = days < 0 ? "EXPIRED" : days < 30 ? "expires in \(days) days" : "\(days) days left"
                    out += "      expires: \(isoDate(certificate.notAfter)) (\(state))\n"
                }
            }
        }
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.isEmpty ? "-" : bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func isoDate(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        return formatter.string(from: date)
    }
}
