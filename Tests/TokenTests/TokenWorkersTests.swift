import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Token

/// The threads token calls run on, with plain closures standing in for a token that answers,
/// is slow, or does not answer.
@Suite struct TokenWorkersTests {
    @Test func aJobRunsOnAWorkerAndItsResultComesBack() throws {
        let workers = TokenWorkers(name: "test", threads: 2, stuckAfter: 5)
        let caller = Thread.current
        let result = try workers.run(until: Date(timeIntervalSinceNow: 5)) { () -> Bool in Thread.current != caller }
        #expect(result, "the call does not run on the caller's thread")
        #expect(throws: TokenError.self) {
            try workers.run(until: Date(timeIntervalSinceNow: 5)) { () -> Int in
                throw TokenError(.pkcs11, operation: "C_Sign", detail: "a failure is handed back")
            }
        }
    }

    /// Many callers at once on fewer threads: each gets its own job's result as soon as the job
    /// is done (each caller is woken by its own job, not by whichever finished, nor by its
    /// deadline), and none gets another's.
    @Test func concurrentCallersEachGetTheirOwnResultWhenItIsDone() throws {
        let workers = TokenWorkers(name: "test", threads: 2, stuckAfter: 30)
        let results = Mutex<[Int: Int]>([:])
        let slowest = Mutex<TimeInterval>(0)
        let done = DispatchGroup()
        for caller in 0..<16 {
            done.enter()
            Thread.detachNewThread {
                for round in 0..<5 {
                    let start = Date()
                    let value = try? workers.run(until: Date(timeIntervalSinceNow: 5)) { () -> Int in
                        usleep(UInt32(100 * (caller % 3)))
                        return caller * 1000 + round
                    }
                    slowest.withLock { $0 = max($0, Date().timeIntervalSince(start)) }
                    results.withLock { $0[caller * 1000 + round] = value }
                }
                done.leave()
            }
        }
        done.wait()
        let all = results.withLock { $0 }
        #expect(all.count == 16 * 5)
        #expect(all.allSatisfy { $0.key == $0.value }, "a caller got another caller's result or none")
        // 80 jobs of at most 0.2 ms on two threads: a caller that waited seconds was not woken by its job.
        #expect(slowest.withLock { $0 } < 2.5)
    }

    /// Jobs that come together from a cold start each get a thread of their own, up to the pool
    /// size: four jobs that each wait for the others to start all start.
    @Test func aBurstOfJobsStartsAThreadForEach() throws {
        let workers = TokenWorkers(name: "test", threads: 4, stuckAfter: 30)
        let started = Tally()
        let allStarted = Tally()
        let done = DispatchGroup()
        for _ in 0..<4 {
            done.enter()
            Thread.detachNewThread {
                _ = try? workers.run(until: Date(timeIntervalSinceNow: 10)) {
                    started.add()
                    let deadline = Date(timeIntervalSinceNow: 5)
                    while started.value < 4 && Date() < deadline { usleep(1000) }
                    if started.value == 4 { allStarted.add() }
                }
                done.leave()
            }
        }
        done.wait()
        #expect(allStarted.value == 4, "the jobs ran one after another instead of at once")
        #expect(workers.threadCount == 4)
    }

    /// One caller's jobs one after another need one thread: the thread that finished the last
    /// job takes the next, even when it comes before that thread has gone idle.
    @Test func oneCallerAfterAnotherKeepsOneThread() throws {
        let workers = TokenWorkers(name: "test", threads: 4, stuckAfter: 30)
        for number in 0..<200 {
            #expect(try workers.run(until: Date(timeIntervalSinceNow: 5)) { number } == number)
        }
        #expect(workers.threadCount == 1)
    }

    /// One thread, held: a second job that never starts gives up at its deadline with "busy",
    /// never runs afterwards, and the one after the holder returns runs normally.
    @Test func aJobThatNeverStartedTimesOutAndIsDropped() throws {
        let workers = TokenWorkers(name: "test", threads: 1, stuckAfter: 30)
        let release = DispatchSemaphore(value: 0)
        let holding = DispatchSemaphore(value: 0)
        let ran = Tally()
        Thread.detachNewThread {
            _ = try? workers.run(until: Date(timeIntervalSinceNow: 30)) {
                holding.signal()
                release.wait()
            }
        }
        holding.wait()
        let start = Date()
        #expect {
            try workers.run(until: Date(timeIntervalSinceNow: 0.2)) { ran.add() }
        } throws: { error in
            (error as? TokenError)?.code == .timeout && "\(error)".contains("busy with other messages")
        }
        // Well before the holder's own 30 s: it gave up at its deadline, not when the holder let go.
        #expect(Date().timeIntervalSince(start) < 20)
        release.signal()
        try workers.run(until: Date(timeIntervalSinceNow: 5)) { ran.add() }
        #expect(ran.value == 1, "the dropped job never ran")
    }

    /// Idle threads end, so that a reloaded configuration leaves none behind; work starts them again.
    @Test func idleThreadsEndAndComeBackWithWork() throws {
        let workers = TokenWorkers(name: "test", threads: 2, stuckAfter: 5, idleExit: 1)
        try workers.run(until: Date(timeIntervalSinceNow: 5)) {}
        #expect(workers.threadCount >= 1)
        let deadline = Date(timeIntervalSinceNow: 5)
        while workers.threadCount > 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(workers.threadCount == 0)
        #expect(try workers.run(until: Date(timeIntervalSinceNow: 5)) { 42 } == 42)
    }

    /// A call that outlives its caller's deadline makes the token stuck at once: the next caller,
    /// coming right after, fails fast instead of waiting its whole deadline behind the hung call
    /// (which started a moment after the first caller began waiting, so its own age is still
    /// under stuckAfter). Until a call returns; then the token is used again.
    @Test func theCallerAfterATimedOutCallFailsFastAsStuck() throws {
        let workers = TokenWorkers(name: "test", threads: 1, stuckAfter: 1)
        let release = DispatchSemaphore(value: 0)
        #expect {
            try workers.run(until: Date(timeIntervalSinceNow: 1)) { release.wait() }
        } throws: { error in
            (error as? TokenError)?.code == .timeout && "\(error)".contains("did not answer")
        }
        #expect {
            try workers.run(until: Date(timeIntervalSinceNow: 30)) {}
        } throws: { error in
            (error as? TokenError)?.code == .stuck
        }
        release.signal()
        let deadline = Date(timeIntervalSinceNow: 30)
        var answered = false
        while !answered && Date() < deadline {
            answered = (try? workers.run(until: Date(timeIntervalSinceNow: 30)) { true }) ?? false
            if !answered { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(answered, "the token is used again once the hung call returns")
    }
}
