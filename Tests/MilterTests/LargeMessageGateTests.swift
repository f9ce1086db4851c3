import Foundation
import Synchronization
import Testing

@testable import Milter

/// Large messages are admitted while their bodies fit the budget; one always goes ahead.
@Suite struct LargeMessageGateTests {
    static let megabyte = 1 << 20

    @Test func messagesThatFitTogetherGoAheadTogether() {
        let gate = LargeMessageGate(budget: 40 * Self.megabyte)
        let soon = Date(timeIntervalSinceNow: 0.05)
        #expect(gate.admit(10 * Self.megabyte, before: soon))
        #expect(gate.admit(20 * Self.megabyte, before: soon))
        #expect(gate.admit(10 * Self.megabyte, before: soon))
    }

    @Test func aMessageLargerThanTheBudgetGoesAheadAlone() {
        let gate = LargeMessageGate(budget: 40 * Self.megabyte)
        #expect(gate.admit(60 * Self.megabyte, before: Date()))
        #expect(!gate.admit(1, before: Date(timeIntervalSinceNow: 0.05)))
        gate.release(60 * Self.megabyte)
        #expect(gate.admit(1, before: Date()))
    }

    /// The second 30 MB message waits for the first to release its memory, and not for its
    /// deadline: it is admitted by the release (the deadline is an hour away).
    @Test func aMessageThatDoesNotFitWaitsForTheRelease() async {
        let gate = LargeMessageGate(budget: 40 * Self.megabyte)
        #expect(gate.admit(30 * Self.megabyte, before: Date()))
        let admitted = Atomic<Int>(0)
        let waiter = Thread {
            if gate.admit(30 * Self.megabyte, before: Date(timeIntervalSinceNow: 3600)) { admitted.store(1, ordering: .sequentiallyConsistent) }
        }
        waiter.start()
        try? await Task.sleep(for: .milliseconds(100))
        #expect(admitted.load(ordering: .sequentiallyConsistent) == 0, "admitted while the first still held 30 MB")
        gate.release(30 * Self.megabyte)
        let deadline = Date(timeIntervalSinceNow: 30)
        while admitted.load(ordering: .sequentiallyConsistent) == 0 && Date() < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        #expect(admitted.load(ordering: .sequentiallyConsistent) == 1)
    }

    @Test func theDeadlineEndsTheWait() {
        let gate = LargeMessageGate(budget: 40 * Self.megabyte)
        #expect(gate.admit(30 * Self.megabyte, before: Date()))
        #expect(!gate.admit(30 * Self.megabyte, before: Date(timeIntervalSinceNow: 0.05)))
    }
}
