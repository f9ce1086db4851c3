internal import COpenSSL
public import Foundation
import Logging
import Synchronization

/// What the verifier downloads (CRLs, OCSP answers, CA certificates), kept so that a message
/// never waits on a CA's web server that was already asked.
///
/// - An item is kept until it is no longer valid (a CRL's nextUpdate, plus the grace period the
///   caller allows); CRLs are also written to the directory, so a restart finds them.
/// - At most one download per URL is in flight; every message that needs it waits for that one.
/// - A URL that failed is not asked again for a back-off period that doubles with each failure,
///   up to a cap; messages meanwhile get the failure at once.
/// - Downloads run on threads of their own, so a message stops waiting at its deadline and the
///   download, still going, fills the cache for the next one.
/// - Items that know how to fetch themselves again are refreshed in the background before they
///   run out.
///
/// One cache per state directory for the life of the process: reloads keep what was fetched and
/// what failed.
final class FetchCache: @unchecked Sendable {
    // @unchecked: every stored var is guarded by `condition`.

    enum Value {
        case crl(CRLHandle)
        case ocsp(OCSPAnswer)
        case certificates([X509Handle])
    }

    struct Item {
        let value: Value
        /// The DER as fetched; written to disk when `persist`.
        let bytes: [UInt8]
        let fetchedAt: Date
        /// When the data stops being current (nextUpdate); nil when it does not say.
        let validUntil: Date?
        let persist: Bool
        /// For a CRL: the CA certificate it was checked against, kept with it so that it can be
        /// fetched and checked again after a restart.
        var issuer: X509Handle? = nil
    }

    /// Downloads the CRL at `url` and accepts it only when `issuer` issued it (name and signature).
    static func crlDownload(_ url: String, issuer: X509Handle, timeout: Int, maximumBytes: Int)
        -> @Sendable () throws -> Item
    {
        {
            let bytes = try HTTPFetch.get(url, timeout: timeout, maximumBytes: maximumBytes)
            guard let crl = CRLHandle.parse(bytes).first else {
                throw SMIMEError("\(url) did not answer with a CRL", code: .fetch, hint: "check the distribution point")
            }
            guard crl.isIssued(by: issuer.pointer) else {
                throw SMIMEError(
                    "the CRL at \(url) is not signed by \(Certificate.text(X509_get_subject_name(issuer.pointer)))",
                    code: .fetch,
                    hint: "it is not used")
            }
            return Item(
                value: .crl(crl), bytes: bytes, fetchedAt: Date(), validUntil: crl.nextUpdate, persist: true,
                issuer: issuer)
        }
    }

    /// What `smime-milter crl` shows for one URL.
    struct Status {
        let key: String
        let fetchedAt: Date?
        let validUntil: Date?
        let failures: Int
        let lastError: String?
        let retryAt: Date?
        let inFlight: Bool
    }

    struct Failure {
        var count: Int
        var error: String
        var retryAt: Date
        /// The back-off that `retryAt` came from.
        var delay: TimeInterval = 0
    }

    let directory: String?
    let backoffBase: TimeInterval
    let backoffCap: TimeInterval
    private let logger: Logger
    private let condition = NSCondition()
    private var items: [String: Item] = [:]
    private var failures: [String: Failure] = [:]
    /// Downloads under way, and when each started.
    private var inFlight: [String: Date] = [:]
    private var refreshers: [String: @Sendable () throws -> Item] = [:]

    private static let shared = Mutex<[String: FetchCache]>([:])

    /// The process's cache for `directory` (nil: memory only, a new cache each time).
    static func at(
        _ directory: String?, backoffBase: TimeInterval = 30, backoffCap: TimeInterval = 900,
        logger: Logger = Logger(label: "smime-milter.trust")
    ) -> FetchCache {
        guard let directory else {
            return FetchCache(directory: nil, backoffBase: backoffBase, backoffCap: backoffCap, logger: logger)
        }
        return shared.withLock { all in
            if let existing = all[directory] {
                existing.loadFromDisk()
                return existing
            }
            let made = FetchCache(directory: directory, backoffBase: backoffBase, backoffCap: backoffCap, logger: logger)
            all[directory] = made
            return made
        }
    }

