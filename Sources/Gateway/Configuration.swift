import Foundation
public import SMIME
public import Token

/// A configuration problem, with where it is and what to do.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    public let file: String
    public let line: Int?
    public let message: String
    public let hint: String

    public init(file: String, line: Int?, message: String, hint: String) {
        self.file = file
        self.line = line
        self.message = message
        self.hint = hint
    }

    public var description: String {
        "\(file)\(line.map { ":\($0)" } ?? ""): \(message); \(hint)"
    }
}

/// What to do with a message when something goes wrong.
public enum FailureAction: String, Sendable, CaseIterable {
    case accept, tempfail, reject, quarantine
}

/// The daemon's configuration: OpenDKIM-style `Name value` lines, `#` comments, names
/// case-insensitive. Parsed once into this immutable value and validated as a whole.
public struct Configuration: Sendable {
    public var socket = SocketSpec.unix(path: "/var/spool/postfix/smime-milter/smime-milter.sock")
    public var umask = "007"
    public var userID: String?
    public var mode = "sv"
    public var authservID = ProcessInfo.processInfo.hostName
    /// `InternalHosts` as written; `internalHostList` is what they parse to.
    public var internalHosts = ["127.0.0.1", "::1"]
    public var internalHostList = HostList.loopback
    public var mta: [String] = []
    public var signingTable: String?
    public var authorizedSigners: String?
    public var pkcs11Module: String?
    public var sessionPoolSize = 2
    public var signingTimeout = 30
    public var trustAnchors = ["/etc/smime-milter/trust"]
    public var intermediates: [String] = []
    public var crlDirectory: String?
    public var revocationCheck = RevocationCheck.crlFetch
    public var crlFetchTimeout = 5
    /// Hosts (or `host:port`) revocation data and CA certificates may be fetched from besides
    /// those the configured CA certificates name.
    public var fetchHosts: [String] = []
    public var crlGracePeriod = 86400
    public var signingTimeSkew = 3600
    public var digestAlgorithm = DigestAlgorithm.sha256
    public var onSignFailure = FailureAction.tempfail
    public var onBadSignature = FailureAction.accept
    public var onInternalError = FailureAction.tempfail
    public var onUnauthorizedSigner = FailureAction.reject
    public var onMalformed = FailureAction.reject
    public var allowSHA1Signatures = false
    public var signBounces = false
    public var maximumSignSize = 50 << 20
    public var addReadableHeader = true
    public var headerLanguage = VerdictReason.Language.en
    public var subjectTag: String?
    public var logLevel = "info"
    public var syslog = true
    public var stateDirectory = "/var/lib/smime-milter"
    public var spoolThreshold = 4 << 20
    public var spoolDirectory = "/tmp"
    public var units: String?
    /// `LocalDomains` as written; nil means the domains of the signing and units tables.
    public var localDomains: [String]?
    /// nil when records are off (`EventDatabase none`); relative to nothing: the default is
    /// `events.sqlite` in `StateDirectory` (`eventDatabasePath`).
    public var eventDatabase: String? = ""
    public var eventRetention = 400
    /// `ReportMailTo`: where `report --mail` sends the report; empty when not set.
    public var reportMailTo: [String] = []
    /// `ReportMailFrom`: the report mail's From (and envelope sender); a unit address the
    /// SigningTable signs for, so that the report leaves signed.
    public var reportMailFrom: String?
    /// Where `/metrics` and `/healthz` are served (`MetricsListen`); nil when off.
    public var metricsListen: SocketSpec?
    /// `EventDatabasePasswordFile`: the PostgreSQL password, read as PIN files are.
    public var eventDatabasePasswordFile: String?
    /// `ServerName`: stored with every record, told apart in a database several servers share.
    public var serverName = ProcessInfo.processInfo.hostName

    /// The records' SQLite file, or nil when records are off. With a PostgreSQL `EventDatabase`,
    /// `events.sqlite` in `StateDirectory`: records are written there first and forwarded.
    public var eventDatabasePath: String? {
        guard let eventDatabase else { return nil }
        return eventDatabase.isEmpty || eventDatabaseURL != nil ? stateDirectory + "/events.sqlite" : eventDatabase
    }

