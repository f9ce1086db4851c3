import Foundation
public import Logging
public import MIME
public import SMIME
import Synchronization
import Token

/// The SMTP facts about a message the MTA gives the milter.
public struct Envelope: Sendable, Equatable {
    /// The client's IP address in text form; nil when unknown.
    public var clientAddress: String?
    /// Postfix's `{daemon_name}` (e.g. `ORIGINATING` on the submission service).
    public var daemonName: String?
    /// `{auth_type}` and `{auth_authen}`: set when the client authenticated.
    public var authType: String?
    public var authLogin: String?
    /// The envelope sender without angle brackets; empty for a bounce.
    public var sender: String
    public var recipients: [String]
    /// The queue ID, for log lines.
    public var queueID: String?

    public init(
        clientAddress: String? = nil, daemonName: String? = nil, authType: String? = nil, authLogin: String? = nil,
        sender: String = "", recipients: [String] = [], queueID: String? = nil
    ) {
        self.clientAddress = clientAddress
        self.daemonName = daemonName
        self.authType = authType
        self.authLogin = authLogin
        self.sender = sender
        self.recipients = recipients
        self.queueID = queueID
    }

    var authenticated: Bool {
        !(authLogin ?? "").isEmpty || !(authType ?? "").isEmpty
    }
}

/// What `Gateway.decide` concluded: the actions for the milter and what to log and count.
public struct Decision: Sendable {
    public enum Outcome: Sendable, Equatable {
        /// Signed with the key a signing-table line names (`signer` says which, PIN-free).
        case signed(signer: String)
        /// Outgoing mail the sender's mail client had signed: verified on the way out, not changed.
        case signedBySender(Verdict)
        /// Left alone; `why` is a short word for counters (`bounce`, `oversize`, ...).
        case skipped(why: String)
        case verified(Verdict)
        /// A failure; the reply follows the configured action.
        case failed(why: String, detail: String)
    }

    public let outcome: Outcome
    /// Header edits and the new body, in order.
    public let actions: [MilterAction]
    /// How the message ends.
    public let reply: MilterAction.Reply
    /// The units counted, and the address the decision was about.
    public let units: [String]
    public let address: String?
    /// The message's record, as decided (see `Event.ended` for how it really ended).
    public let event: Event?

    public init(
        outcome: Outcome, actions: [MilterAction] = [], reply: MilterAction.Reply = .accept, units: [String],
        address: String?, event: Event? = nil
    ) {
        self.outcome = outcome
        self.actions = actions
        self.reply = reply
        self.units = units
        self.address = address
        self.event = event
    }

    /// The counter this decision adds to.
    public var counter: String {
        switch outcome {
        case .signed: "signed"
        case .signedBySender(let verdict): "sender-signed.\(verdict.result.rawValue)"
        case .skipped(let why): "skipped.\(why)"
        case .verified(let verdict): "verified.\(verdict.result.rawValue)"
        case .failed(let why, _): "failed.\(why)"
        }
    }

    /// One line for the log: what happened, to which address, with which signer or verdict.
    public var summary: String {
        var text: String
        switch outcome {
        case .signed(let signer): text = "signed from=\(address ?? "?") signer=\(signer)"
        case .skipped(let why): text = "not signed (\(why)) from=\(address ?? "?")"
        case .verified(let verdict), .signedBySender(let verdict):
            if case .signedBySender = outcome { text = "signed by the sender, " } else { text = "" }
            text += "verified smime=\(verdict.result.rawValue) from=\(address ?? "?")"
            if let name = verdict.commonName { text += " signer=\"\(name)\"" }
            if !verdict.reason.isEmpty && verdict.result != .pass { text += " reason=\"\(verdict.reason)\"" }
        case .failed(let why, let detail): text = "failed (\(why)) from=\(address ?? "?"): \(detail)"
        }
        let reply = self.reply
        return reply.disposition == .accept ? text : text + "; reply \(reply)"
    }
}

