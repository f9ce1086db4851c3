import Foundation

/// A fixed number of threads that run downloads from a bounded queue.
///
/// Downloads block (DNS, connect, a slow CA server), so they run on threads of their own,
/// never on Swift's cooperative pool; there are `threads` of them for the whole process, however
/// many URLs incoming mail names. A job that finds the queue full is refused at once, and its
/// caller counts it as a failed download.
final class FetchPool: @unchecked Sendable {
    // @unchecked: every stored var is guarded by `condition`.

    /// The pool every fetch cache of the process shares.
    static let shared = FetchPool(threads: 4, queueLimit: 512)

    let threadCount: Int
    let queueLimit: Int
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var started = false
    private var busy = 0

    init(threads: Int, queueLimit: Int) {
        threadCount = max(1, threads)
        self.queueLimit = max(1, queueLimit)
    }

    /// Queues `job`; false, and nothing queued, when the queue is full.
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard queue.count < queueLimit else { return false }
        queue.append(job)
        if !started {
            started = true
            for index in 0..<threadCount {
                let thread = Thread { [self] in work() }
                thread.name = "fetch \(index + 1)"
                thread.start()
            }
        }
        condition.signal()
        return true
    }

    /// Jobs waiting and jobs running, for tests and status.
    var load: (queued: Int, running: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (queue.count, busy)
    }

    private func work() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let job = queue.removeFirst()
            busy += 1
            condition.unlock()
            job()
            condition.lock()
            busy -= 1
            condition.unlock()
        }
    }
}
