import Foundation

/// Admits spooled (large) messages to be decided and answered while their bodies together stay
/// within a byte budget. One message always goes ahead; others join it only while they fit, so
/// that four 30 MB messages at once cost the memory of one (a message takes about 3.5 times its
/// size while it is decided), while a large message that fits is never held up behind another
/// (a stalled CA server must not delay a large message that needs no download). A message waits
/// for room until its deadline and then goes ahead without.
final class LargeMessageGate: @unchecked Sendable {
    let budget: Int
    private let condition = NSCondition()
    /// Bytes of the bodies admitted and not yet released; guarded by `condition`.
    private var inUse = 0

    init(budget: Int) {
        self.budget = budget
    }

    /// Waits until `bytes` fit (or nothing else is admitted) or `deadline` passes. True when
    /// admitted: the caller then calls `release(bytes)`; false when the deadline passed first.
    func admit(_ bytes: Int, before deadline: Date) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while inUse > 0 && inUse + bytes > budget {
            if !condition.wait(until: deadline) && inUse > 0 && inUse + bytes > budget { return false }
        }
        inUse += bytes
        return true
    }

    func release(_ bytes: Int) {
        condition.lock()
        inUse -= bytes
        condition.broadcast()
        condition.unlock()
    }
}
