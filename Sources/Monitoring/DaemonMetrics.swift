public import Foundation
public import Gateway
import Prometheus
import SMIME
import Synchronization

/// The daemon's metrics in Prometheus's text exposition, all named `smime_milter_*`.
///
/// Two kinds: what the message path measures (latency histograms, messages in flight,
/// verifications by result) lives in one long-lived `PrometheusCollectorRegistry` and costs an
/// atomic add per message; what the daemon already keeps (the per-unit `Statistics`, the records
/// queue, the configuration's age) is read once per scrape into a registry made for that scrape,
/// so nothing is counted twice and a value that went away is not exported stale.
///
/// Labels are bounded: a unit label is a name of the `Units` table or a local domain, and any
/// other unit (a sender's own domain) is exported as `other`. Addresses, subjects and queue IDs
/// are never labels.
public final class DaemonMetrics: Sendable {
    /// What a scrape reads besides the registry: filled in by the daemon when `/metrics` is asked.
    public struct ScrapeState: Sendable {
        public var gateway: Gateway
        public var recordsWaiting: Int?
        public var recordsDropped: Int?

        public init(gateway: Gateway, recordsWaiting: Int?, recordsDropped: Int?) {
            self.gateway = gateway
            self.recordsWaiting = recordsWaiting
            self.recordsDropped = recordsDropped
        }
    }

    public static let prefix = "smime_milter"

    private let registry = PrometheusCollectorRegistry()
    private let version: String
    private let signingDuration: DurationHistogram
    private let messageDuration: DurationHistogram
    private let inFlight: Gauge
    private let spooled: Counter
    private let lastReload: Gauge
    private let lastReloadSuccess: Gauge
    private let verifications = Mutex<[String: Counter]>([:])
    /// The series a scrape reads from the daemon's state, kept from one scrape to the next.
    private let scrapeSeries = Mutex(ScrapeSeries())
    /// Certificates already parsed, by DER or by `cert=`/`chain=` file: a scrape parses each once.
    private let certificates = Mutex<[String: [Certificate]]>([:])
    /// The CRL cache as last read (it is read from disk at most every 30 s, not at every scrape).
    private let revocation = Mutex<(at: Date, directory: String, entries: [CRLCache.Entry])?>(nil)

