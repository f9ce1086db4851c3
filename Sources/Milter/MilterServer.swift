internal import CMilter
internal import CShims
import Foundation
public import Gateway
public import Logging
import MIME
import Synchronization

/// The daemon: registers with libmilter, feeds each message to `Gateway.decide`, applies the
/// actions with `smfi_*`, reloads on SIGHUP and finishes messages in flight on SIGTERM/SIGINT.
///
/// libmilter runs one thread per MTA connection and calls plain C functions, so the state the
/// callbacks share lives in statics behind a lock; everything per connection is in a
/// `Connection` attached with `smfi_setpriv`.
public enum MilterServer {
    // MARK: shared state

    struct State {
        var gateway: Gateway?
        var configurationPath = ""
        var logger = Logger(label: "smime-milter")
        var stopping = false
        /// The private directory for spooled bodies, made before libmilter starts.
        var spoolDirectory = "/tmp"
    }

    static let state = Mutex(State())
    /// Messages whose body went to a spool file are decided and answered one at a time, so that a
    /// burst of large messages costs the memory of one.
    static let largeMessage = Mutex(())
    /// Messages between MAIL FROM and their end: a graceful stop waits for this group.
    static let messagesInFlight = DispatchGroup()

    static var logger: Logger { state.withLock { $0.logger } }

    /// What the milter asks of the MTA: add, change and delete headers, replace the body, quarantine.
    static let actions = UInt(SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_QUARANTINE)

    /// Steps skipped (HELO, DATA, unknown commands) and steps answered without a reply, to save
    /// round trips; header values keep their leading space so they are signed byte for byte.
    static let wantedProtocol = UInt(
        SMFIP_NOHELO | SMFIP_NODATA | SMFIP_NOUNKNOWN | SMFIP_HDR_LEADSPC | SMFIP_NR_HDR | SMFIP_NR_BODY
            | SMFIP_NR_EOH | SMFIP_NR_RCPT | SMFIP_NR_CONN)

    // MARK: running

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs the milter until SIGTERM or SIGINT; returns after messages in flight have finished.
    /// SIGHUP, SIGTERM and SIGINT must already be blocked in the calling thread (`blockSignals`),
    /// before any other thread exists.
    public static func run(configurationPath: String, configuration: Configuration, logger: Logger) throws {
        let socket = configuration.socket
        let statistics = Statistics(starting: previousStatistics(configuration))
        let gateway = try Gateway.load(configuration, statistics: statistics, logger: logger)
        state.withLock {
            $0.gateway = gateway
            $0.configurationPath = configurationPath
            $0.logger = logger
        }

        // Large bodies (over 1 MB) get pages of their own, returned to the system when freed. With
        // glibc's default the limit rises to 32 MB after the first large free, and each libmilter
        // thread's arena then keeps what a large message used: 4 concurrent 30 MB messages took
        // 314 MB instead of 135 MB (BENCHMARKS.md).
        smime_milter_set_mmap_threshold(1 << 20)
        smime_milter_take_signals()
        try register()
        try openSocket(socket, umask: configuration.umask)
        try dropPrivileges(configuration.userID, socket: socket, logger: logger)
        let spoolDirectory = try makeSpoolDirectory(in: configuration.spoolDirectory)
        state.withLock { $0.spoolDirectory = spoolDirectory }
        defer { try? FileManager.default.removeItem(atPath: spoolDirectory) }

        let signals = Thread { signalLoop() }
        signals.name = "signals"
        signals.start()
        let writer = Thread { statisticsLoop() }
        writer.name = "statistics"
        writer.start()

        logger.info(
            "smime-milter listening",
            metadata: [
                "milter.socket": "\(socket)", "milter.mode": "\(configuration.mode)",
                "milter.signing_entries": "\(gateway.signingTable?.entries.count ?? 0)",
                "milter.postfix": "smtpd_milters = \(socket.postfixForm)",
            ])
        let result = smfi_main()
        state.withLock { $0.stopping = true }
        waitForMessagesInFlight(logger: logger)
        saveStatistics()
        guard result == MI_SUCCESS else { throw StartError(description: "libmilter's main loop failed; see the log lines before this") }
        logger.info("smime-milter stopped")
    }