    init(
        directory: String?, backoffBase: TimeInterval, backoffCap: TimeInterval, logger: Logger, refreshing: Bool = true
    ) {
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.logger = logger
        if let directory {
            try? FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        self.directory = directory.flatMap { FileManager.default.isWritableFile(atPath: $0) ? $0 : nil }
        loadFromDisk()
        if refreshing { startRefresher() }
    }

    // MARK: asking

    /// The item for `key`, current or not (the caller judges validity and grace).
    func item(_ key: String) -> Item? {
        condition.lock()
        defer { condition.unlock() }
        return items[key]
    }

    /// Why `key` has no item now, when it failed and is backing off.
    func failure(_ key: String) -> Failure? {
        condition.lock()
        defer { condition.unlock() }
        guard let failure = failures[key], failure.retryAt > Date() else { return nil }
        return failure
    }

    func isInFlight(_ key: String) -> Bool {
        startOfFlight(key) != nil
    }

    /// When the download of `key` under way started, if one is.
    func startOfFlight(_ key: String) -> Date? {
        condition.lock()
        defer { condition.unlock() }
        return inFlight[key]
    }

    /// Starts fetching `key` on a thread of its own, unless it is in flight or backing off.
    /// `refresh` says whether the item, once fetched, is fetched again in the background
    /// before it runs out.
    func start(_ key: String, refresh: Bool = true, _ download: @escaping @Sendable () throws -> Item) {
        condition.lock()
        defer { condition.unlock() }
        if inFlight[key] != nil { return }
        if let failure = failures[key], failure.retryAt > Date() { return }
        inFlight[key] = Date()
        if refresh { refreshers[key] = download }
        let thread = Thread { [self] in
            let result = Result { try download() }
            finish(key, result)
        }
        thread.name = "fetch"
        thread.start()
    }

    private func finish(_ key: String, _ result: Result<Item, any Error>) {
        // The list is on disk before anyone waiting for it is woken (a command that exits right
        // after its verdict must leave it behind), and written outside the lock: a 5 MB list must
        // not hold up messages reading the cache.
        if case .success(let item) = result, item.persist { write(key, item) }
        condition.lock()
        inFlight[key] = nil
        var failuresChanged = false
        switch result {
        case .success(let item):
            items[key] = item
            if failures.removeValue(forKey: key) != nil {
                failuresChanged = true
                logger.notice("fetched again after failures", metadata: ["smime.url": "\(key)"])
            }
        case .failure(let error):
            var failure = failures[key] ?? Failure(count: 0, error: "", retryAt: Date())
            failure.count += 1
            failure.error = "\(error)"
            let delay = min(backoffCap, backoffBase * pow(2, Double(failure.count - 1)))
            failure.retryAt = Date(timeIntervalSinceNow: delay)
            failure.delay = delay
            failures[key] = failure
            failuresChanged = true
            logger.warning(
                "fetch failed; not tried again for \(Int(delay)) s",
                metadata: ["smime.url": "\(key)", "smime.error": "\(error)", "smime.failures": "\(failure.count)"])
        }
        let failureRecords =
            failuresChanged
            ? failures.mapValues { FailureRecord(count: $0.count, error: $0.error, retryAt: $0.retryAt) } : nil
        condition.broadcast()
        condition.unlock()
        if let failureRecords { writeFailures(failureRecords) }
    }

    /// Waits until `done()` holds (checked whenever a download ends) or `deadline` passes.
    func wait(until deadline: Date, _ done: () -> Bool) {
        condition.lock()
        defer { condition.unlock() }
        while true {
            condition.unlock()
            let finished = done()
            condition.lock()
            if finished || !condition.wait(until: deadline) { return }
        }
    }

    /// Every URL known, for `smime-milter crl`.
    func statuses() -> [Status] {
        condition.lock()
        defer { condition.unlock() }
        let keys = Set(items.keys).union(failures.keys).union(inFlight.keys)
        return keys.sorted().map { key in
            Status(
                key: key, fetchedAt: items[key]?.fetchedAt, validUntil: items[key]?.validUntil,
                failures: failures[key]?.count ?? 0, lastError: failures[key]?.error, retryAt: failures[key]?.retryAt,
                inFlight: inFlight[key] != nil)
        }
    }

    // MARK: background refresh

    /// Every minute, items that know how to fetch themselves and run out within the next
    /// quarter of their life (or an hour, whichever is shorter) are fetched again.
    private func startRefresher() {
        let thread = Thread { [weak self] in
            while true {
                Thread.sleep(forTimeInterval: 60)
                guard let self else { return }
                self.loadFromDisk()
                self.refreshDue()
            }
        }
        thread.name = "fetch refresh"
        thread.start()
    }

    func refreshDue(now: Date = Date()) {
        condition.lock()
        let due = refreshers.filter { key, _ in
            guard let item = items[key], let until = item.validUntil else { return items[key] == nil }
            let ahead = min(3600, max(60, until.timeIntervalSince(item.fetchedAt) / 4))
            return until.timeIntervalSince(now) < ahead
        }
        condition.unlock()
        for (key, download) in due { start(key, download) }
    }

    // MARK: disk

    private func fileBase(_ key: String) -> String? {
        guard let directory else { return nil }
        var digest = [UInt8](repeating: 0, count: 32)
        let bytes = Array(key.utf8)
        _ = EVP_Digest(bytes, bytes.count, &digest, nil, EVP_sha256(), nil)
        return directory + "/" + digest.prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    private struct Record: Codable {
        var key: String
        var fetchedAt: Date
        var validUntil: Date?
        /// The issuing CA's certificate, DER.
        var issuer: Data?
    }

    /// The failures, for `smime-milter crl` in another process (not reloaded: a restart tries
    /// every source again).
    struct FailureRecord: Codable {
        var count: Int
        var error: String
        var retryAt: Date
    }

    private func writeFailures(_ records: [String: FailureRecord]) {
        guard let directory else { return }
        try? JSONEncoder().encode(records).write(to: URL(fileURLWithPath: directory + "/failures.json"), options: .atomic)
    }

    /// The failures another process recorded in `directory`.
    static func recordedFailures(_ directory: String) -> [String: FailureRecord] {
        guard let data = FileManager.default.contents(atPath: directory + "/failures.json") else { return [:] }
        return (try? JSONDecoder().decode([String: FailureRecord].self, from: data)) ?? [:]
    }

    private func write(_ key: String, _ item: Item) {
        guard let base = fileBase(key) else { return }
        do {
            try Data(item.bytes).write(to: URL(fileURLWithPath: base + ".der"), options: .atomic)
            let issuer = item.issuer.flatMap { try? Certificate($0.pointer).der }.map { Data($0) }
            let record = Record(key: key, fetchedAt: item.fetchedAt, validUntil: item.validUntil, issuer: issuer)
            try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: base + ".json"), options: .atomic)
        } catch {
            logger.error("cannot keep a fetched CRL on disk: \(error)", metadata: ["smime.url": "\(key)"])
        }
    }

