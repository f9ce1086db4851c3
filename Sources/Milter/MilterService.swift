internal import CShims
import Foundation
public import Gateway
public import Logging
import MIME
public import Monitoring
import Records
import Synchronization

/// Why the milter could not start (socket, user, spool, libmilter): one line for the log.
struct StartError: Error, CustomStringConvertible {
    let description: String
}

/// The running milter: one object with a lifecycle. `init` loads the configuration, `run`
/// starts it (socket, privileges, spool, signal and statistics threads, libmilter's loop) and
/// returns after a graceful stop; `reload` swaps the configuration; `stop` ends the loop and
/// lets messages in flight finish. Signals map to those methods in one place (`signalLoop`).
///
/// What happens to one message is here too, over a `Connection` and a `MessageEditor`, so it
/// runs without libmilter in the tests; `Libmilter` only turns C callbacks into these calls.
public final class MilterService: Sendable {
    public let configurationPath: String
    let logger: Logger

    private struct State {
        var gateway: Gateway
        /// The private directory for spooled bodies; made by `run` after privileges are dropped.
        var spoolDirectory: String
    }

    private let state: Mutex<State>
    /// Messages between MAIL FROM and their end: a graceful stop waits for this group.
    private let messagesInFlight = DispatchGroup()
    /// Messages whose body went to a spool file are decided and answered while their bodies
    /// together fit in `largeMessageBudget`, so that a burst of large messages costs the memory
    /// of what fits. Room is waited for with a deadline: no message waits longer than one
    /// holder's own work can take (its revocation budget or its signing timeout), then goes
    /// ahead without.
    private let largeMessages = LargeMessageGate(budget: largeMessageBudget)
    /// 40 MB of bodies: about 140 MB of memory at the peak while they are decided.
    static let largeMessageBudget = 40 << 20
    /// Signalled once when the main loop has ended: the statistics thread's last round.
    private let ended = DispatchSemaphore(value: 0)
    /// One record per message (`EventDatabase`), nil when records are off. Opened once per run:
    /// a reload that names another file takes effect at the next restart.
    let records: EventWriter?
    /// Metrics, health and systemd notifications; nil in tests that need none.
    let monitor: Monitor?
    /// Where the milter listens. Bound once per run: a reload that names another socket takes
    /// effect at the next restart.
    let socket: SocketSpec

    /// Loads the gateway for `configuration`, with the counters saved by the previous run.
    /// `spoolDirectory` is where bodies are spooled until `run()` makes its own directory in
    /// `SpoolDirectory` (the daemon gives `SpoolDirectory` itself).
    public init(
        configurationPath: String, configuration: Configuration, logger: Logger, spoolDirectory: String,
        monitor: Monitor? = nil
    ) throws {
        self.configurationPath = configurationPath
        self.logger = logger
        self.monitor = monitor
        socket = configuration.socket
        let statistics = Statistics(starting: (try? Statistics.read(from: Self.statisticsPath(configuration))) ?? .init())
        let gateway = try Gateway.load(configuration, statistics: statistics, logger: logger)
        state = Mutex(State(gateway: gateway, spoolDirectory: spoolDirectory))
        records = configuration.eventDatabasePath.map {
            EventWriter(
                path: $0, server: configuration.serverName, forwardTo: PostgresStore.Target(configuration),
                retentionDays: configuration.eventRetention, logger: logger)
        }
    }

    /// The gateway new connections get.
    public var gateway: Gateway { state.withLock { $0.gateway } }

    // MARK: lifecycle

