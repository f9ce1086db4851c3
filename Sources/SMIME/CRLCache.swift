internal import COpenSSL
public import Foundation
import Logging

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

    private static func cache(_ directory: String, backoff: TimeInterval) -> FetchCache {
        FetchCache(
            directory: directory, backoffBase: backoff, backoffCap: backoff, memoryBudget: Int.max, failureLimit: Int.max,
            pool: .shared, logger: Logger(label: "crl"), refreshing: false)
    }

    /// What is kept in `directory` and what failed last, by URL.
    public static func entries(directory: String) -> [Entry] {
        let cache = cache(directory, backoff: 30)
        let failures = FetchDisk.recordedFailures(directory)
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

    /// Fetches every kept CRL again now, where `trust`'s fetch rules allow, checked against the
    /// CA certificate kept with it; the daemon takes the new files within a minute, or at once
    /// on reload.
    public static func refresh(directory: String, trust: TrustStore, timeout: Int) -> [(url: String, outcome: String)] {
        let cache = cache(directory, backoff: 60)
        let keys = cache.statuses().map(\.key).filter { cache.item($0)?.issuer != nil }
        var refused: [String: FetchPolicy.Refusal] = [:]
        for key in keys {
            guard let issuer = cache.item(key)?.issuer else { continue }
            let download = FetchCache.crlDownload(key, issuer: issuer, timeout: timeout, maximumBytes: 64 << 20)
            if case .refused(let why) = cache.start(key, url: key, policy: trust.fetchPolicy, allowance: nil, download) {
                refused[key] = why
            }
        }
        cache.wait(until: Date(timeIntervalSinceNow: TimeInterval(timeout) + 5)) { keys.allSatisfy { !cache.isInFlight($0) } }
        return keys.map { key in
            if let why = refused[key] { return (key, "failed: not fetched: \(why)") }
            if let failure = cache.failure(key) { return (key, "failed: \(failure.error)") }
            let next = cache.item(key)?.validUntil.map { " (next update \(VerdictReason.day($0)))" } ?? ""
            return (key, "fetched" + next)
        }
    }
}
