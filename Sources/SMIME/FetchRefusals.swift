import Logging
import Synchronization

/// URLs the fetch rules refused, each logged once (not once per message that names it). The
/// set is bounded: past `limit` URLs it starts again, with one line that says so.
final class FetchRefusals: Sendable {
    private let logged = Mutex<Set<String>>([])
    private let limit: Int
    private let logger: Logger

    init(limit: Int, logger: Logger) {
        self.limit = limit
        self.logger = logger
    }

    /// Logs the refusal of `url` unless it was logged already; true when it logged.
    @discardableResult
    func note(_ url: String, _ refusal: FetchPolicy.Refusal) -> Bool {
        let (first, restarted) = logged.withLock { seen -> (Bool, Bool) in
            if seen.contains(url) { return (false, false) }
            var restarted = false
            if seen.count >= limit {
                seen.removeAll(keepingCapacity: true)
                restarted = true
            }
            seen.insert(url)
            return (true, restarted)
        }
        if restarted {
            logger.notice("more than \(limit) refused addresses; refusals are logged again from now on")
        }
        if first {
            logger.warning(
                "not fetched: \(refusal)", metadata: ["smime.url": "\(url.prefix(200))", "smime.refusal": "\(refusal.code)"])
        }
        return first
    }
}

extension FetchPolicy.Refusal {
    /// A short stable name for logs and metrics.
    var code: String {
        switch self {
        case .notHTTP: "scheme"
        case .malformed: "malformed"
        case .hostNotNamed: "host"
        case .port: "port"
        case .address: "address"
        }
    }
}