    /// Blocks SIGHUP, SIGTERM and SIGINT in the calling thread; threads made later inherit that,
    /// and the signal thread takes them with `sigwaitinfo`.
    public static func blockSignals() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGHUP, SIGTERM, SIGINT] { sigaddset(&set, signal) }
        return set
    }

    static func signalLoop() {
        var set = signalSet()
        while true {
            let signal = sigwaitinfo(&set, nil)
            switch signal {
            case SIGHUP:
                reload()
            case SIGTERM, SIGINT:
                logger.info("stopping: finishing messages in flight", metadata: ["milter.signal": "\(signal)"])
                _ = smfi_stop()
                return
            default:
                continue
            }
        }
    }

    /// Loads the configuration again; connections already open keep the one they started with.
    /// A configuration that does not load is refused and the running one stays.
    static func reload() {
        let (path, current, logger) = state.withLock { ($0.configurationPath, $0.gateway, $0.logger) }
        guard let current else { return }
        do {
            let configuration = try Configuration.load(path: path)
            if configuration.socket != current.configuration.socket {
                logger.warning("Socket changed in \(path); it takes effect at the next restart")
            }
            let gateway = try Gateway.load(configuration, statistics: current.statistics, logger: logger)
            state.withLock { $0.gateway = gateway }
            logger.info("configuration reloaded from \(path)")
        } catch {
            logger.error("configuration reload refused, the previous one stays in use: \(error)")
        }
    }

    static func waitForMessagesInFlight(logger: Logger) {
        if messagesInFlight.wait(timeout: .now() + 120) == .timedOut {
            logger.warning("stopping with messages still in flight; the MTA will retry them")
        }
    }

    // MARK: statistics

    static func statisticsPath(_ configuration: Configuration) -> String {
        configuration.stateDirectory + "/statistics.json"
    }

    static func previousStatistics(_ configuration: Configuration) -> Statistics.Snapshot {
        (try? Statistics.read(from: statisticsPath(configuration))) ?? Statistics.Snapshot()
    }

    static func statisticsLoop() {
        while true {
            for _ in 0..<60 {
                Thread.sleep(forTimeInterval: 1)
                if state.withLock({ $0.stopping }) { return }
            }
            saveStatistics()
        }
    }

    static func saveStatistics() {
        guard let gateway = state.withLock({ $0.gateway }) else { return }
        do {
            try gateway.statistics.write(to: statisticsPath(gateway.configuration))
        } catch {
            logger.warning("cannot write \(statisticsPath(gateway.configuration)): \(error); create StateDirectory for the service user")
        }
    }

    // MARK: setting up

    /// Strings libmilter keeps pointers to for the life of the process: held here, so that they
    /// stay reachable (and a leak checker sees them as such). Set once, before libmilter starts.
    nonisolated(unsafe) private static var keptForLibmilter: [UnsafeMutablePointer<CChar>] = []

    private static func keptString(_ text: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(text)!
        keptForLibmilter.append(copy)
        return copy
    }

    static func register() throws {
        var description = smfiDesc()
        description.xxfi_name = keptString("smime-milter")
        description.xxfi_version = SMFI_VERSION
        description.xxfi_flags = actions
        description.xxfi_negotiate = { ctx, actions, steps, _, _, actionsOut, stepsOut, unused2, unused3 in
            MilterServer.negotiate(ctx!, actions, steps, actionsOut!, stepsOut!, unused2!, unused3!)
        }
        description.xxfi_connect = { ctx, name, address in MilterServer.connect(ctx!, name, address) }
        description.xxfi_envfrom = { ctx, argv in MilterServer.envelopeFrom(ctx!, argv!) }
        description.xxfi_envrcpt = { ctx, argv in MilterServer.envelopeRecipient(ctx!, argv!) }
        description.xxfi_header = { ctx, name, value in MilterServer.header(ctx!, name!, value!) }
        description.xxfi_eoh = { ctx in MilterServer.reply(ctx!, step: UInt(SMFIP_NR_EOH)) }
        description.xxfi_body = { ctx, bytes, length in MilterServer.body(ctx!, bytes!, length) }
        description.xxfi_eom = { ctx in MilterServer.endOfMessage(ctx!) }
        description.xxfi_abort = { ctx in MilterServer.abort(ctx!) }
        description.xxfi_close = { ctx in MilterServer.close(ctx!) }
        guard smfi_register(description) == MI_SUCCESS else {
            throw StartError(description: "smfi_register failed: this libmilter does not accept the milter's flags")
        }
    }

    static func openSocket(_ socket: SocketSpec, umask mask: String) throws {
        if case .unix(let path) = socket {
            let directory = (path as NSString).deletingLastPathComponent
            guard FileManager.default.fileExists(atPath: directory) else {
                throw StartError(description: "the socket directory \(directory) does not exist; create it (mkdir -p \(directory)) or change Socket")
            }
        }
        guard smfi_setconn(keptString(socket.libmilterForm)) == MI_SUCCESS else {
            throw StartError(description: "libmilter refused the socket \(socket)")
        }
        let previous = umask(mode_t(UInt16(mask, radix: 8) ?? 0o007))
        defer { umask(previous) }
        guard smfi_opensocket(1) == MI_SUCCESS else {
            throw StartError(
                description: "cannot listen on \(socket): \(String(cString: strerror(errno))); is another milter running there, and may this user create it?")
        }
    }

    /// Switches to `UserID` after the socket is open. Running on as root needs `UserID root`.
    static func dropPrivileges(_ userID: String?, socket: SocketSpec, logger: Logger) throws {
        guard geteuid() == 0 else { return }
        guard let userID else {
            throw StartError(
                description: "refusing to run as root: set UserID (e.g. UserID smime-milter) or start as that user (systemd User=)")
        }
        if let problem = ConfigurationCheck.userProblem(userID) { throw StartError(description: problem) }
        let parts = userID.split(separator: ":", maxSplits: 1).map(String.init)
        guard let user = getpwnam(parts[0]) else { throw StartError(description: "UserID \(userID): no user") }
        if user.pointee.pw_uid == 0 {
            logger.warning("running as root because UserID is \(userID)")
            return
        }
        var gid = user.pointee.pw_gid
        if parts.count == 2 {
            guard let group = getgrnam(parts[1]) else { throw StartError(description: "UserID \(userID): no group") }
            gid = group.pointee.gr_gid
        }
        let uid = user.pointee.pw_uid
        if case .unix(let path) = socket { _ = chown(path, uid, gid) }
        guard initgroups(parts[0], gid) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
            throw StartError(description: "cannot switch to \(userID): \(String(cString: strerror(errno)))")
        }
    }

    static func makeSpoolDirectory(in parent: String) throws -> String {
        var template = Array((parent + "/smime-milter.XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw StartError(description: "cannot create a spool directory in \(parent): \(String(cString: strerror(errno))); fix SpoolDirectory")
        }
        return String(cString: made)
    }

    // MARK: callbacks

    static func connection(_ ctx: OpaquePointer) -> Connection? {
        smfi_getpriv(ctx).map { Unmanaged<Connection>.fromOpaque($0).takeUnretainedValue() }
    }

    /// The reply for a step: none when the MTA agreed to skip replies for it.
    static func reply(_ ctx: OpaquePointer, step: UInt) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_CONTINUE }
        return connection.protocolFlags & step != 0 ? SMFIS_NOREPLY : SMFIS_CONTINUE
    }

    static func attach(_ ctx: OpaquePointer) -> Connection? {
        if let existing = connection(ctx) { return existing }
        guard let (gateway, spool) = state.withLock({ state in state.gateway.map { ($0, state.spoolDirectory) } }) else {
            return nil
        }
        let connection = Connection(gateway: gateway, spoolDirectory: spool)
        // Balanced by the one release in `close`.
        smfi_setpriv(ctx, Unmanaged.passRetained(connection).toOpaque())
        return connection
    }

    static func negotiate(
        _ ctx: OpaquePointer, _ offeredActions: UInt, _ offeredSteps: UInt,
        _ actionsOut: UnsafeMutablePointer<UInt>, _ stepsOut: UnsafeMutablePointer<UInt>,
        _ unused2: UnsafeMutablePointer<UInt>, _ unused3: UnsafeMutablePointer<UInt>
    ) -> sfsistat {
        guard offeredActions & actions == actions else {
            logger.error(
                "the MTA does not allow header and body changes (offered actions \(String(offeredActions, radix: 16))); use Postfix 2.6 or later with milter_protocol = 6")
            return SMFIS_REJECT
        }
        guard let connection = attach(ctx) else { return SMFIS_TEMPFAIL }
        connection.protocolFlags = offeredSteps & wantedProtocol
        actionsOut.pointee = actions
        stepsOut.pointee = connection.protocolFlags
        unused2.pointee = 0
        unused3.pointee = 0
        return SMFIS_CONTINUE
    }

    static func connect(_ ctx: OpaquePointer, _ name: UnsafeMutablePointer<CChar>?, _ address: UnsafeMutablePointer<sockaddr>?)
        -> sfsistat
    {
        guard let connection = attach(ctx) else { return SMFIS_TEMPFAIL }
        connection.clientName = name.map { String(cString: $0) }
        connection.clientAddress = address.flatMap(text(of:))
        connection.daemonName = symbol(ctx, "{daemon_name}")
        return reply(ctx, step: UInt(SMFIP_NR_CONN))
    }

    static func envelopeFrom(_ ctx: OpaquePointer, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_TEMPFAIL }
        if !connection.inMessage { messagesInFlight.enter() }
        let sender = argv[0].map { String(cString: $0) } ?? ""
        connection.startMessage(sender: String(sender.trimmingPrefix("<").prefix(while: { $0 != ">" })))
        connection.envelope.authType = symbol(ctx, "{auth_type}")
        connection.envelope.authLogin = symbol(ctx, "{auth_authen}")
        connection.envelope.queueID = symbol(ctx, "i")
        if connection.daemonName == nil { connection.daemonName = symbol(ctx, "{daemon_name}") }
        connection.envelope.daemonName = connection.daemonName
        return SMFIS_CONTINUE
    }

    static func envelopeRecipient(_ ctx: OpaquePointer, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_TEMPFAIL }
        if let recipient = argv[0].map({ String(cString: $0) }) {
            connection.envelope.recipients.append(String(recipient.trimmingPrefix("<").prefix(while: { $0 != ">" })))
        }
        return reply(ctx, step: UInt(SMFIP_NR_RCPT))
    }

    static func header(_ ctx: OpaquePointer, _ name: UnsafeMutablePointer<CChar>, _ value: UnsafeMutablePointer<CChar>) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_TEMPFAIL }
        let nameBytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(name).assumingMemoryBound(to: UInt8.self), count: strlen(name)))
        var valueBytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(value).assumingMemoryBound(to: UInt8.self), count: strlen(value)))
        if connection.protocolFlags & UInt(SMFIP_HDR_LEADSPC) == 0 { valueBytes.insert(0x20, at: 0) }
        let field = HeaderField(
            name: String(decoding: nameBytes, as: UTF8.self), rawValue: valueBytes, raw: nameBytes + [0x3A] + valueBytes + [0x0A])
        connection.headers.append(field)
        return reply(ctx, step: UInt(SMFIP_NR_HDR))
    }

    static func body(_ ctx: OpaquePointer, _ bytes: UnsafeMutablePointer<UInt8>, _ length: Int) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_TEMPFAIL }
        if connection.failure == nil {
            do {
                try connection.body.append(UnsafeRawBufferPointer(start: bytes, count: length))
            } catch {
                connection.failure = "\(error)"
            }
        }
        return reply(ctx, step: UInt(SMFIP_NR_BODY))
    }

    static func endOfMessage(_ ctx: OpaquePointer) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_TEMPFAIL }
        defer { finishMessage(connection) }
        if let queueID = symbol(ctx, "i") { connection.envelope.queueID = queueID }
        var logger = self.logger
        logger[metadataKey: "milter.queue_id"] = "\(connection.envelope.queueID ?? "NOQUEUE")"
        let started = connection.started ?? .now

        func decideAndApply() -> (Decision, sfsistat) {
            let decision = connection.failure.map { connection.gateway.internalError($0) } ?? decide(connection)
            return (decision, apply(decision, to: ctx, connection: connection, logger: logger))
        }
        // Until its new body is sent, a large message holds it in memory: both under the lock.
        let (decision, status) =
            connection.body.isSpooled && connection.failure == nil
            ? largeMessage.withLock { _ in decideAndApply() } : decideAndApply()
        let milliseconds = (ContinuousClock.now - started).components
        let elapsed = milliseconds.seconds * 1000 + milliseconds.attoseconds / 1_000_000_000_000_000
        let line = "\(connection.envelope.queueID ?? "NOQUEUE"): \(decision.summary) (\(elapsed) ms)"
        switch decision.outcome {
        case .failed: logger.warning("\(line)")
        default: logger.info("\(line)")
        }
        return status
    }

    static func decide(_ connection: Connection) -> Decision {
        do {
            let body = try connection.body.bytes()
            return connection.gateway.decide(envelope: connection.envelope, headers: connection.headers, body: body)
        } catch {
            return connection.gateway.internalError("\(error)")
        }
    }

    static func finishMessage(_ connection: Connection) {
        if connection.inMessage { messagesInFlight.leave() }
        connection.resetMessage()
    }

    static func abort(_ ctx: OpaquePointer) -> sfsistat {
        if let connection = connection(ctx) { finishMessage(connection) }
        return SMFIS_CONTINUE
    }

    static func close(_ ctx: OpaquePointer) -> sfsistat {
        guard let pointer = smfi_getpriv(ctx) else { return SMFIS_CONTINUE }
        smfi_setpriv(ctx, nil)
        let connection = Unmanaged<Connection>.fromOpaque(pointer).takeRetainedValue()
        finishMessage(connection)
        connection.close()
        return SMFIS_CONTINUE
    }

    // MARK: applying a decision

    /// Applies the decision through libmilter (`DecisionApplier` decides what to call).
    static func apply(_ decision: Decision, to ctx: OpaquePointer, connection: Connection, logger: Logger) -> sfsistat {
        let ending = DecisionApplier.apply(
            decision, to: LibmilterEditor(ctx: ctx), leadingSpace: connection.protocolFlags & UInt(SMFIP_HDR_LEADSPC) != 0,
            logger: logger)
        switch ending {
        case .accept: return SMFIS_CONTINUE
        case .tempfail: return SMFIS_TEMPFAIL
        case .reject: return SMFIS_REJECT
        }
    }

    static func setReply(_ ctx: OpaquePointer, code: String, enhanced: String, text: String) {
        LibmilterEditor(ctx: ctx).setReply(code: code, enhancedCode: enhanced, text: DecisionApplier.sanitized(text))
    }

    /// C strings for libmilter, whose prototypes say `char *` but which only read them.
    static func withC<R>(_ a: String, _ body: (UnsafeMutablePointer<CChar>) -> R) -> R {
        a.withCString { body(UnsafeMutablePointer(mutating: $0)) }
    }

    static func withC<R>(_ a: String, _ b: String, _ body: (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>) -> R) -> R {
        a.withCString { a in b.withCString { b in body(UnsafeMutablePointer(mutating: a), UnsafeMutablePointer(mutating: b)) } }
    }

    static func symbol(_ ctx: OpaquePointer, _ name: String) -> String? {
        guard let value = withC(name, { smfi_getsymval(ctx, $0) }) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }

    /// The client address in text form.
    static func text(of address: UnsafeMutablePointer<sockaddr>) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                var inAddr = v4.pointee.sin_addr
                return inet_ntop(AF_INET, &inAddr, &buffer, socklen_t(buffer.count)).map { String(cString: $0) }
            }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                var inAddr = v6.pointee.sin6_addr
                return inet_ntop(AF_INET6, &inAddr, &buffer, socklen_t(buffer.count)).map { String(cString: $0) }
            }
        default:
            return nil
        }
    }
}