    /// The PostgreSQL URL of `EventDatabase`, or nil for an SQLite file.
    public var eventDatabaseURL: String? {
        guard let eventDatabase, Self.isPostgresURL(eventDatabase) else { return nil }
        return eventDatabase
    }

    /// Whether `EventDatabase` (or `report --database`) names PostgreSQL rather than a file.
    public static func isPostgresURL(_ value: String) -> Bool {
        value.hasPrefix("postgresql://") || value.hasPrefix("postgres://")
    }

    /// What is wrong with a PostgreSQL URL, nil for none (or for a file). A password inside it
    /// is refused: it would be on command lines and in the log.
    public static func postgresURLProblem(_ value: String) -> (any Error & CustomStringConvertible)? {
        guard isPostgresURL(value) else { return nil }
        guard let url = URLComponents(string: value), url.host?.isEmpty == false else {
            return Problem("'\(value)' is not a PostgreSQL URL", "write postgresql://USER@HOST:PORT/DATABASE?sslmode=verify-full")
        }
        guard url.password == nil, url.queryItems?.contains(where: { $0.name.lowercased() == "password" }) != true else {
            return Problem(
                "the PostgreSQL URL holds a password",
                "remove it from the URL and put it in EventDatabasePasswordFile (mode 0600) or libpq's PGPASSFILE")
        }
        return nil
    }

    /// Whether `Mode` includes signing and verifying.
    public var signs: Bool { mode.contains("s") }
    public var verifies: Bool { mode.contains("v") }

    public init() {}

    /// One configuration key: its name, type, default and what it does.
    public struct Key: Sendable {
        public let name: String
        public let type: String
        public let defaultValue: String
        public let required: Bool
        public let description: String
        let apply: @Sendable (inout Configuration, String) throws -> Void
    }

