import Foundation
import Synchronization
import Testing

@testable import Gateway

/// One call at a time per key; other keys never wait; a waiter gives up at its deadline.
@Suite struct OnePerKeyTests {
    /// Starts a call for `key` on a thread of its own that runs until `release` is signalled;
    /// returns once the call is running.
    static func hold(_ calls: OnePerKey, key: Int, until release: DispatchSemaphore) {
        let running = DispatchSemaphore(value: 0)
        Thread {
            _ = calls.run(key, before: .distantFuture) {
                running.signal()
                release.wait()
            }
        }.start()
        running.wait()
    }

    @Test func anotherKeyRunsWhileOneIsHeld() {
        let calls = OnePerKey()
        let release = DispatchSemaphore(value: 0)
        Self.hold(calls, key: 1, until: release)
        #expect(calls.run(2, before: Date()) { "ran" } == "ran")
        release.signal()
    }

    @Test func theSameKeyWaitsForTheRunningCallToEnd() async {
        let calls = OnePerKey()
        let release = DispatchSemaphore(value: 0)
        Self.hold(calls, key: 1, until: release)
        let ran = Atomic<Int>(0)
        Thread {
            if calls.run(1, before: Date(timeIntervalSinceNow: 3600), { true }) == true { ran.store(1, ordering: .sequentiallyConsistent) }
        }.start()
        try? await Task.sleep(for: .milliseconds(100))
        #expect(ran.load(ordering: .sequentiallyConsistent) == 0, "ran while the first call for its key was running")
        release.signal()
        let deadline = Date(timeIntervalSinceNow: 30)
        while ran.load(ordering: .sequentiallyConsistent) == 0 && Date() < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        #expect(ran.load(ordering: .sequentiallyConsistent) == 1)
    }

    @Test func aWaiterGivesUpAtItsDeadlineWithoutRunning() {
        let calls = OnePerKey()
        let release = DispatchSemaphore(value: 0)
        Self.hold(calls, key: 1, until: release)
        var ran = false
        #expect(calls.run(1, before: Date(timeIntervalSinceNow: 0.05)) { ran = true } == nil)
        #expect(!ran)
        release.signal()
    }

    @Test func anErrorEndsTheCallForItsKey() throws {
        struct Failure: Error {}
        let calls = OnePerKey()
        #expect(throws: Failure.self) { try calls.run(1, before: Date()) { throw Failure() } }
        #expect(calls.run(1, before: Date()) { 1 } == 1)
    }
}