/// Everything the milter decides, over plain values: sign originating mail, verify the rest,
/// and what to answer when either fails. One `Gateway` per loaded configuration; a reload makes
/// a new one and connections keep the one they started with.
public final class Gateway: Sendable {
    public let configuration: Configuration
    public let signingTable: SigningTable?
    public let authorizedSigners: AuthorizedSigners?
    public let verifier: Verifier?
    public let statistics: Statistics
    public let units: Units?
    /// Each signing-table line's token state and signatures, as the messages found them; like
    /// `statistics`, handed from one gateway to the next on reload.
    public let tokenTracker: TokenTracker
    /// `LocalDomains`, or the domains of the signing and units tables.
    public let localDomains: [String]
    let logger: Logger
    let makeSigner: @Sendable (SigningTable.Entry, _ lookingAgain: Bool) throws -> any Signer
    /// Signers made so far, by signing-table line; a failed one is tried again next message.
    private let signers = Mutex<[Int: any Signer]>([:])
    /// Lines whose token was not found last time: the next attempt may restart the module.
    private let missing = Mutex<Set<Int>>([])
    /// One signer made at a time per line (one login per key), with no lock held across it.
    private let making = OnePerKey()
    /// The threads each token key's calls run on (see `TokenWorkers`, one set per token for the
    /// process), by signing-table line.
    private let workers = Mutex<[Int: TokenWorkers]>([:])
    /// Each line's signer certificate with its subject and serial (`signerNames`); bounded by the
    /// signing table's lines.
    private let signerCertificates = Mutex<[Int: (der: [UInt8], subject: String, serial: String)]>([:])
    /// The header texts of each line's last own verdict (`ownVerificationHeaders`), by line.
    private let ownFields = Mutex<[Int: (verdict: Verdict, second: Int?, fields: [(name: String, value: String)])]>([:])
    /// Verdicts on the gateway's own signatures for local recipients (`ownVerdict`).
    private let ownVerdicts = Mutex<[OwnVerdictKey: (verdict: Verdict, until: Date)]>([:])

    public init(
        configuration: Configuration, signingTable: SigningTable?, authorizedSigners: AuthorizedSigners?,
        verifier: Verifier?, units: Units? = nil, statistics: Statistics = Statistics(),
        tokenTracker: TokenTracker = TokenTracker(), logger: Logger = Logger(label: "smime-milter.gateway"),
        makeSigner: (@Sendable (SigningTable.Entry, _ lookingAgain: Bool) throws -> any Signer)? = nil
    ) {
        self.configuration = configuration
        self.signingTable = signingTable
        self.authorizedSigners = authorizedSigners
        self.verifier = verifier
        self.units = units
        let patterns = (signingTable?.entries.map(\.pattern) ?? []) + (units?.entries.map(\.pattern) ?? [])
        self.localDomains = configuration.localDomains ?? Gateway.unique(patterns.compactMap(AddressPattern.domain(of:)))
        self.statistics = statistics
        tokenTracker.keeping(signingTable)
        self.tokenTracker = tokenTracker
        self.logger = logger
        self.makeSigner = makeSigner ?? { try SignerLoader.signer(for: $0, configuration: configuration, lookingAgain: $1) }
    }

    /// Loads the tables and trust anchors a configuration names. Tokens are not touched: a
    /// signer is made when it is first needed (`check-config` logs in to each one up front).
    public static func load(
        _ configuration: Configuration, statistics: Statistics = Statistics(), tokenTracker: TokenTracker = TokenTracker(),
        logger: Logger = Logger(label: "smime-milter.gateway")
    ) throws -> Gateway {
        let table = try configuration.signingTable.map(SigningTable.load)
        let authorized = try configuration.authorizedSigners.map(AuthorizedSigners.load)
        let units = try configuration.units.map(Units.load)
        let verifier = configuration.verifies ? try SignerLoader.verifier(configuration) : nil
        return Gateway(
            configuration: configuration, signingTable: table, authorizedSigners: authorized, verifier: verifier,
            units: units, statistics: statistics, tokenTracker: tokenTracker, logger: logger)
    }

