import Foundation

/// One call at a time per key, with no lock held while a call runs: a call for a key that is
/// already running waits, until a deadline, for that call to end. Used where a second call
/// would repeat the first's work (a second login to a token with the same PIN adds nothing),
/// and where the work may hang, so that what waits for it waits with a deadline and what does
/// not need it never waits at all.
final class OnePerKey: @unchecked Sendable {
    private let condition = NSCondition()
    /// Keys whose call is running; guarded by `condition`.
    private var running: Set<Int> = []

    /// Runs `body` once no other call for `key` is running; nil, without running it, when the
    /// other call had not ended by `deadline`.
    func run<T>(_ key: Int, before deadline: Date, _ body: () throws -> T) rethrows -> T? {
        condition.lock()
        while running.contains(key) {
            if !condition.wait(until: deadline) && running.contains(key) {
                condition.unlock()
                return nil
            }
        }
        running.insert(key)
        condition.unlock()
        defer {
            condition.lock()
            running.remove(key)
            condition.broadcast()
            condition.unlock()
        }
        return try body()
    }
}