    /// CRLs on disk that are newer than what is in memory: kept by an earlier run, or fetched by
    /// `smime-milter crl --refresh`. A file that does not parse is removed, with a log line.
    func loadFromDisk() {
        guard let directory, let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasSuffix(".json") && name != "failures.json" {
            let base = directory + "/" + name.dropLast(5)
            guard let data = FileManager.default.contents(atPath: base + ".json"),
                let record = try? JSONDecoder().decode(Record.self, from: data)
            else {
                removeDamaged(base)
                continue
            }
            // Only what is newer than memory is read and parsed (this runs every minute).
            let known = condition.withLock { items[record.key]?.fetchedAt }
            if let known, known >= record.fetchedAt { continue }
            guard let der = FileManager.default.contents(atPath: base + ".der"),
                let crl = CRLHandle.parse(Array(der)).first
            else {
                removeDamaged(base)
                continue
            }
            let issuer = record.issuer.flatMap { try? X509Handle(der: Array($0)) }
            condition.withLock {
                items[record.key] = Item(
                    value: .crl(crl), bytes: Array(der), fetchedAt: record.fetchedAt, validUntil: record.validUntil,
                    persist: true, issuer: issuer)
                if let issuer, refreshers[record.key] == nil {
                    refreshers[record.key] = Self.crlDownload(
                        record.key, issuer: issuer, timeout: 30, maximumBytes: 64 << 20)
                }
            }
        }
    }