    // MARK: deciding

    /// Decides what to do with one message and counts it.
    public func decide(envelope: Envelope, headers: [HeaderField], body: [UInt8]) -> Decision {
        let decision: Decision
        if isOriginating(envelope) && configuration.signs {
            decision = sign(envelope: envelope, headers: headers, body: body)
        } else if configuration.verifies {
            decision = verify(envelope: envelope, headers: headers, body: body)
        } else {
            // Mode s: incoming mail passes untouched, counted for no unit and not recorded.
            decision = Decision(outcome: .skipped(why: "incoming"), units: [], address: nil)
        }
        statistics.count(decision.counter, units: decision.units)
        return decision
    }

    /// The decision for a message the milter could not even hand over (a spool file that cannot
    /// be read, a message it ran out of resources for): `OnInternalError`.
    public func internalError(_ detail: String) -> Decision {
        let decision = Decision(
            outcome: .failed(why: "internal", detail: detail),
            reply: .failure(
                configuration.onInternalError, enhancedSubject: "3.0", text: "internal error in the S/MIME milter, try again later"),
            units: [], address: nil)
        statistics.count(decision.counter, units: ["(unknown)"])
        return decision
    }

    /// Originating when the client authenticated, is an internal host, or came in through an
    /// `MTA` daemon.
    public func isOriginating(_ envelope: Envelope) -> Bool {
        if envelope.authenticated { return true }
        if let address = envelope.clientAddress, configuration.internalHostList.contains(address) { return true }
        if let daemon = envelope.daemonName, configuration.mta.contains(where: { $0.caseInsensitiveCompare(daemon) == .orderedSame }) {
            return true
        }
        return false
    }

    // MARK: signing

