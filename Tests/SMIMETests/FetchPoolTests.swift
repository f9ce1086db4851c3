import Foundation
import Synchronization
import TestSupport
import Testing

@testable import SMIME

/// The fetch threads: a fixed number, whatever is queued; a full queue refuses at once.
@Suite struct FetchPoolTests {
    @Test func manyJobsRunOnTheFixedThreadsAndAllEnd() {
        let pool = FetchPool(threads: 3, queueLimit: 100)
        let running = Mutex((now: 0, most: 0))
        let done = Tally()
        for _ in 0..<60 {
            #expect(pool.submit {
                running.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
                Thread.sleep(forTimeInterval: 0.005)
                running.withLock { $0.now -= 1 }
                done.add()
            })
        }
        let deadline = Date(timeIntervalSinceNow: 10)
        while done.value < 60 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(done.value == 60)
        #expect(running.withLock { $0.most } <= 3)
    }

    @Test func aFullQueueRefusesInsteadOfGrowing() {
        let pool = FetchPool(threads: 1, queueLimit: 2)
        let release = Mutex(false)
        let blocking: @Sendable () -> Void = {
            while !release.withLock({ $0 }) { Thread.sleep(forTimeInterval: 0.01) }
        }
        #expect(pool.submit(blocking))
        while pool.load.running == 0 { Thread.sleep(forTimeInterval: 0.01) }
        #expect(pool.submit(blocking) && pool.submit(blocking))
        #expect(!pool.submit(blocking), "a third job waiting is one too many")
        release.withLock { $0 = true }
    }
}