    private func removeDamaged(_ base: String) {
        logger.warning("ignoring a damaged cached CRL", metadata: ["smime.file": "\(base).der"])
        try? FileManager.default.removeItem(atPath: base + ".json")
        try? FileManager.default.removeItem(atPath: base + ".der")
    }
}

// MARK: - for the command line

/// The CRL cache under a state directory, as `smime-milter crl` shows and refreshes it.
public enum CRLCache {
    public struct Entry: Sendable {
        public let url: String
        public let issuer: String?
        public let fetchedAt: Date?
        public let nextUpdate: Date?
        public let revokedCount: Int
        public let bytes: Int
        public let failures: Int
        public let lastError: String?
        public let retryAt: Date?
    }

    /// What is kept in `directory` and what failed last, by URL.
    public static func entries(directory: String) -> [Entry] {
        let cache = FetchCache(directory: directory, backoffBase: 30, backoffCap: 900, logger: Logger(label: "crl"), refreshing: false)
        let failures = FetchCache.recordedFailures(directory)
        let keys = Set(cache.statuses().map(\.key)).union(failures.keys).sorted()
        return keys.map { key in
            let item = cache.item(key)
            var issuer: String?
            var count = 0
            if let item, case .crl(let crl) = item.value {
                issuer = Certificate.text(X509_CRL_get_issuer(crl.pointer))
                count = max(0, Int(OPENSSL_sk_num(X509_CRL_get_REVOKED(crl.pointer))))
            }
            return Entry(
                url: key, issuer: issuer, fetchedAt: item?.fetchedAt, nextUpdate: item?.validUntil, revokedCount: count,
                bytes: item?.bytes.count ?? 0, failures: failures[key]?.count ?? 0, lastError: failures[key]?.error,
                retryAt: failures[key]?.retryAt)
        }
    }

    /// Fetches every kept CRL again now, checked against the CA certificate kept with it; the
    /// daemon takes the new files within a minute, or at once on reload.
    public static func refresh(directory: String, timeout: Int = 15) -> [(url: String, outcome: String)] {
        let cache = FetchCache(directory: directory, backoffBase: 60, backoffCap: 60, logger: Logger(label: "crl"), refreshing: false)
        let keys = cache.statuses().map(\.key).filter { cache.item($0)?.issuer != nil }
        for key in keys {
            guard let issuer = cache.item(key)?.issuer else { continue }
            cache.start(key, FetchCache.crlDownload(key, issuer: issuer, timeout: timeout, maximumBytes: 64 << 20))
        }
        cache.wait(until: Date(timeIntervalSinceNow: TimeInterval(timeout) + 5)) { keys.allSatisfy { !cache.isInFlight($0) } }
        return keys.map { key in
            if let failure = cache.failure(key) { return (key, "failed: \(failure.error)") }
            let next = cache.item(key)?.validUntil.map { " (next update \(VerdictReason.day($0)))" } ?? ""
            return (key, "fetched" + next)
        }
    }
}