    func sign(envelope: Envelope, headers: [HeaderField], body: [UInt8]) -> Decision {
        let author = Verification.authorAddress(headers)
        let unit = unit(of: author ?? envelope.sender)
        let local = envelope.recipients.filter(isLocal)
        let direction: Event.Direction =
            !envelope.recipients.isEmpty && local.count == envelope.recipients.count ? .internal : .outgoing
        let event = Event(
            queueID: envelope.queueID, direction: direction, unit: unit, recipientUnits: Gateway.unique(local.map(self.unit(of:))),
            outcome: .unsigned)
        /// Recipients in the local domains see the verification headers for the signature the
        /// message leaves with; mail only to outside recipients is not given them.
        func headersForLocalRecipients(_ verdict: Verdict) -> [MilterAction] {
            local.isEmpty ? [] : verificationHeaders(verdict, headers: headers)
        }
        func skip(_ why: String) -> Decision {
            var record = event
            record.reason = why
            return Decision(
                outcome: .skipped(why: why), actions: headersForLocalRecipients(Verdict(result: .none, because: .notSigned)),
                units: [unit], address: author, event: record)
        }
        func fail(_ why: String, _ detail: String, _ reply: MilterAction.Reply) -> Decision {
            var record = event
            record.reason = why
            // With OnSignFailure accept or quarantine the message leaves unsigned.
            let leaves = reply.disposition == .accept || reply.disposition == .quarantine
            return Decision(
                outcome: .failed(why: why, detail: detail),
                actions: leaves ? headersForLocalRecipients(Verdict(result: .none, because: .notSigned)) : [], reply: reply,
                units: [unit], address: author, event: record)
        }

        let contentType = headers.first(where: { $0.hasName("Content-Type") }).map { ContentType(parsing: $0.value) }
        switch contentType?.value {
        case "multipart/signed":
            return signedBySender(headers: headers, body: body, author: author, unit: unit, event: event, local: !local.isEmpty)
        case "application/pkcs7-mime", "application/x-pkcs7-mime":
            if contentType?["smime-type"]?.lowercased() == "signed-data" {
                return signedBySender(headers: headers, body: body, author: author, unit: unit, event: event, local: !local.isEmpty)
            }
            return skip("encrypted")
        case "multipart/encrypted": return skip("encrypted")
        default: break
        }
        if envelope.sender.isEmpty && !configuration.signBounces { return skip("bounce") }
        let size = headers.reduce(body.count) { $0 + $1.name.utf8.count + $1.rawValue.count + 3 }
        if size > configuration.maximumSignSize { return skip("oversize") }
        guard let author else { return skip("no-from") }
        guard let entry = signingTable?.lookup(author) else { return skip("no-signer") }

        if let authorized = authorizedSigners, let login = envelope.authLogin, !login.isEmpty,
            !authorized.allows(login: login, address: author)
        {
            let detail = "login \(login) may not send as \(author) (AuthorizedSigners)"
            return fail(
                "unauthorized", detail,
                .failure(configuration.onUnauthorizedSigner, enhancedSubject: "7.1", text: "\(login) may not send as \(author)"))
        }

        let label = Gateway.signerLabel(entry)
        do {
            // Prepared before the token is asked: malformed mail gets its answer even while the
            // token is out, and costs no token time.
            let prepared = try SigningPreparation(headers: headers, body: body)
            let signer = try boundedSigner(for: entry)
            let result = try Signing.sign(
                prepared: prepared, headers: headers, signer: signer, digest: configuration.digestAlgorithm,
                signingTimeSkew: TimeInterval(configuration.signingTimeSkew))
            if result.signingTime == nil {
                let minutes = Verification.date(of: headers).map { Int(abs($0.timeIntervalSinceNow) / 60) } ?? 0
                let allowed = configuration.signingTimeSkew / 60
                logger.info(
                    "signed without signingTime: the Date header is \(minutes) minutes from now, more than SigningTimeSkew (\(allowed) minutes)",
                    metadata: ["milter.queue_id": "\(envelope.queueID ?? "NOQUEUE")"])
            }
            tokenTracker.signed(entry, signer: signer)
            var record = event
            record.outcome = .signed
            var actions = result.headerEdits.map(MilterAction.header)
            if !local.isEmpty {
                let verdict = ownVerdict(entry: entry, author: author, headers: headers, signed: result)
                actions += ownVerificationHeaders(verdict, line: entry.line, headers: headers)
                record.result = verdict.result.rawValue
            }
            if let names = signerNames(line: entry.line, certificate: signer.certificate) {
                record.signerSubject = names.subject
                record.signerSerial = names.serial
            }
            return Decision(
                outcome: .signed(signer: label), actions: actions + [.replaceBody(result.body)], units: [unit], address: author,
                event: record)
        } catch let error as TokenError {
            tokenTracker.failed(entry, error)
            return fail(
                "token", "\(label): \(error)",
                .failure(configuration.onSignFailure, enhancedSubject: "7.0", text: "signing token unavailable, try again later"))
        } catch let error as MIMEError {
            // Permanent: the same message fails the same way on every retry (`OnMalformed`).
            let reply: MilterAction.Reply =
                configuration.onMalformed == .accept
                ? .accept : MilterAction.Reply(.reject, code: "554", enhancedCode: "5.6.0", text: Gateway.malformedText(error))
            return fail("malformed", "the message cannot be prepared for signing: \(error)", reply)
        } catch {
            return fail(
                "signing", "\(label): \(error)",
                .failure(configuration.onSignFailure, enhancedSubject: "7.0", text: "message could not be signed, try again later"))
        }
    }