    /// Runs the milter until `stop` (SIGTERM or SIGINT); returns after messages in flight have
    /// finished. SIGHUP, SIGTERM and SIGINT must already be blocked in the calling thread
    /// (`ProcessSetup.blockSignals`), before any other thread exists.
    public func run() throws {
        let configuration = gateway.configuration
        ProcessSetup.prepareMemory()
        try Libmilter.register(self)
        try Libmilter.openSocket(socket, umask: configuration.umask)
        if !Libmilter.setNoDelay(socket) {
            logger.warning("could not set TCP_NODELAY on \(socket): messages may wait 40 ms at each reply; a unix socket (local:/PATH) does not")
        }
        // Bound before privileges are dropped, like the milter socket.
        try monitor?.startServer(configuration.metricsListen) { [self] in scrape() }
        try ProcessSetup.dropPrivileges(configuration.userID, socket: socket, logger: logger)
        let spoolDirectory = try ProcessSetup.makeSpoolDirectory(in: configuration.spoolDirectory)
        state.withLock { $0.spoolDirectory = spoolDirectory }
        defer { try? FileManager.default.removeItem(atPath: spoolDirectory) }

        startThread("signals") { self.signalLoop() }
        startThread("statistics") { self.statisticsLoop() }
        if let monitor {
            // The probe feeds /healthz and the systemd watchdog; with neither there is no one to tell.
            if configuration.metricsListen != nil || monitor.notifier.isEnabled {
                startThread("health") { monitor.probeLoop(self.socket) { Monitor.status(self.gateway) } }
            }
            monitor.ready(status: Monitor.status(gateway))
        }
        logger.info(
            "smime-milter listening",
            metadata: [
                "milter.socket": "\(socket)", "milter.mode": "\(configuration.mode)",
                "milter.signing_entries": "\(gateway.signingTable?.entries.count ?? 0)",
                "milter.postfix": "smtpd_milters = \(socket.postfixForm)",
            ])
        let succeeded = Libmilter.main()
        ended.signal()
        monitor?.stop()
        waitForMessagesInFlight()
        saveStatistics()
        records?.stop()
        guard succeeded else { throw StartError(description: "libmilter's main loop failed; see the log lines before this") }
        logger.info("smime-milter stopped")
    }

    /// Loads the configuration again; connections already open keep the one they started with.
    /// A configuration that does not load is refused and the running one stays.
    public func reload() {
        let current = gateway
        monitor?.reloading()
        do {
            let configuration = try Configuration.load(path: configurationPath)
            if configuration.socket != socket {
                logger.warning("Socket changed in \(configurationPath); it takes effect at the next restart")
            }
            if configuration.eventDatabasePath != records?.path || configuration.serverName != records?.server
                || PostgresStore.Target(configuration) != records?.target
            {
                logger.warning("EventDatabase or ServerName changed in \(configurationPath); it takes effect at the next restart")
            }
            let gateway = try Gateway.load(
                configuration, statistics: current.statistics, tokenTracker: current.tokenTracker, logger: logger)
            if configuration.metricsListen != current.configuration.metricsListen {
                logger.warning("MetricsListen changed in \(configurationPath); it takes effect at the next restart")
            }
            state.withLock { $0.gateway = gateway }
            logger.info("configuration reloaded from \(configurationPath)")
            monitor?.reloaded(successfully: true, status: Monitor.status(gateway))
        } catch {
            logger.error("configuration reload refused, the previous one stays in use: \(error)")
            monitor?.reloaded(successfully: false, status: Monitor.status(current) + "; last reload refused: \(error)")
        }
    }

    /// Ends libmilter's loop: no new connections; `run` returns once messages in flight finished.
    public func stop() {
        logger.info("stopping: finishing messages in flight")
        monitor?.stopping()
        Libmilter.stop()
    }

    /// Waits at most `timeout` for the messages in flight; false when some are still going.
    @discardableResult
    public func waitForMessagesInFlight(timeout: Double = 120) -> Bool {
        if messagesInFlight.wait(timeout: .now() + timeout) == .timedOut {
            logger.warning("stopping with messages still in flight; the MTA will retry them")
            return false
        }
        return true
    }

    /// The signals the daemon answers, mapped to the lifecycle.
    private func signalLoop() {
        while let signal = ProcessSetup.nextSignal() {
            switch signal {
            case SIGHUP: reload()
            case SIGTERM, SIGINT: return stop()
            default: continue
            }
        }
    }