/// The `smfi_*` modifications of one message's context.
struct LibmilterEditor: MessageEditor {
    let ctx: OpaquePointer

    func changeHeader(_ name: String, occurrence: Int, value: String?) -> Bool {
        guard let value else { return MilterServer.withC(name) { smfi_chgheader(ctx, $0, Int32(occurrence), nil) } == MI_SUCCESS }
        return MilterServer.withC(name, value) { smfi_chgheader(ctx, $0, Int32(occurrence), $1) } == MI_SUCCESS
    }

    func insertHeader(_ name: String, at index: Int, value: String) -> Bool {
        MilterServer.withC(name, value) { smfi_insheader(ctx, Int32(index), $0, $1) } == MI_SUCCESS
    }

    func addHeader(_ name: String, value: String) -> Bool {
        MilterServer.withC(name, value) { smfi_addheader(ctx, $0, $1) } == MI_SUCCESS
    }

    func replaceBody(_ piece: ArraySlice<UInt8>) -> Bool {
        guard !piece.isEmpty else { return smfi_replacebody(ctx, nil, 0) == MI_SUCCESS }
        return piece.withUnsafeBufferPointer {
            smfi_replacebody(ctx, UnsafeMutablePointer(mutating: $0.baseAddress!), Int32($0.count))
        } == MI_SUCCESS
    }

    func quarantine(_ reason: String) -> Bool {
        MilterServer.withC(reason) { smfi_quarantine(ctx, $0) } == MI_SUCCESS
    }

    func setReply(code: String, enhancedCode: String, text: String) {
        _ = MilterServer.withC(code, enhancedCode) { code, enhanced in
            MilterServer.withC(text) { smfi_setreply(ctx, code, enhanced, $0) }
        }
    }
}