    /// What the local recipients' clients will say of the signature just made. The first one of
    /// a signer and From address in a minute is verified in full; the next ones take that
    /// verdict with their own signing time: chain, trust, revocation and the address do not
    /// change within a minute, and verifying every message doubled the CPU of internal mail
    /// under load (BENCHMARKS.md). Whether Date is within `SigningTimeSkew` is part of the key.
    func ownVerdict(entry: SigningTable.Entry, author: String, headers: [HeaderField], signed: Signing.Result) -> Verdict {
        guard let verifier else { return Verdict(result: .none, because: .verificationOff) }
        let now = Date()
        let date = Verification.date(of: headers)
        let key = OwnVerdictKey(
            line: entry.line, author: author.lowercased(),
            dateWithinSkew: date.map { abs($0.timeIntervalSince(now)) <= Double(configuration.signingTimeSkew) } ?? true)
        if var cached = ownVerdicts.withLock({ $0[key] }), cached.until > now {
            cached.verdict.signingTime = signed.signingTime
            return cached.verdict
        }
        let verdict = Verification.verify(
            signed: .detached(content: signed.inner, signature: signed.signature, part: nil), headers: headers, from: author,
            verifier: verifier)
        ownVerdicts.withLock { verdicts in
            if verdicts.count > 10_000 { verdicts = verdicts.filter { $0.value.until > now } }
            verdicts[key] = (verdict, now.addingTimeInterval(60))
        }
        return verdict
    }

    /// The subject and serial of a line's signer certificate, for its records: parsed once per
    /// signer, not per message (parsing the certificate was a ninth of the daemon's CPU per
    /// signed message, BENCHMARKS.md). A signer made again with another certificate is parsed again.
    func signerNames(line: Int, certificate: [UInt8]) -> (subject: String, serial: String)? {
        if let known = signerCertificates.withLock({ $0[line] }), known.der == certificate {
            return (known.subject, known.serial)
        }
        guard let parsed = try? Certificate(der: certificate) else { return nil }
        signerCertificates.withLock { $0[line] = (certificate, parsed.subject, parsed.serial) }
        return (parsed.subject, parsed.serial)
    }

    struct OwnVerdictKey: Hashable {
        let line: Int
        let author: String
        let dateWithinSkew: Bool
    }

    /// Outgoing mail the sender already signed: verified as incoming mail would be, logged and
    /// recorded with its own verdict; the body is not changed.
    func signedBySender(
        headers: [HeaderField], body: [UInt8], author: String?, unit: String, event: Event, local: Bool
    ) -> Decision {
        let verdict = verdict(headers: headers, body: body, author: author)
        var record = event
        record.outcome = .senderSigned
        record.result = verdict.result.rawValue
        record.reason = verdict.result == .pass ? nil : verdict.reason
        record.signerSubject = verdict.subject
        record.signerSerial = verdict.serial
        return Decision(
            outcome: .signedBySender(verdict), actions: local ? verificationHeaders(verdict, headers: headers) : [],
            units: [unit], address: author, event: record)
    }

    /// The entry's signer for one message. A token key is made and used on its own threads, and
    /// the message waits for both together at most `SigningTimeout` (see `TokenWorkers`): a slow
    /// or hung token holds up neither Postfix nor another unit's mail.
    func boundedSigner(for entry: SigningTable.Entry) throws -> any Signer {
        guard entry.key.lowercased().hasPrefix("pkcs11:") else { return try signer(for: entry) }
        let workers = self.workers.withLock { all in
            if let existing = all[entry.line] { return existing }
            let made = TokenWorkers.shared(
                token: Self.tokenIdentity(entry, modulePath: configuration.pkcs11Module),
                name: Gateway.signerLabel(entry), threads: configuration.sessionPoolSize,
                stuckAfter: TimeInterval(configuration.signingTimeout), logger: logger)
            all[entry.line] = made
            return made
        }
        let deadline = Date(timeIntervalSinceNow: TimeInterval(configuration.signingTimeout))
        // A signer made before needs no token call to be had.
        let signer = try signers.withLock({ $0[entry.line] }) ?? workers.run(until: deadline) { try self.signer(for: entry) }
        return DeadlineSigner(base: signer, workers: workers, deadline: deadline)
    }

