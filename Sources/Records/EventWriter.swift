internal import CShims
import Foundation
public import Gateway
public import Logging
import Synchronization

/// Writes records off the message path: `record` only appends to a queue; one thread of its own
/// writes what has gathered in one transaction (at most every second), and deletes records past
/// the retention once a day. Mail comes first: when the file cannot be written the writer logs
/// it once, drops what it could not write, and tries again a minute later.
///
/// With a PostgreSQL `EventDatabase` the file is also the spool: a second thread forwards what
/// the file holds and PostgreSQL does not yet (`EventForwarder`), so that a database that is
/// down, slow or hung delays only the forwarding, never the file, and never mail.
public final class EventWriter: Sendable {
    public let path: String
    /// `ServerName`, stored with every record.
    public let server: String
    private let retention: TimeInterval
    private let logger: Logger
    /// nil when the records stay in the file.
    let forwarder: EventForwarder?
    /// Where records are forwarded, nil when they stay in the file.
    public var target: PostgresStore.Target? { forwarder?.target }

    private struct Queue {
        var events: [Event] = []
        var dropped = 0
        /// Records lost since start, queue overflows and batches that could not be written alike.
        var lost = 0
        var stopping = false
        var stopped = false
    }

    /// The lock the writer thread waits on, with a deadline (hence NSCondition, not Mutex).
    private let condition = NSCondition()
    /// Guarded by `condition`.
    nonisolated(unsafe) private var queue = Queue()

    /// Events waiting beyond this are dropped (counted and logged): a writer that cannot keep up
    /// must not take the daemon's memory.
    static let maximumWaiting = 100_000

    public init(path: String, server: String, forwardTo target: PostgresStore.Target?, retentionDays: Int, logger: Logger) {
        self.path = path
        self.server = server
        retention = TimeInterval(retentionDays) * 86400
        self.logger = logger
        forwarder = target.map {
            EventForwarder(path: path, server: server, target: $0, retentionDays: retentionDays, logger: logger)
        }
        let thread = Thread { [self] in run() }
        thread.name = "records"
        thread.start()
    }

    /// Queues one message's record; never waits for the file.
    public func record(_ event: Event) {
        condition.lock()
        if queue.events.count < Self.maximumWaiting {
            queue.events.append(event)
        } else {
            queue.dropped += 1
            queue.lost += 1
        }
        condition.unlock()
    }

    /// Records waiting to be written, and records lost since start (for the metrics).
    public var queueState: (waiting: Int, dropped: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (queue.events.count, queue.lost)
    }

    private func countLost(_ count: Int) {
        condition.lock()
        queue.lost += count
        condition.unlock()
    }

    /// Writes what is queued and ends the thread; waits at most `timeout` seconds.
    public func stop(timeout: Double = 10) {
        condition.lock()
        queue.stopping = true
        condition.broadcast()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !queue.stopped && condition.wait(until: deadline) {}
        condition.unlock()
        forwarder?.stop(timeout: max(1, deadline.timeIntervalSinceNow))
    }

    private func run() {
        // Named for `top -H` and the benchmark, which reads this thread's CPU time.
        smime_milter_name_thread("records")
        var store: EventStore?
        var failing = false
        var lastPrune = Date.distantPast
        var nextOpen = Date.distantPast
        while true {
            condition.lock()
            if !queue.stopping { _ = condition.wait(until: Date(timeIntervalSinceNow: 1)) }
            let batch = queue.events
            let dropped = queue.dropped
            let stopping = queue.stopping
            queue.events = []
            queue.dropped = 0
            condition.unlock()

            if dropped > 0 {
                logger.warning("records: \(dropped) message records dropped, the writer could not keep up; \(path) is not complete")
            }
            var written = batch.isEmpty
            do {
                if store == nil && Date() >= nextOpen {
                    nextOpen = Date(timeIntervalSinceNow: 60)
                    store = try EventStore(path: path)
                }
                if let store {
                    if !batch.isEmpty {
                        try store.insert(batch, server: server)
                        forwarder?.wake()
                    }
                    written = true
                    if Date().timeIntervalSince(lastPrune) > 86400 {
                        lastPrune = Date()
                        let removed = try store.prune(before: Date(timeIntervalSinceNow: -retention), keepWaiting: forwarder != nil)
                        if removed > 0 { logger.info("records: \(removed) records older than the retention deleted from \(path)") }
                    }
                    if failing {
                        failing = false
                        logger.notice("records: writing to \(path) again")
                    }
                } else if !batch.isEmpty {
                    logger.debug("records: \(batch.count) records not written, \(path) is not open")
                    countLost(batch.count)
                    written = true
                }
            } catch {
                if !written { countLost(batch.count) }
                store = nil
                if !failing {
                    failing = true
                    logger.error("records: cannot write to \(path): \(error); mail is not affected, records are lost until it is fixed")
                }
            }
            if stopping {
                condition.lock()
                queue.stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
        }
    }
}
