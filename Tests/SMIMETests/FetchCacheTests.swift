import Foundation
import Logging
import TestSupport
import Testing

@testable import SMIME

/// The download cache's rules with downloads standing in for a CA server: one download per
/// address in flight, doubling back-off, background refresh of what runs out.
@Suite struct FetchCacheTests {
    func cache(backoff: TimeInterval = 0.2) -> FetchCache {
        let cache = FetchCache(
            directory: nil, backoffBase: backoff, backoffCap: 10, memoryBudget: 1 << 20, failureLimit: 100,
            pool: FetchPool(threads: 2, queueLimit: 16), logger: Logger(label: "test"), refreshing: false)
        cache.install(policy)
        return cache
    }

    /// The hosts these tests name, allowed.
    let policy = try! FetchPolicy(fetchHosts: ["ca.example", "down.example"])

    func item(validFor seconds: TimeInterval) -> FetchCache.Item {
        FetchCache.Item(
            value: .certificates([]), bytes: [1], fetchedAt: Date(), validUntil: Date(timeIntervalSinceNow: seconds),
            persist: false)
    }

    @Test func oneDownloadPerAddressIsInFlightAndWaitersShareIt() {
        let cache = cache()
        let calls = Tally()
        for _ in 0..<5 {
            cache.start("http://ca.example/a.crl", url: "http://ca.example/a.crl", policy: policy, allowance: nil) { _ in
                calls.add()
                Thread.sleep(forTimeInterval: 0.2)
                return self.item(validFor: 60)
            }
        }
        cache.wait(until: Date(timeIntervalSinceNow: 5)) { cache.item("http://ca.example/a.crl") != nil }
        #expect(calls.value == 1)
        #expect(cache.item("http://ca.example/a.crl") != nil)
    }

    @Test func aFailedAddressBacksOffAndTheBackOffDoubles() throws {
        let cache = cache(backoff: 1)
        let calls = Tally()
        let failing: FetchCache.Download = { _ in
            calls.add()
            throw SMIMEError("refused")
        }
        let key = "http://down.example/a.crl"
        cache.start(key, url: key, policy: policy, allowance: nil, failing)
        cache.wait(until: Date(timeIntervalSinceNow: 5)) { !cache.isInFlight(key) }
        let first = try #require(cache.failure(key))
        #expect(first.count == 1 && first.error.contains("refused"))
        cache.start(key, url: key, policy: policy, allowance: nil, failing)  // backing off: not tried
        Thread.sleep(forTimeInterval: 0.05)
        #expect(calls.value == 1)
        Thread.sleep(forTimeInterval: 1.1)
        cache.start(key, url: key, policy: policy, allowance: nil, failing)
        cache.wait(until: Date(timeIntervalSinceNow: 5)) { !cache.isInFlight(key) }
        let second = try #require(cache.failure(key))
        #expect(calls.value == 2 && second.count == 2)
        #expect(first.delay == 1 && second.delay == 2, "\(first.delay), then \(second.delay)")
    }