    /// Seconds, from a fast local signature to a USB token's slow one and a timed-out message.
    static let buckets: [Duration] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30].map {
        .nanoseconds(Int64($0 * 1e9))
    }

    public init(version: String) {
        self.version = version
        signingDuration = registry.makeDurationHistogram(
            descriptor: Self.name("signing_duration", "seconds", "Time to sign one message, token call included."),
            buckets: Self.buckets)
        messageDuration = registry.makeDurationHistogram(
            descriptor: Self.name("message_duration", "seconds", "Time from MAIL FROM to the end-of-message reply."),
            buckets: Self.buckets)
        inFlight = registry.makeGauge(
            descriptor: Self.name("messages_in_flight", "", "Messages between MAIL FROM and their end."))
        spooled = registry.makeCounter(
            descriptor: Self.name("spooled_bytes", "total", "Bytes of message bodies written to spool files (SpoolThreshold)."))
        lastReload = registry.makeGauge(
            descriptor: Self.name(
                "config_last_reload", "timestamp_seconds", "When the configuration was last loaded or a reload was tried."))
        lastReloadSuccess = registry.makeGauge(
            descriptor: Self.name("config_last_reload_successful", "", "1 when the last load or reload succeeded, else 0."))
        registry.makeGauge(
            descriptor: Self.name("build_info", "", "The daemon's version; always 1."), labels: [("version", version)]
        ).set(to: 1)
        configurationLoaded(successfully: true)
    }

    static func name(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: prefix, metricName: name, unitName: unit, helpText: help)
    }

    // MARK: the message path

    public func messageStarted() { inFlight.increment() }
    public func messageFinished() { inFlight.decrement() }

    /// One message decided: its whole time and, when it was signed, how long deciding took;
    /// `spooledBytes` is its body's size when the body went to a spool file, else 0.
    public func messageEnded(_ decision: Decision, total: Duration, deciding: Duration, spooledBytes: Int) {
        messageDuration.record(total)
        if spooledBytes > 0 { spooled.increment(by: Int64(spooledBytes)) }
        switch decision.outcome {
        case .signed: signingDuration.record(deciding)
        case .verified(let verdict), .signedBySender(let verdict): verification(verdict.result.rawValue).increment()
        default: break
        }
    }

    private func verification(_ result: String) -> Counter {
        verifications.withLock { counters in
            if let counter = counters[result] { return counter }
            let counter = registry.makeCounter(
                descriptor: Self.name("verifications", "total", "Signatures verified, by result (pass, fail, policy, ...)."),
                labels: [("result", result)])
            counters[result] = counter
            return counter
        }
    }

    /// A configuration load or reload was tried.
    public func configurationLoaded(successfully: Bool, at date: Date = Date()) {
        lastReload.set(to: date.timeIntervalSince1970)
        lastReloadSuccess.set(to: successfully ? 1 : 0)
    }

    // MARK: a scrape

    /// The whole exposition: the message path's registry, then what `state` says now.
    public func exposition(_ state: ScrapeState, now: Date = Date()) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        registry.emit(into: &buffer)
        // Files and DER are read and parsed before the lock: a slow disk delays this scrape only.
        let certificates = signerCertificates(state.gateway)
        let crls = revocationEntries(state.gateway.configuration, now: now)
        scrapeSeries.withLock { scrape in
            Self.collect(state, into: scrape, now: now)
            Self.collectSigners(state.gateway, certificates, into: scrape)
            Self.collectRevocation(state.gateway.configuration, crls, into: scrape)
            scrape.sweep()
            scrape.registry.emit(into: &buffer)
        }
        return buffer
    }

    static func collect(_ state: ScrapeState, into registry: ScrapeSeries, now: Date) {
        let gateway = state.gateway
        let known = Self.knownUnits(gateway)
        let messages = name(
            "messages", "total",
            "Messages by direction, outcome, reason and unit (units outside the Units table and local domains count as other).")
        // Summed first: several units outside the table fold into `other`.
        var counts: [[String]: Int] = [:]
        for (unit, counters) in gateway.statistics.snapshot.units {
            let unitLabel = unit == "(unknown)" ? "unknown" : known.contains(unit) ? unit : "other"
            for (counter, count) in counters {
                let (direction, outcome, reason) = Self.split(counter)
                counts[[direction, outcome, reason, unitLabel], default: 0] += count
            }
        }
        for (labels, count) in counts {
            registry.makeCounter(
                descriptor: messages,
                labels: [("direction", labels[0]), ("outcome", labels[1]), ("reason", labels[2]), ("unit", labels[3])]
            ).increment(by: Int64(count))
        }
        registry.makeGauge(descriptor: name("units", "", "Units the Units table names.")).set(
            Double(gateway.units?.names.count ?? 0))
        registry.makeGauge(descriptor: name("signing_entries", "", "Lines of the signing table.")).set(
            Double(gateway.signingTable?.entries.count ?? 0))
        if let waiting = state.recordsWaiting {
            registry.makeGauge(descriptor: name("records_queue_depth", "", "Message records waiting to be written.")).set(
                Double(waiting))
        }
        if let dropped = state.recordsDropped {
            registry.makeCounter(
                descriptor: name("records_dropped", "total", "Message records dropped because the writer could not keep up.")
            ).increment(by: Int64(dropped))
        }
    }

    /// Per signing-table entry (by its index in the table): its certificate and the CA
    /// certificates of its chain, from what the token last showed or else from its files.
    func signerCertificates(_ gateway: Gateway) -> [(signer: [Certificate], chain: [Certificate])] {
        guard let table = gateway.signingTable else { return [] }
        let reports = Dictionary(gateway.tokenTracker.snapshot.map { ($0.line, $0) }, uniquingKeysWith: { a, _ in a })
        return table.entries.map { entry in
            if let report = reports[entry.line], let der = report.certificate {
                return (parsed(der: der), report.chain.flatMap(parsed(der:)))
            }
            return (entry.certificate.map(parsed(file:)) ?? [], entry.chain.map(parsed(file:)) ?? [])
        }
    }

    /// Per signing-table line: its token's state and signatures (as `TokenTracker` saw them),
    /// and when its certificate and each CA certificate of its chain expire (`certificates`,
    /// from `signerCertificates`).
    static func collectSigners(
        _ gateway: Gateway, _ certificates: [(signer: [Certificate], chain: [Certificate])], into registry: ScrapeSeries
    ) {
        guard let table = gateway.signingTable else { return }
        let reports = Dictionary(gateway.tokenTracker.snapshot.map { ($0.line, $0) }, uniquingKeysWith: { a, _ in a })
        let stateName = Self.name(
            "token_state", "", "1 for the state a token's last signature or failure showed (ok, count low, final try, locked, PIN refused, stuck, absent), else 0.")
        let signaturesName = Self.name("token_signatures", "total", "Signatures made with a signing-table line's key since the daemon started.")
        let expiryName = Self.name(
            "certificate_expiry", "timestamp_seconds", "When a signing certificate (role signer) or a CA certificate of its chain (role ca) expires.")
        var expiries: [[String]: Double] = [:]
        for (index, entry) in table.entries.enumerated() {
            let unit = Self.unit(of: entry, gateway)
            let report = reports[entry.line]
            let token = report?.token ?? TokenTracker.tokenLabel(entry)
            if let report {
                for state in TokenTracker.State.allCases {
                    registry.makeGauge(
                        descriptor: stateName, labels: [("unit", unit), ("token", token), ("state", state.rawValue)]
                    ).set(to: report.state == state ? 1 : 0)
                }
                registry.makeCounter(descriptor: signaturesName, labels: [("unit", unit), ("token", token)]).increment(
                    by: Int64(report.signatures))
            }
            if let calls = gateway.tokenCallsInFlight(line: entry.line) {
                registry.makeGauge(
                    descriptor: Self.name("token_sessions_in_use", "", "Token calls running now for a signing-table line, one session each."),
                    labels: [("unit", unit), ("token", token)]
                ).set(to: Double(calls))
            }
            let (signer, chain) = index < certificates.count ? certificates[index] : ([], [])
            for (role, certificates) in [("signer", Array(signer.prefix(1))), ("ca", chain)] {
                for certificate in certificates {
                    expiries[[unit, token, certificate.serial, role]] = certificate.notAfter.timeIntervalSince1970
                }
            }
        }
        for (labels, expiry) in expiries {
            registry.makeGauge(
                descriptor: expiryName, labels: [("unit", labels[0]), ("token", labels[1]), ("serial", labels[2]), ("role", labels[3])]
            ).set(to: expiry)
        }
    }

    /// The CRL cache's entries, read from disk at most every 30 s.
    func revocationEntries(_ configuration: Configuration, now: Date) -> [CRLCache.Entry] {
        let directory = configuration.stateDirectory + "/crl-cache"
        if let last = revocation.withLock({ $0 }), last.directory == directory, now.timeIntervalSince(last.at) < 30 {
            return last.entries
        }
        let entries = FileManager.default.fileExists(atPath: directory) ? CRLCache.entries(directory: directory) : []
        revocation.withLock { $0 = (now, directory, entries) }
        return entries
    }

    /// Per CRL the daemon keeps (by issuing CA and URL): its nextUpdate, when it was last
    /// fetched, and the fetches that failed since; and `CRLGracePeriod`, for the alert rules.
    /// Only CRLs kept for an issuer are exported: the cache also records failures for URLs that
    /// incoming certificates name (CA issuers, CRLs never fetched), and series keyed by what
    /// senders choose would grow without bound.
    static func collectRevocation(_ configuration: Configuration, _ entries: [CRLCache.Entry], into registry: ScrapeSeries) {
        registry.makeGauge(
            descriptor: Self.name("crl_grace_period", "seconds", "CRLGracePeriod: how long past its nextUpdate a CRL is still used.")
        ).set(to: Double(configuration.crlGracePeriod))
        for entry in entries {
            guard let issuer = entry.issuer else { continue }
            let labels = [("ca", issuer), ("url", entry.url)]
            if let next = entry.nextUpdate {
                registry.makeGauge(
                    descriptor: Self.name("crl_next_update", "timestamp_seconds", "The nextUpdate of the CRL kept for a CA."),
                    labels: labels
                ).set(to: next.timeIntervalSince1970)
            }
            if let fetched = entry.fetchedAt {
                registry.makeGauge(
                    descriptor: Self.name("crl_last_fetch", "timestamp_seconds", "When the CRL kept for a CA was last fetched."),
                    labels: labels
                ).set(to: fetched.timeIntervalSince1970)
            }
            registry.makeGauge(
                descriptor: Self.name(
                    "revocation_fetch_failures", "", "CRL or OCSP fetches from a URL that failed since its last success."),
                labels: labels
            ).set(to: Double(entry.failures))
        }
    }

    private func parsed(der: [UInt8]) -> [Certificate] {
        let key = der.withUnsafeBytes { Data($0) }.base64EncodedString()
        if let known = certificates.withLock({ $0[key] }) { return known }
        let made = (try? Certificate(der: der)).map { [$0] } ?? []
        remember(key, made)
        return made
    }

    private func parsed(file path: String) -> [Certificate] {
        if let known = certificates.withLock({ $0["file:" + path] }) { return known }
        let made = (try? Certificate.load(pemFile: path)) ?? []
        remember("file:" + path, made)
        return made
    }

    private func remember(_ key: String, _ certificates: [Certificate]) {
        self.certificates.withLock { cache in
            // Bounded: a configuration names tens of certificates; reloads may bring new ones.
            if cache.count > 1000 { cache.removeAll() }
            cache[key] = certificates
        }
    }

    /// A signing-table line's unit: the unit of an address its pattern matches.
    static func unit(of entry: SigningTable.Entry, _ gateway: Gateway) -> String {
        var pattern = entry.pattern
        if pattern == "*" { return "other" }
        if pattern.hasPrefix("*@.") { pattern = "*@" + pattern.dropFirst(3) }
        if pattern.hasPrefix("*@") { pattern = "postmaster@" + pattern.dropFirst(2) }
        return gateway.unit(of: pattern)
    }

    /// Unit names that may be labels: the Units table's names and the local domains.
    static func knownUnits(_ gateway: Gateway) -> Set<String> {
        Set(gateway.units?.names ?? []).union(gateway.localDomains)
    }

    /// `signed`, `skipped.bounce`, `verified.pass`, `failed.token`, `sender-signed.pass` as
    /// direction, outcome and reason.
    static func split(_ counter: String) -> (direction: String, outcome: String, reason: String) {
        let parts = counter.split(separator: ".", maxSplits: 1).map(String.init)
        let outcome = parts[0]
        let reason = parts.count > 1 ? parts[1] : ""
        let incoming = outcome == "verified" || (outcome == "skipped" && reason == "incoming")
        return (incoming ? "incoming" : "outgoing", outcome, reason)
    }
}