    /// What names the token of an entry's key: its module and the URI's token attributes.
    static func tokenIdentity(_ entry: SigningTable.Entry, modulePath: String?) -> String {
        guard let uri = try? PKCS11URI(parsing: entry.key) else { return entry.key }
        return [
            uri.modulePath ?? uri.moduleName ?? modulePath ?? "", uri.token ?? "", uri.serial ?? "",
            uri.manufacturer ?? "", uri.model ?? "",
        ].joined(separator: "\u{1f}")
    }

    func signer(for entry: SigningTable.Entry) throws -> any Signer {
        if let signer = signers.withLock({ $0[entry.line] }) { return signer }
        // One maker per line (a second login with the same PIN adds nothing), outside the
        // cache's lock: logging in to a slow token must not hold up other units. Waited for
        // with a deadline: a login that hangs holds up this line's next attempt for
        // SigningTimeout at most, never for ever.
        let made = try making.run(entry.line, before: Date(timeIntervalSinceNow: TimeInterval(configuration.signingTimeout))) {
            () throws -> any Signer in
            if let signer = signers.withLock({ $0[entry.line] }) { return signer }
            let signer: any Signer
            do {
                signer = try makeSigner(entry, missing.withLock { $0.contains(entry.line) })
                _ = missing.withLock { $0.remove(entry.line) }
            } catch let error as TokenError where error.code == .notFound {
                _ = missing.withLock { $0.insert(entry.line) }
                throw error
            }
            return signers.withLock { cache in
                if let existing = cache[entry.line] { return existing }
                cache[entry.line] = signer
                return signer
            }
        }
        guard let made else {
            throw TokenError(
                .timeout, operation: "signing with \(Gateway.signerLabel(entry))",
                detail: "another message is still logging in to this key's token; the message is deferred")
        }
        return made
    }

    /// A signer whose token calls run on the key's threads and end at the message's deadline.
    struct DeadlineSigner: Signer {
        let base: any Signer
        let workers: TokenWorkers
        let deadline: Date

        var certificate: [UInt8] { base.certificate }
        var chain: [[UInt8]] { base.chain }
        var scheme: SignatureScheme { base.scheme }

        func sign(_ data: [UInt8], digest: DigestAlgorithm) throws -> [UInt8] {
            try workers.run(until: deadline) { try base.sign(data, digest: digest) }
        }
    }

    /// What the sender of mail that cannot be prepared for signing is told (plain ASCII: it
    /// travels in the SMTP reply).
    static func malformedText(_ error: MIMEError) -> String {
        let what =
            switch error.kind {
            case .tooDeep: "its parts are nested too deeply (messages forwarded inside one another)"
            case .tooManyParts: "it has too many attachments and parts"
            case .headerTooLarge, .tooManyHeaders: "its header is too large"
            case .malformed: "its MIME structure is broken"
            }
        return "message cannot be signed because \(what); send it again in a simpler form"
    }

    /// Token calls running now for a signing-table line (its sessions in use); nil before its first.
    public func tokenCallsInFlight(line: Int) -> Int? {
        workers.withLock { $0[line] }?.callsInFlight
    }

    /// The key of a signing-table entry without its query (which may hold a PIN) and its line.
    static func signerLabel(_ entry: SigningTable.Entry) -> String {
        // Over UTF-8: this runs for every signed message, and a URI is ASCII up to its query.
        let key = entry.key.utf8.firstIndex(of: UInt8(ascii: "?")).map { entry.key[..<$0] } ?? entry.key[...]
        return "\(key) (signing table line \(entry.line))"
    }

    /// The unit of an address: its `Units` name, else its domain.
    public func unit(of address: String) -> String {
        units?.unit(of: address) ?? Units.domain(of: address)
    }

    /// Whether a recipient's domain is one of the local domains (`.domain`: any below it).
    public func isLocal(_ address: String) -> Bool {
        let domain = Units.domain(of: address)
        return localDomains.contains { $0.hasPrefix(".") ? domain.hasSuffix($0) : domain == $0 }
    }