    @Test func itemsAboutToRunOutAreFetchedAgainInTheBackground() {
        let cache = cache()
        let calls = Tally()
        let key = "http://ca.example/soon.crl"
        // A third download would wait here, in flight, until the end of the test.
        let gate = DispatchSemaphore(value: 0)
        defer { gate.signal() }
        cache.start(key, url: key, policy: policy, allowance: nil) { _ in
            calls.add()
            if calls.value > 2 { gate.wait() }
            return self.item(validFor: calls.value == 1 ? 30 : 3600)
        }
        cache.wait(until: Date(timeIntervalSinceNow: 30)) { cache.item(key) != nil }
        cache.refreshDue()  // 30 s left of a 30 s life: within its last quarter (and under a minute)
        cache.wait(until: Date(timeIntervalSinceNow: 30)) { calls.value == 2 && !cache.isInFlight(key) }
        #expect(calls.value == 2)
        cache.refreshDue()  // an hour left: not yet
        // refreshDue marks what it starts as in flight before it returns, and a third download
        // stays in flight at the gate: nothing in flight now is nothing started.
        #expect(!cache.isInFlight(key))
        #expect(calls.value == 2)
    }
    @Test func aDownloadThatEndsWhileTheWaiterLooksIsNotMissed() {
        // done() runs with the lock released; the download ends during its first call. A wait
        // that then sleeps until the next wake-up would sleep to its deadline.
        let cache = cache()
        let key = "http://ca.example/gap.crl"
        let calls = Tally()
        let started = Date()
        cache.wait(until: Date(timeIntervalSinceNow: 3)) {
            calls.add()
            if calls.value == 1 {
                cache.start(key, url: key, policy: policy, allowance: nil) { _ in self.item(validFor: 60) }
                while cache.isInFlight(key) { Thread.sleep(forTimeInterval: 0.01) }
                return false
            }
            return cache.item(key) != nil
        }
        #expect(Date().timeIntervalSince(started) < 1, "the wait missed the download's wake-up")
        #expect(calls.value == 2)
    }

    @Test func leastRecentlyUsedItemsGoWhenTheBudgetIsFull() {
        let cache = FetchCache(
            directory: nil, backoffBase: 1, backoffCap: 10, memoryBudget: 3000, failureLimit: 2,
            pool: FetchPool(threads: 2, queueLimit: 16), logger: Logger(label: "test"), refreshing: false)
        func fetch(_ key: String, bytes: Int) {
            cache.start(key, url: key, policy: policy, allowance: nil) { _ in
                FetchCache.Item(
                    value: .certificates([]), bytes: [UInt8](repeating: 1, count: bytes), fetchedAt: Date(),
                    validUntil: nil, persist: false)
            }
            cache.wait(until: Date(timeIntervalSinceNow: 5)) { !cache.isInFlight(key) }
        }
        fetch("http://ca.example/1", bytes: 1000)
        fetch("http://ca.example/2", bytes: 1000)
        fetch("http://ca.example/3", bytes: 1000)
        _ = cache.item("http://ca.example/1")  // used: 2 is now the least recent
        fetch("http://ca.example/4", bytes: 1000)
        #expect(cache.item("http://ca.example/2") == nil)
        #expect(cache.item("http://ca.example/1") != nil && cache.item("http://ca.example/4") != nil)
        #expect(cache.size.bytes <= 3000)
        for index in 0..<5 {
            let key = "http://down.example/\(index)"
            cache.start(key, url: key, policy: policy, allowance: nil) { _ in throw SMIMEError("refused") }
            cache.wait(until: Date(timeIntervalSinceNow: 5)) { !cache.isInFlight(key) }
        }
        #expect(cache.size.failures == 2)
    }

    @Test func aMessageStartsAFewDownloadsAtMost() {
        let cache = cache()
        let allowance = FetchCache.Allowance(2)
        let outcomes = (0..<4).map { index in
            let key = "http://ca.example/\(index)"
            return cache.start(key, url: key, policy: policy, allowance: allowance) { _ in self.item(validFor: 60) }
        }
        #expect(outcomes == [.started, .started, .overAllowance, .overAllowance])
    }

    @Test func aRefusedAddressIsNeverDownloaded() {
        let cache = cache()
        let calls = Tally()
        for url in ["http://127.0.0.1:8080/admin", "http://10.0.0.1/crl", "http://evil.example/crl"] {
            let outcome = cache.start(url, url: url, policy: policy, allowance: nil) { _ in
                calls.add()
                return self.item(validFor: 60)
            }
            guard case .refused = outcome else {
                Issue.record("\(url) was not refused: \(outcome)")
                continue
            }
        }
        Thread.sleep(forTimeInterval: 0.1)
        #expect(calls.value == 0)
    }
}
