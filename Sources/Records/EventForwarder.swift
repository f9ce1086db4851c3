internal import CShims
import Foundation
import Logging

/// Forwards the records of the local file to PostgreSQL, oldest first, on a thread of its own.
///
/// A record leaves the file's queue (`forwarded = 1`) only after PostgreSQL has committed it;
/// a crash between the two sends it again, and PostgreSQL skips it by its key, so each record
/// arrives once across restarts and `kill -9`. When PostgreSQL is down, refuses, or does not
/// answer within the target's timeout, the connection is dropped, the failure logged once, and
/// forwarding tried again every `retryInterval` seconds; the records wait in the file meanwhile.
final class EventForwarder: Sendable {
    let path: String
    let server: String
    let target: PostgresStore.Target
    private let retention: TimeInterval
    private let logger: Logger

    /// Rows per statement: one round trip each, well under PostgreSQL's 65535 parameters.
    static let batchSize = 500
    static let retryInterval: TimeInterval = 5

    private struct State {
        var pending = false
        var stopping = false
        var stopped = false
    }

    private let condition = NSCondition()
    /// Guarded by `condition`.
    nonisolated(unsafe) private var state = State()

    init(path: String, server: String, target: PostgresStore.Target, retentionDays: Int, logger: Logger) {
        self.path = path
        self.server = server
        self.target = target
        retention = TimeInterval(retentionDays) * 86400
        self.logger = logger
        let thread = Thread { [self] in run() }
        thread.name = "records-forward"
        thread.start()
    }

    /// The writer has added records to the file.
    func wake() {
        condition.lock()
        state.pending = true
        condition.signal()
        condition.unlock()
    }

    /// Forwards once more what the file holds, and ends the thread; waits at most `timeout`
    /// seconds (what is not forwarded then is forwarded at the next start).
    func stop(timeout: Double) {
        condition.lock()
        state.stopping = true
        condition.broadcast()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !state.stopped && condition.wait(until: deadline) {}
        condition.unlock()
    }

    private func run() {
        smime_milter_name_thread("records-fwd")
        var store: EventStore?
        var database: PostgresStore?
        var failure: String?
        var retryAt = Date.distantPast
        var lastPrune = Date.distantPast
        var forwardedSinceFailure = 0
        while true {
            condition.lock()
            if !state.stopping && !state.pending { _ = condition.wait(until: Date(timeIntervalSinceNow: 1)) }
            let stopping = state.stopping
            state.pending = false
            condition.unlock()

            // The writer makes the file; until it has, there is nothing to forward.
            let ready = store != nil || FileManager.default.fileExists(atPath: path)
            if ready && (Date() >= retryAt || (stopping && database != nil)) {
                do {
                    if store == nil { store = try EventStore(path: path) }
                    if database == nil {
                        database = try PostgresStore(target, migrate: true)
                        if failure == nil { logger.info("records: forwarding to \(target.url) as server \(server)") }
                    }
                    while true {
                        let rows = try store!.waiting(limit: Self.batchSize, server: server, renamed: false)
                        guard let last = rows.last else { break }
                        try database!.forward(rows)
                        try store!.markForwarded(through: last.id)
                        forwardedSinceFailure += rows.count
                        if rows.count < Self.batchSize || isStopping() { break }
                    }
                    if Date().timeIntervalSince(lastPrune) > 86400 {
                        lastPrune = Date()
                        let removed = try database!.prune(server: server, before: Date(timeIntervalSinceNow: -retention))
                        if removed > 0 { logger.info("records: \(removed) records of \(server) older than the retention deleted from \(target.url)") }
                    }
                    if failure != nil {
                        failure = nil
                        logger.notice("records: \(target.url) answers again; \(forwardedSinceFailure) waiting records forwarded")
                    }
                } catch {
                    database = nil
                    if (error as? RecordsError)?.code != .postgres { store = nil }
                    retryAt = Date(timeIntervalSinceNow: Self.retryInterval)
                    let message = "\(error)"
                    if message != failure {
                        failure = message
                        forwardedSinceFailure = 0
                        let waiting = (try? store?.waitingCount()).flatMap { $0 }.map { "\($0) records" } ?? "records"
                        logger.error(
                            "records: \(message); \(waiting) kept in \(path) and forwarded when it answers (mail is not affected)")
                    }
                }
            }
            if stopping {
                condition.lock()
                state.stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
        }
    }

    private func isStopping() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return state.stopping
    }
}