    static func unique(_ names: [String]) -> [String] {
        var seen: Set<String> = []
        return names.filter { seen.insert($0).inserted }
    }

    // MARK: verifying

    func verify(envelope: Envelope, headers: [HeaderField], body: [UInt8]) -> Decision {
        let author = Verification.authorAddress(headers)
        var units = Gateway.unique(envelope.recipients.map(unit(of:)))
        if units.isEmpty { units = ["(none)"] }
        let verdict = verdict(headers: headers, body: body, author: author)
        var actions = verificationHeaders(verdict, headers: headers)
        var reply = MilterAction.Reply.accept
        if verdict.result == .fail {
            if let tag = configuration.subjectTag, let subject = headers.first(where: { $0.hasName("Subject") }) {
                actions.append(.header(.change(name: "Subject", occurrence: 1, value: EncodedWord.encodeWords(tag) + " " + subject.value)))
            }
            reply = .failure(
                configuration.onBadSignature, enhancedSubject: "7.1", text: "S/MIME signature verification failed: \(verdict.reason)")
        }
        let event = Event(
            queueID: envelope.queueID, direction: .incoming, unit: nil, recipientUnits: units, outcome: .verified,
            result: verdict.result.rawValue, reason: verdict.result == .pass ? nil : verdict.reason,
            signerSubject: verdict.subject, signerSerial: verdict.serial)
        return Decision(outcome: .verified(verdict), actions: actions, reply: reply, units: units, address: author, event: event)
    }

    /// The verdict on the message as the milter holds it.
    func verdict(headers: [HeaderField], body: [UInt8], author: String?) -> Verdict {
        guard let verifier else { return Verdict(result: .none, because: .verificationOff) }
        do {
            return Verification.verify(message: try Message(headers: headers, body: body), from: author, verifier: verifier)
        } catch {
            return Verdict(result: .permerror, because: .malformedMessage(signed: false, detail: "\(error)"))
        }
    }

    /// Forged copies of our headers removed, then `Authentication-Results` and the readable
    /// header inserted at the top (readable first, so that Authentication-Results ends up above it).
    func verificationHeaders(_ verdict: Verdict, headers: [HeaderField]) -> [MilterAction] {
        verificationHeaders(fields: VerificationHeaders.fields(verdict, configuration: configuration), headers: headers)
    }

    /// The same for the gateway's own signature (`ownVerdict`): the texts of a line's last one are
    /// kept with the second of its signing time (all the readable header shows of it), and the
    /// messages of the same verdict in the same second take them as they are. Writing them (RFC
    /// 2047 words, the readable text) was the largest part of internal mail's decision after the
    /// signature itself (BENCHMARKS.md).
    func ownVerificationHeaders(_ verdict: Verdict, line: Int, headers: [HeaderField]) -> [MilterAction] {
        var timeless = verdict
        timeless.signingTime = nil
        let second = verdict.signingTime.map { Int($0.timeIntervalSince1970.rounded(.down)) }
        let fields: [(name: String, value: String)]
        if let kept = ownFields.withLock({ $0[line] }), kept.second == second, kept.verdict == timeless {
            fields = kept.fields
        } else {
            fields = VerificationHeaders.fields(verdict, configuration: configuration)
            ownFields.withLock { $0[line] = (timeless, second, fields) }
        }
        return verificationHeaders(fields: fields, headers: headers)
    }

    func verificationHeaders(fields: [(name: String, value: String)], headers: [HeaderField]) -> [MilterAction] {
        let removals = VerificationHeaders.removals(in: headers, authservID: configuration.authservID).map(MilterAction.header)
        // Each inserted at the top: the last one inserted ends up first.
        let inserts = fields.reversed().map {
            MilterAction.header(.insert(index: 0, name: $0.name, value: $0.value))
        }
        return removals + inserts
    }
}