    /// Every key, in the order `smime-milter.conf.sample` lists them.
    public static let keys: [Key] = [
        Key(name: "Socket", type: "socket", defaultValue: "local:/var/spool/postfix/smime-milter/smime-milter.sock", required: false,
            description: "where the milter listens: local:PATH, unix:PATH, inet:PORT@HOST, inet6:PORT@[HOST]") {
            do {
                $0.socket = try SocketSpec(parsing: $1)
            } catch let error as SocketSpec.ParseError {
                throw Problem(error.problem, error.fix)
            }
        },
        Key(name: "UMask", type: "octal", defaultValue: "007", required: false, description: "umask for the socket") {
            guard UInt16($1, radix: 8) != nil else { throw Problem("'\($1)' is not an octal number", "write for example 007") }
            $0.umask = $1
        },
        Key(name: "UserID", type: "user[:group]", defaultValue: "(none)", required: false,
            description: "the user to run as after binding the socket") {
            if let problem = userIDProblem($1) { throw problem }
            $0.userID = $1
        },
        Key(name: "Mode", type: "s, v or sv", defaultValue: "sv", required: false, description: "sign, verify or both") {
            guard ["s", "v", "sv", "vs"].contains($1) else { throw Problem("Mode '\($1)' is unknown", "use s, v or sv") }
            $0.mode = $1
        },
        Key(name: "AuthservID", type: "string", defaultValue: "(host name)", required: false,
            description: "the authserv-id of Authentication-Results") { $0.authservID = $1 },
        Key(name: "InternalHosts", type: "list", defaultValue: "127.0.0.1, ::1", required: false,
            description: "addresses and CIDR ranges (or a file of them) whose mail is signed") { $0.internalHosts = try list($1) },
        Key(name: "MTA", type: "list", defaultValue: "(none)", required: false,
            description: "values of {daemon_name} whose mail is signed (e.g. ORIGINATING)") { $0.mta = try list($1) },
        Key(name: "SigningTable", type: "path", defaultValue: "(none)", required: false,
            description: "From address pattern -> key [cert=FILE] [chain=FILE]") { $0.signingTable = $1 },
        Key(name: "AuthorizedSigners", type: "path", defaultValue: "(none)", required: false,
            description: "SMTP login -> address patterns it may sign as") { $0.authorizedSigners = $1 },
        Key(name: "PKCS11Module", type: "path", defaultValue: "(p11-kit registered modules)", required: false,
            description: "PKCS#11 module for keys whose URI names none") { $0.pkcs11Module = $1 },
        Key(name: "SessionPoolSize", type: "integer", defaultValue: "2", required: false,
            description: "sessions per token signing at once") { $0.sessionPoolSize = try integer($1, in: 1...64) },
        Key(name: "SigningTimeout", type: "seconds", defaultValue: "30", required: false,
            description: "how long a message waits for its token; past it OnSignFailure, and a stuck token fails fast") {
            $0.signingTimeout = try integer($1, in: 1...240)
        },
        Key(name: "TrustAnchors", type: "list", defaultValue: "/etc/smime-milter/trust", required: false,
            description: "PEM files or directories of trusted roots") { $0.trustAnchors = try list($1) },
        Key(name: "Intermediates", type: "list", defaultValue: "(none)", required: false,
            description: "PEM files of intermediate CAs for messages that lack them") { $0.intermediates = try list($1) },
        Key(name: "CRLDirectory", type: "path", defaultValue: "(none)", required: false,
            description: "directory of CRLs, PEM or DER") { $0.crlDirectory = $1 },
        Key(name: "RevocationCheck", type: "none, crl, crl+fetch or ocsp", defaultValue: "crl+fetch", required: false,
            description: "how revocation is checked: local CRLs, also fetched ones, or OCSP first") {
            guard let check = RevocationCheck(rawValue: $1.lowercased()) else {
                throw Problem("RevocationCheck '\($1)' is unknown", "use none, crl, crl+fetch or ocsp")
            }
            $0.revocationCheck = check
        },
        Key(name: "CRLFetchTimeout", type: "seconds", defaultValue: "5", required: false,
            description: "the most a message waits in total for revocation data; downloads go on for later messages") {
            $0.crlFetchTimeout = try integer($1, in: 1...60)
        },
        Key(name: "FetchHosts", type: "list", defaultValue: "(none)", required: false,
            description: "hosts or host:port to fetch CRLs, OCSP answers and CA certificates from besides those the trust anchors and intermediates name; the only way to allow a loopback or private address or a port other than 80") {
            let entries = try list($1)
            do { _ = try FetchPolicy(fetchHosts: entries) } catch let error as SMIMEError {
                throw Problem(error.operation, error.hint ?? "")
            }
            $0.fetchHosts = entries
        },
        Key(name: "CRLGracePeriod", type: "seconds", defaultValue: "86400", required: false,
            description: "how long a CRL past its nextUpdate is still used (the verdict's reason says it is stale)") {
            $0.crlGracePeriod = try integer($1, in: 0...(30 * 86400))
        },
        Key(name: "SigningTimeSkew", type: "seconds", defaultValue: "3600", required: false,
            description: "a signing time further than this from the Date header is policy (Thunderbird's rule); mail signed further than this from its Date is signed without a signing time") {
            $0.signingTimeSkew = try integer($1, in: 60...(366 * 86400))
        },
        Key(name: "DigestAlgorithm", type: "sha-256, sha-384 or sha-512", defaultValue: "sha-256", required: false,
            description: "the hash signatures are made over") {
            guard let digest = DigestAlgorithm(rawValue: $1.lowercased()) else {
                throw Problem("DigestAlgorithm '\($1)' is unknown", "use sha-256, sha-384 or sha-512")
            }
            $0.digestAlgorithm = digest
        },
        Key(name: "OnSignFailure", type: "action", defaultValue: "tempfail", required: false,
            description: "when a signer is chosen but signing fails") { $0.onSignFailure = try action($1) },
        Key(name: "OnBadSignature", type: "action", defaultValue: "accept", required: false,
            description: "when incoming mail fails verification") { $0.onBadSignature = try action($1) },
        Key(name: "OnInternalError", type: "action", defaultValue: "tempfail", required: false,
            description: "when something unexpected fails") { $0.onInternalError = try action($1) },
        Key(name: "OnUnauthorizedSigner", type: "accept or reject", defaultValue: "reject", required: false,
            description: "when AuthorizedSigners does not let the login send as the From address") {
            let value = try action($1)
            guard value == .accept || value == .reject else {
                throw Problem("OnUnauthorizedSigner '\($1)' is not allowed", "use accept (send unsigned) or reject")
            }
            $0.onUnauthorizedSigner = value
        },
        Key(name: "OnMalformed", type: "accept or reject", defaultValue: "reject", required: false,
            description: "when mail to be signed is malformed (nested too deep, too many parts): a retry cannot help") {
            let value = try action($1)
            guard value == .accept || value == .reject else {
                throw Problem("OnMalformed '\($1)' is not allowed", "use reject (554 5.6.0) or accept (delivered unsigned)")
            }
            $0.onMalformed = value
        },
        Key(name: "AllowSHA1Signatures", type: "boolean", defaultValue: "no", required: false,
            description: "let message signatures made with SHA-1 pass (CA certificates signed with SHA-1 are accepted either way)") {
            $0.allowSHA1Signatures = try boolean($1)
        },
        Key(name: "SignBounces", type: "boolean", defaultValue: "no", required: false,
            description: "sign mail with a null envelope sender") { $0.signBounces = try boolean($1) },
        Key(name: "MaximumSignSize", type: "size", defaultValue: "50M", required: false,
            description: "larger messages are not signed") { $0.maximumSignSize = try size($1) },
        Key(name: "AddReadableHeader", type: "boolean", defaultValue: "yes", required: false,
            description: "add X-SMIME-Verification beside Authentication-Results") { $0.addReadableHeader = try boolean($1) },
        Key(name: "HeaderLanguage", type: "vi or en", defaultValue: "en", required: false,
            description: "the language of the readable header (Authentication-Results stays in RFC 8601 keywords)") {
            guard let language = VerdictReason.Language(rawValue: $1.lowercased()) else {
                throw Problem("HeaderLanguage '\($1)' is unknown", "use vi or en")
            }
            $0.headerLanguage = language
        },
        Key(name: "SubjectTag", type: "string", defaultValue: "(none)", required: false,
            description: "text put before the Subject of mail that fails verification") { $0.subjectTag = $1 },
        Key(name: "LogLevel", type: "error, warning, info or debug", defaultValue: "info", required: false,
            description: "how much is logged") {
            guard ["error", "warning", "info", "debug"].contains($1.lowercased()) else {
                throw Problem("LogLevel '\($1)' is unknown", "use error, warning, info or debug")
            }
            $0.logLevel = $1.lowercased()
        },
        Key(name: "Syslog", type: "boolean", defaultValue: "yes", required: false,
            description: "log to syslog (facility mail) rather than standard error") { $0.syslog = try boolean($1) },
        Key(name: "StateDirectory", type: "path", defaultValue: "/var/lib/smime-milter", required: false,
            description: "where statistics and refused-PIN records are kept") { $0.stateDirectory = $1 },
        Key(name: "SpoolThreshold", type: "size", defaultValue: "4M", required: false,
            description: "message bodies larger than this are kept in a file, not in memory") { $0.spoolThreshold = try size($1) },
        Key(name: "SpoolDirectory", type: "path", defaultValue: "/tmp", required: false,
            description: "where the private directory for spooled bodies is made") { $0.spoolDirectory = $1 },
        Key(name: "Units", type: "path", defaultValue: "(none: a unit is a mail domain)", required: false,
            description: "address pattern -> the unit's name, for the records and the report") { $0.units = $1 },
        Key(name: "LocalDomains", type: "list", defaultValue: "(the domains of SigningTable and Units)", required: false,
            description: "recipients here get verification headers on mail from inside too; .domain for its subdomains") {
            $0.localDomains = try list($1).map { $0.lowercased() }
        },
        Key(name: "EventDatabase", type: "path, postgresql://USER@HOST:PORT/DB or none", defaultValue: "(events.sqlite in StateDirectory)",
            required: false,
            description: "SQLite file, or PostgreSQL shared by several servers, of one record per message for `smime-milter report`; none turns records off") {
            if let problem = postgresURLProblem($1) { throw problem }
            $0.eventDatabase = $1.lowercased() == "none" ? nil : $1
        },
        Key(name: "EventDatabasePasswordFile", type: "path", defaultValue: "(none: libpq's PGPASSFILE or ~/.pgpass)", required: false,
            description: "the PostgreSQL password of EventDatabase; mode 0600, owned by the daemon's user") {
            $0.eventDatabasePasswordFile = $1
        },
        Key(name: "ServerName", type: "string", defaultValue: "(host name)", required: false,
            description: "this server's name in the records, for a database several servers share") { $0.serverName = $1 },
        Key(name: "EventRetention", type: "days", defaultValue: "400", required: false,
            description: "records older than this are deleted") { $0.eventRetention = try integer($1, in: 1...(20 * 366)) },
        Key(name: "ReportMailTo", type: "list of addresses", defaultValue: "(none)", required: false,
            description: "recipients of `smime-milter report --mail` (the monthly timer)") {
            $0.reportMailTo = try list($1).map { try mailAddress($0, key: "ReportMailTo") }
        },
        Key(name: "ReportMailFrom", type: "address", defaultValue: "(none)", required: false,
            description: "From of the report mail: an address the SigningTable signs for") {
            $0.reportMailFrom = try mailAddress($1, key: "ReportMailFrom")
        },
        Key(name: "MetricsListen", type: "socket", defaultValue: "(none: no metrics endpoint)", required: false,
            description: "where Prometheus scrapes /metrics and /healthz: inet:PORT@HOST or inet6:PORT@[HOST]") {
            let spec: SocketSpec
            do {
                spec = try SocketSpec(parsing: $1)
            } catch let error as SocketSpec.ParseError {
                throw Problem(error.problem, "write for example inet:9894@127.0.0.1")
            }
            if case .unix = spec {
                throw Problem("MetricsListen \($1) is a local socket, which Prometheus cannot scrape", "write for example inet:9894@127.0.0.1")
            }
            $0.metricsListen = spec
        },
    ]

