public import Foundation
public import Gateway
public import Logging
import Synchronization

/// What the daemon tells its watchers: the metrics endpoint (`MetricsListen`), `/healthz`, and
/// systemd (READY, STATUS, RELOADING, WATCHDOG).
///
/// The health of the milter loop comes from `MilterProbe`, run on a thread of its own every
/// `probeInterval` (half the systemd watchdog interval, else 10 s): `WATCHDOG=1` is sent only
/// after a probe the loop answered, so a wedged loop stops the keep-alives and systemd restarts
/// the daemon; `/healthz` reports the last probe.
public final class Monitor: Sendable {
    public let metrics: DaemonMetrics
    public let notifier: SystemdNotifier
    private let logger: Logger
    private let server = Mutex<MetricsServer?>(nil)
    /// The last probe: when, and what was wrong (nil: the loop answered).
    private let lastProbe = Mutex<(at: Date, problem: String?)?>(nil)
    private let stopped = DispatchSemaphore(value: 0)

    public init(version: String, logger: Logger, notifier: SystemdNotifier = SystemdNotifier()) {
        metrics = DaemonMetrics(version: version)
        self.notifier = notifier
        self.logger = logger
    }

    /// Seconds between probes of the milter loop.
    public var probeInterval: Double { notifier.watchdogInterval.map { min($0, 10) } ?? 10 }

    /// Opens `MetricsListen`, when set. Throws the clear error a taken port gets.
    public func startServer(_ spec: SocketSpec?, exposition: @escaping MetricsServer.Exposition) throws {
        guard let spec else { return }
        let started = try MetricsServer(spec: spec, exposition: exposition, health: { [self] in health() })
        server.withLock { $0 = started }
        logger.info("metrics served", metadata: ["monitoring.listen": "\(spec)"])
    }

    /// `/healthz`: the milter loop answered the last probe, and that probe is recent.
    public func health(now: Date = Date()) -> Health {
        guard let probe = lastProbe.withLock({ $0 }) else {
            return Health(ok: false, reason: "starting: the milter loop has not been probed yet")
        }
        if let problem = probe.problem { return Health(ok: false, reason: problem) }
        let age = now.timeIntervalSince(probe.at)
        if age > 3 * probeInterval + 5 {
            return Health(ok: false, reason: "the milter loop was last seen answering \(Int(age)) s ago")
        }
        return Health(ok: true, reason: "")
    }

    /// The socket is open and privileges are dropped.
    public func ready(status: String) {
        notifier.notify("READY=1\nSTATUS=\(Self.oneLine(status))\nMAINPID=\(getpid())")
    }

    public func reloading() {
        // sd_notify(3): RELOADING=1 carries the monotonic time since Type=notify-reload.
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        notifier.notify("RELOADING=1\nMONOTONIC_USEC=\(UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000)")
    }

    public func reloaded(successfully: Bool, status: String) {
        metrics.configurationLoaded(successfully: successfully)
        notifier.notify("READY=1\nSTATUS=\(Self.oneLine(status))")
    }

    public func stopping() {
        notifier.notify("STOPPING=1\nSTATUS=stopping: finishing messages in flight")
    }

    /// Probes `socket` until `stop`; sends WATCHDOG=1 after each probe the loop answered, and
    /// STATUS= whenever `status` (the gateway in force, its tokens as mail found them) changes.
    public func probeLoop(_ socket: SocketSpec, status: @escaping @Sendable () -> String) {
        var lastStatus = status()
        repeat {
            let current = status()
            if current != lastStatus {
                lastStatus = current
                notifier.notify("STATUS=\(Self.oneLine(current))")
            }
            let problem = MilterProbe.problem(socket, timeout: max(1, min(probeInterval, 5)))
            let previous = lastProbe.withLock { last in
                defer { last = (Date(), problem) }
                return last
            }
            if let problem {
                if previous == nil || previous?.problem == nil {
                    logger.error("health: \(problem); systemd keep-alives stop until it answers again")
                }
            } else {
                if let earlier = previous?.problem { logger.info("health: the milter loop answers again (was: \(earlier))") }
                if notifier.watchdogInterval != nil { notifier.notify("WATCHDOG=1") }
            }
        } while stopped.wait(timeout: .now() + probeInterval) == .timedOut
    }

    /// Ends the probe loop and the metrics endpoint.
    public func stop() {
        stopped.signal()
        let current = server.withLock { server in
            defer { server = nil }
            return server
        }
        current?.stop()
    }

    /// A notify message is `KEY=VALUE` lines: a value must not start another.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }

    /// `systemctl status`'s line: what the daemon does with the configuration in force.
    public static func status(_ gateway: Gateway) -> String {
        let configuration = gateway.configuration
        var parts: [String] = []
        if configuration.signs {
            let entries = gateway.signingTable?.entries.count ?? 0
            if let units = gateway.units?.names.count {
                parts.append("signing for \(units) unit\(units == 1 ? "" : "s") (\(entries) signing-table line\(entries == 1 ? "" : "s"))")
            } else {
                parts.append("signing with \(entries) signing-table line\(entries == 1 ? "" : "s")")
            }
        }
        let tokens = gateway.tokenTracker.snapshot.filter { $0.token != "file" }
        if !tokens.isEmpty {
            let counts = Dictionary(grouping: tokens, by: \.state).mapValues(\.count)
            let text = TokenTracker.State.allCases.compactMap { state in counts[state].map { "\($0) \(state.rawValue)" } }
            parts.append("tokens: " + text.joined(separator: ", "))
        }
        if configuration.verifies { parts.append("verifying incoming mail") }
        return parts.joined(separator: "; ")
    }
}