/// The series read at scrape time, in a registry of their own that lives from one scrape to the
/// next: a series seen again only gets its new value (no allocation), and one a scrape no longer
/// sees (a unit or CRL that went away with a reload) is unregistered, never exported stale.
final class ScrapeSeries {
    let registry = PrometheusCollectorRegistry()
    private var gauges: [String: Gauge] = [:]
    private var counters: [String: Counter] = [:]
    private var seen: Set<String> = []

    private static func key(_ descriptor: MetricNameDescriptor, _ labels: [(String, String)]) -> String {
        labels.reduce(descriptor.name) { $0 + "\u{0}" + $1.0 + "\u{0}" + $1.1 }
    }

    func makeGauge(descriptor: MetricNameDescriptor, labels: [(String, String)] = []) -> Gauge {
        let key = Self.key(descriptor, labels)
        seen.insert(key)
        if let gauge = gauges[key] { return gauge }
        let gauge =
            labels.isEmpty ? registry.makeGauge(descriptor: descriptor) : registry.makeGauge(descriptor: descriptor, labels: labels)
        gauges[key] = gauge
        return gauge
    }

    /// The counter, at 0: the caller adds the count it read.
    func makeCounter(descriptor: MetricNameDescriptor, labels: [(String, String)] = []) -> Counter {
        let key = Self.key(descriptor, labels)
        seen.insert(key)
        let counter: Counter
        if let existing = counters[key] {
            counter = existing
        } else {
            counter =
                labels.isEmpty
                ? registry.makeCounter(descriptor: descriptor) : registry.makeCounter(descriptor: descriptor, labels: labels)
            counters[key] = counter
        }
        counter.reset()
        return counter
    }

    /// Unregisters what this scrape did not see; the next scrape starts afresh.
    func sweep() {
        for (key, gauge) in gauges where !seen.contains(key) {
            registry.unregisterGauge(gauge)
            gauges[key] = nil
        }
        for (key, counter) in counters where !seen.contains(key) {
            registry.unregisterCounter(counter)
            counters[key] = nil
        }
        seen.removeAll(keepingCapacity: true)
    }
}
