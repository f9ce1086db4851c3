internal import COpenSSL
import Foundation
import Logging
import Synchronization

/// What the verifier downloads (CRLs, OCSP answers, CA certificates), kept so that a message
/// never waits on a CA's web server that was already asked.
///
/// - Only what the fetch rules (`FetchPolicy`) allow is fetched; a refused URL is logged once.
/// - An item is kept until it is no longer valid (a CRL's nextUpdate, plus the grace period the
///   caller allows), or until the memory budget needs its room (least recently used first);
///   CRLs are also written to the directory, so a restart finds them.
/// - At most one download per URL is in flight; every message that needs it waits for that one.
/// - A URL that failed is not asked again for a back-off period that doubles with each failure,
///   up to a cap; messages meanwhile get the failure at once. At most `failureLimit` failures are
///   remembered (least recently used go first); the failure file is written on a timer.
/// - Downloads run on the process's fixed pool of fetch threads, so a message stops waiting at
///   its deadline and the download, still going, fills the cache for the next one.
/// - Items that know how to fetch themselves again are refreshed in the background before they
///   run out, under the latest fetch rules.
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

    /// A download: what to do once the rules have said where the URL leads.
    typealias Download = @Sendable (FetchPolicy.Target) throws -> Item

    /// Downloads the CRL at `url` and accepts it only when `issuer` issued it (name and signature).
    static func crlDownload(_ url: String, issuer: X509Handle, timeout: Int, maximumBytes: Int) -> Download {
        { target in
            let bytes = try HTTPFetch.get(target, timeout: timeout, maximumBytes: maximumBytes)
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

    /// How many downloads one message may still start.
    final class Allowance {
        private(set) var remaining: Int
        init(_ downloads: Int) { remaining = downloads }
        fileprivate func take() -> Bool {
            guard remaining > 0 else { return false }
            remaining -= 1
            return true
        }
    }

    /// What `start` did.
    enum Start: Equatable {
        case started
        case inFlight
        case backingOff
        case refused(FetchPolicy.Refusal)
        /// The message used up its downloads.
        case overAllowance
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
        fileprivate var lastUse: UInt64 = 0
    }

    private struct Entry {
        var item: Item
        var lastUse: UInt64
    }

    private struct Refresher {
        let url: String
        let download: Download
    }

    let backoffBase: TimeInterval
    let backoffCap: TimeInterval
    /// Bytes of fetched answers kept in memory, at most (one larger answer is still kept alone).
    let memoryBudget: Int
    /// Failures remembered, at most.
    let failureLimit: Int
    private let disk: FetchDisk?
    var directory: String? { disk?.directory }
    private let pool: FetchPool
    private let logger: Logger
    let refusals: FetchRefusals
    private let condition = NSCondition()
    private var entries: [String: Entry] = [:]
    private var entryBytes = 0
    private var failures: [String: Failure] = [:]
    /// Downloads under way, and when each started.
    private var inFlight: [String: Date] = [:]
    private var refreshers: [String: Refresher] = [:]
    /// The rules background refreshes follow: the latest configuration's.
    private var policy: FetchPolicy?
    /// Counts use, for least-recently-used eviction.
    private var clock: UInt64 = 0
    /// Counts finished downloads, so that a waiter cannot miss one (see `wait`).
    private var generation: UInt64 = 0
    private var failuresChanged = false
    private var lastDiskScan: Date?

    private static let shared = Mutex<[String: FetchCache]>([:])

    /// The process's cache for `directory` (nil: memory only, a new cache each time).
    static func at(_ directory: String?, backoffBase: TimeInterval, logger: Logger) -> FetchCache {
        guard let directory else {
            return FetchCache(
                directory: nil, backoffBase: backoffBase, backoffCap: 900, memoryBudget: 256 << 20,
                failureLimit: 4096, pool: .shared, logger: logger)
        }
        // The directory is scanned and its CRLs parsed outside the lock: another directory's
        // cache is not held up by this one's disk.
        if let existing = shared.withLock({ $0[directory] }) {
            existing.loadFromDisk()
            return existing
        }
        let made = FetchCache(
            directory: directory, backoffBase: backoffBase, backoffCap: 900, memoryBudget: 256 << 20,
            failureLimit: 4096, pool: .shared, logger: logger, refreshing: false)
        let kept = shared.withLock { all in
            if let existing = all[directory] { return existing }  // made meanwhile by another thread
            all[directory] = made
            return made
        }
        if kept === made {
            made.startUpkeep()
        } else {
            kept.loadFromDisk()
        }
        return kept
    }

    init(
        directory: String?, backoffBase: TimeInterval, backoffCap: TimeInterval, memoryBudget: Int, failureLimit: Int,
        pool: FetchPool, logger: Logger, refreshing: Bool = true
    ) {
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.memoryBudget = memoryBudget
        self.failureLimit = failureLimit
        self.pool = pool
        self.logger = logger
        refusals = FetchRefusals(limit: 4096, logger: logger)
        disk = directory.flatMap { FetchDisk($0) }
        loadFromDisk()
        if refreshing { startUpkeep() }
    }

    /// The rules background refreshes follow from now on.
    func install(_ policy: FetchPolicy) {
        condition.withLock { self.policy = policy }
    }

    // MARK: asking

    /// The item for `key`, current or not (the caller judges validity and grace).
    func item(_ key: String) -> Item? {
        condition.lock()
        defer { condition.unlock() }
        guard var entry = entries[key] else { return nil }
        clock += 1
        entry.lastUse = clock
        entries[key] = entry
        return entry.item
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

    /// Items and bytes kept in memory, failures remembered.
    var size: (items: Int, bytes: Int, failures: Int) {
        condition.withLock { (entries.count, entryBytes, failures.count) }
    }

    /// Starts fetching `url` (kept as `key`) on the fetch pool, when `policy` allows the URL and
    /// it is neither in flight nor backing off, and `allowance` (nil: no limit) has a download
    /// left. `refresh` says whether the item, once fetched, is fetched again in the background
    /// before it runs out.
    @discardableResult
    func start(
        _ key: String, url: String, policy: FetchPolicy, allowance: Allowance?, refresh: Bool = true,
        _ download: @escaping Download
    ) -> Start {
        let target: FetchPolicy.Target
        switch policy.target(url) {
        case .success(let allowed): target = allowed
        case .failure(let refusal):
            refusals.note(url, refusal)
            return .refused(refusal)
        }
        condition.lock()
        if inFlight[key] != nil {
            condition.unlock()
            return .inFlight
        }
        if let failure = failures[key], failure.retryAt > Date() {
            condition.unlock()
            return .backingOff
        }
        if let allowance, !allowance.take() {
            condition.unlock()
            return .overAllowance
        }
        inFlight[key] = Date()
        if refresh { refreshers[key] = Refresher(url: url, download: download) }
        condition.unlock()
        let queued = pool.submit { [self] in
            finish(key, url: url, Result { try download(target) })
        }
        if !queued {
            finish(
                key, url: url,
                .failure(SMIMEError("too many downloads waiting", code: .fetch, hint: "tried again after the back-off")))
        }
        return .started
    }

    private func finish(_ key: String, url: String, _ result: Result<Item, any Error>) {
        // The list is on disk before anyone waiting for it is woken (a command that exits right
        // after its verdict must leave it behind), and written outside the lock: a 5 MB list must
        // not hold up messages reading the cache.
        if case .success(let item) = result, item.persist { write(key, item) }
        if case .failure(let refusal as FetchPolicy.Refusal) = result { refusals.note(url, refusal) }
        condition.lock()
        inFlight[key] = nil
        clock += 1
        switch result {
        case .success(let item):
            if let old = entries[key] { entryBytes -= old.item.bytes.count }
            entries[key] = Entry(item: item, lastUse: clock)
            entryBytes += item.bytes.count
            if failures.removeValue(forKey: key) != nil {
                failuresChanged = true
                logger.notice("fetched again after failures", metadata: ["smime.url": "\(key)"])
            }
            evictItems()
        case .failure(let error):
            var failure = failures[key] ?? Failure(count: 0, error: "", retryAt: Date())
            failure.count += 1
            failure.error = "\(error)"
            // A refused address does not become allowed by itself: the longest back-off.
            let delay =
                error is FetchPolicy.Refusal ? backoffCap : min(backoffCap, backoffBase * pow(2, Double(failure.count - 1)))
            failure.retryAt = Date(timeIntervalSinceNow: delay)
            failure.delay = delay
            failure.lastUse = clock
            failures[key] = failure
            failuresChanged = true
            evictFailures()
            if !(error is FetchPolicy.Refusal) {
                logger.warning(
                    "fetch failed; not tried again for \(Int(delay)) s",
                    metadata: ["smime.url": "\(key)", "smime.error": "\(error)", "smime.failures": "\(failure.count)"])
            }
        }
        generation &+= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Least recently used items go until the rest fit the budget (the newest stays).
    private func evictItems() {
        while entryBytes > memoryBudget && entries.count > 1 {
            guard let (key, entry) = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) else { return }
            entries[key] = nil
            refreshers[key] = nil
            entryBytes -= entry.item.bytes.count
        }
    }

    private func evictFailures() {
        while failures.count > failureLimit {
            guard let key = failures.min(by: { $0.value.lastUse < $1.value.lastUse })?.key else { return }
            failures[key] = nil
            refreshers[key] = nil
        }
    }

    /// Waits until `done()` holds (checked whenever a download ends) or `deadline` passes.
    ///
    /// `done()` reads the cache, so it runs with the lock released; a download that ends while
    /// it runs has moved `generation` on, and the wait then looks again instead of sleeping
    /// through that download's wake-up.
    func wait(until deadline: Date, _ done: () -> Bool) {
        condition.lock()
        defer { condition.unlock() }
        while true {
            let seen = generation
            condition.unlock()
            let finished = done()
            condition.lock()
            if finished { return }
            while generation == seen {
                if !condition.wait(until: deadline) { return }
            }
        }
    }

    /// Every URL known, for `smime-milter crl`.
    func statuses() -> [Status] {
        condition.lock()
        defer { condition.unlock() }
        let keys = Set(entries.keys).union(failures.keys).union(inFlight.keys)
        return keys.sorted().map { key in
            Status(
                key: key, fetchedAt: entries[key]?.item.fetchedAt, validUntil: entries[key]?.item.validUntil,
                failures: failures[key]?.count ?? 0, lastError: failures[key]?.error, retryAt: failures[key]?.retryAt,
                inFlight: inFlight[key] != nil)
        }
    }

    // MARK: upkeep

    /// Every 5 seconds the failure file is written when failures changed; every minute, items
    /// that know how to fetch themselves and run out within the next quarter of their life (or
    /// an hour, whichever is shorter) are fetched again.
    private func startUpkeep() {
        let thread = Thread { [weak self] in
            var tick = 0
            while true {
                Thread.sleep(forTimeInterval: 5)
                tick += 1
                guard let self else { return }
                self.writeFailuresIfChanged()
                if tick % 12 == 0 {
                    self.loadFromDisk()
                    self.refreshDue()
                }
            }
        }
        thread.name = "fetch upkeep"
        thread.start()
    }

    func refreshDue(now: Date = Date()) {
        condition.lock()
        let due = refreshers.filter { key, _ in
            guard let item = entries[key]?.item, let until = item.validUntil else { return entries[key] == nil }
            let ahead = min(3600, max(60, until.timeIntervalSince(item.fetchedAt) / 4))
            return until.timeIntervalSince(now) < ahead
        }
        let policy = policy
        condition.unlock()
        guard let policy else { return }
        for (key, refresher) in due {
            start(key, url: refresher.url, policy: policy, allowance: nil, refresher.download)
        }
    }

    // MARK: disk

    /// Writes the failure file when failures changed since it was last written.
    func writeFailuresIfChanged() {
        guard let disk else { return }
        let records = condition.withLock { () -> [String: FetchDisk.FailureRecord]? in
            guard failuresChanged else { return nil }
            failuresChanged = false
            return failures.mapValues { FetchDisk.FailureRecord(count: $0.count, error: $0.error, retryAt: $0.retryAt) }
        }
        if let records { disk.writeFailures(records) }
    }

    private func write(_ key: String, _ item: Item) {
        guard let disk else { return }
        do {
            let issuer = item.issuer.flatMap { try? Certificate($0.pointer).der }.map { Data($0) }
            try disk.write(
                key, bytes: item.bytes,
                record: FetchDisk.Record(key: key, fetchedAt: item.fetchedAt, validUntil: item.validUntil, issuer: issuer))
        } catch {
            logger.error("cannot keep a fetched CRL on disk: \(error)", metadata: ["smime.url": "\(key)"])
        }
    }

    /// CRLs on disk written since the last look that are newer than what is in memory: kept by
    /// an earlier run, or fetched by `smime-milter crl --refresh`. A file that does not parse is
    /// removed, with a log line.
    func loadFromDisk() {
        guard let disk else { return }
        let scanStarted = Date()
        let since = condition.withLock { lastDiskScan }
        for kept in disk.records(changedSince: since?.addingTimeInterval(-2)) {
            switch kept {
            case .damaged(let base): removeDamaged(base, disk)
            case .record(let record, let base):
                // Only what is newer than memory is read and parsed.
                let known = condition.withLock { entries[record.key]?.item.fetchedAt }
                if let known, known >= record.fetchedAt { continue }
                guard let der = disk.der(base: base), let crl = CRLHandle.parse(der).first else {
                    removeDamaged(base, disk)
                    continue
                }
                let issuer = record.issuer.flatMap { try? X509Handle(der: Array($0)) }
                condition.withLock {
                    clock += 1
                    if let old = entries[record.key] { entryBytes -= old.item.bytes.count }
                    entries[record.key] = Entry(
                        item: Item(
                            value: .crl(crl), bytes: der, fetchedAt: record.fetchedAt, validUntil: record.validUntil,
                            persist: true, issuer: issuer),
                        lastUse: clock)
                    entryBytes += der.count
                    if let issuer, refreshers[record.key] == nil {
                        refreshers[record.key] = Refresher(
                            url: record.key,
                            download: Self.crlDownload(record.key, issuer: issuer, timeout: 30, maximumBytes: 64 << 20))
                    }
                    evictItems()
                }
            }
        }
        condition.withLock { lastDiskScan = scanStarted }
    }

    private func removeDamaged(_ base: String, _ disk: FetchDisk) {
        logger.warning("ignoring a damaged cached CRL", metadata: ["smime.file": "\(base).der"])
        disk.remove(base: base)
    }
}