    private func startThread(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            smime_milter_name_thread(name)
            body()
        }
        thread.name = name
        thread.start()
    }

    // MARK: statistics

    static func statisticsPath(_ configuration: Configuration) -> String {
        configuration.stateDirectory + "/statistics.json"
    }

    /// Writes the counters every minute until the loop ends (the final write is `run`'s).
    private func statisticsLoop() {
        while ended.wait(timeout: .now() + 60) == .timedOut { saveStatistics() }
    }

    func saveStatistics() {
        let gateway = self.gateway
        let path = Self.statisticsPath(gateway.configuration)
        do {
            try gateway.statistics.write(to: path)
        } catch {
            logger.warning("cannot write \(path): \(error); create StateDirectory for the service user")
        }
    }

    /// What `/metrics` answers, read from the gateway in force and the records writer.
    func scrape() -> [UInt8] {
        guard let monitor else { return [] }
        let queue = records?.queueState
        return monitor.metrics.exposition(
            DaemonMetrics.ScrapeState(gateway: gateway, recordsWaiting: queue?.waiting, recordsDropped: queue?.dropped))
    }

    // MARK: one message

    /// A connection from the MTA, with the gateway of the configuration in force now.
    func connection() -> Connection {
        let (gateway, spool) = state.withLock { ($0.gateway, $0.spoolDirectory) }
        return Connection(service: self, gateway: gateway, spoolDirectory: spool)
    }

    /// MAIL FROM: a new message on the connection.
    func startMessage(_ connection: Connection, sender: String) {
        if !connection.inMessage {
            messagesInFlight.enter()
            monitor?.metrics.messageStarted()
        }
        connection.startMessage(sender: sender)
    }

    /// End of message: decides, applies the decision through `editor`, logs one line, and
    /// says how the message ends.
    func endMessage(_ connection: Connection, editor: some MessageEditor, leadingSpace: Bool) -> MessageEnding {
        defer { finishMessage(connection) }
        var logger = self.logger
        logger[metadataKey: "milter.queue_id"] = "\(connection.envelope.queueID ?? "NOQUEUE")"
        let started = connection.started ?? .now

        var deciding = Duration.zero
        func decideAndApply() -> (Decision, MessageEnding) {
            let start = ContinuousClock.now
            let decision = connection.failure.map { connection.gateway.internalError($0) } ?? decide(connection)
            deciding = .now - start
            return (decision, DecisionApplier.apply(decision, to: editor, leadingSpace: leadingSpace, logger: logger))
        }
        // Until its new body is sent, a large message holds it in memory: both within the gate.
        let (decision, ending): (Decision, MessageEnding)
        if connection.body.isSpooled && connection.failure == nil {
            let configuration = connection.gateway.configuration
            let longest = max(configuration.signingTimeout, configuration.crlFetchTimeout) + 1
            let size = connection.body.count
            let admitted = largeMessages.admit(size, before: Date(timeIntervalSinceNow: TimeInterval(longest)))
            if !admitted { logger.notice("other large messages still held their memory after \(longest) s; deciding this one anyway") }
            defer { if admitted { largeMessages.release(size) } }
            (decision, ending) = decideAndApply()
        } else {
            (decision, ending) = decideAndApply()
        }
        if let event = decision.event {
            records?.record(
                event.ended(deferred: ending == .tempfail, rejected: ending == .reject, why: decision.reply.disposition == .accept ? "refused by the MTA" : nil))
        }
        let total = ContinuousClock.now - started
        monitor?.metrics.messageEnded(
            decision, total: total, deciding: deciding, spooledBytes: connection.body.isSpooled ? connection.body.count : 0)
        let elapsed = total.components
        let line = "\(decision.summary) (\(elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000) ms)"
        switch decision.outcome {
        case .failed: logger.warning("\(line)")
        default: logger.info("\(line)")
        }
        return ending
    }

    private func decide(_ connection: Connection) -> Decision {
        do {
            return connection.gateway.decide(envelope: connection.envelope, headers: connection.headers, body: try connection.body.bytes())
        } catch {
            return connection.gateway.internalError("\(error)")
        }
    }

    /// Abort, end of message or close: the message, if any, is no longer in flight.
    func finishMessage(_ connection: Connection) {
        if connection.inMessage {
            messagesInFlight.leave()
            monitor?.metrics.messageFinished()
        }
        connection.resetMessage()
    }
}