    // MARK: parsing

    /// Reads and validates a configuration file.
    public static func load(path: String) throws -> Configuration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(
                file: path, line: nil, message: "cannot read the configuration file",
                hint: "check the path, or give another with --config")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: path)
    }

    /// Parses configuration text; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws -> Configuration {
        var configuration = Configuration()
        var seen: [String: Int] = [:]
        for (number, line) in TableText.lines(text) {
            let (name, value) = TableText.nameAndRest(line)
            guard let key = keys.first(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame }) else {
                let close = keys.map(\.name).filter { distance($0.lowercased(), name.lowercased()) <= 2 }
                throw ConfigurationError(
                    file: file, line: number, message: "unknown key '\(name)'",
                    hint: close.isEmpty
                        ? "see smime-milter.conf(5) or conf/smime-milter.conf.sample for the keys"
                        : "did you mean \(close.joined(separator: " or "))?")
            }
            guard !value.isEmpty else {
                throw ConfigurationError(
                    file: file, line: number, message: "\(key.name) has no value", hint: "write: \(key.name) \(key.type)")
            }
            if let previous = seen[key.name] {
                throw ConfigurationError(
                    file: file, line: number, message: "\(key.name) is set twice (first on line \(previous))",
                    hint: "keep one of the two lines")
            }
            seen[key.name] = number
            do {
                try key.apply(&configuration, value)
            } catch let problem as Problem {
                throw ConfigurationError(file: file, line: number, message: problem.message, hint: problem.hint)
            }
        }
        configuration.internalHostList = try HostList(
            entries: configuration.internalHosts, file: file, line: seen["InternalHosts"])
        for key in keys where key.required && seen[key.name] == nil {
            throw ConfigurationError(file: file, line: nil, message: "\(key.name) is missing", hint: "add: \(key.name) \(key.type)")
        }
        // A freshly installed file names neither: refused, so that the daemon does not start
        // before the postmaster has said what to sign with or whom to trust (as OpenDKIM does).
        if seen["SigningTable"] == nil && seen["TrustAnchors"] == nil {
            throw ConfigurationError(
                file: file, line: nil,
                message: "not configured yet: neither SigningTable (the keys to sign with) nor TrustAnchors (the CAs to trust) is set",
                hint: "set SigningTable, TrustAnchors or both (the Government root CA is in /usr/share/smime-milter/trust); see smime-milter.conf(5)")
        }
        return configuration
    }

    /// Levenshtein distance, for "did you mean" on a mistyped key.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(1, b.count) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }

    struct Problem: Error, CustomStringConvertible {
        let message: String
        let hint: String
        var description: String { "\(message); \(hint)" }
        init(_ message: String, _ hint: String) {
            self.message = message
            self.hint = hint
        }
    }

    /// A bare address, `local@domain`: what sendmail takes as a recipient or envelope sender.
    /// Whether `text` is a bare address (`local@domain`, nothing around it) that sendmail can take
    /// on its command line: not starting with `-`, which it would read as an option.
    public static func isMailAddress(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && !text.hasPrefix("-")
            && !text.contains(where: { $0.isWhitespace || $0.isNewline || "<>,;\"()".contains($0) })
    }

    static func mailAddress(_ value: String, key: String) throws -> String {
        guard isMailAddress(value) else { throw Problem("\(key) '\(value)' is not a mail address", "write local@domain, e.g. vanthu@stttt.dienbien.gov.vn") }
        return value
    }

    static func list(_ value: String) throws -> [String] {
        let items = value.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
        guard !items.isEmpty else { throw Problem("the list is empty", "separate items with commas") }
        return items
    }

    /// Why a `UserID` value is not `user` or `user:group`, if it is not.
    static func userIDProblem(_ value: String) -> Problem? {
        let parts = value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        if parts[0].isEmpty || (parts.count == 2 && parts[1].isEmpty) || value.contains(where: { $0 == " " || $0 == "\t" }) {
            return Problem(
                "UserID '\(value)' is not user or user:group",
                "write the service user, for example smime-milter or smime-milter:smime-milter")
        }
        return nil
    }

    static func boolean(_ value: String) throws -> Bool {
        switch value.lowercased() {
        case "yes", "true", "1", "on": return true
        case "no", "false", "0", "off": return false
        default: throw Problem("'\(value)' is not a boolean", "write yes or no")
        }
    }

    static func integer(_ value: String, in range: ClosedRange<Int>) throws -> Int {
        guard let number = Int(value), range.contains(number) else {
            throw Problem("'\(value)' is not a whole number from \(range.lowerBound) to \(range.upperBound)", "write a number in that range")
        }
        return number
    }

    static func size(_ value: String) throws -> Int {
        let multipliers: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        var digits = value.uppercased()
        var multiplier = 1
        if let last = digits.last, let factor = multipliers[last] {
            multiplier = factor
            digits.removeLast()
        }
        guard let number = Int(digits), number > 0 else {
            throw Problem("'\(value)' is not a size", "write octets, or a number with K, M or G (50M)")
        }
        let (octets, overflow) = number.multipliedReportingOverflow(by: multiplier)
        guard !overflow else {
            throw Problem("'\(value)' is too large", "write octets, or a number with K, M or G (50M)")
        }
        return octets
    }

    static func action(_ value: String) throws -> FailureAction {
        guard let action = FailureAction(rawValue: value.lowercased()) else {
            throw Problem("'\(value)' is not an action", "use accept, tempfail, reject or quarantine")
        }
        return action
    }
}
