import Foundation
import Logging
import TestSupport
import Testing

@testable import SMIME

/// The download cache's rules with downloads standing in for a CA server: one download per
/// address in flight, doubling back-off, background refresh of what runs out.
@Suite struct FetchCacheTests {
    func cache(backoff: TimeInterval = 0.2) -> FetchCache {
        FetchCache(directory: nil, backoffBase: backoff, backoffCap: 10, logger: Logger(label: "test"), refreshing: false)
    }

    func item(validFor seconds: TimeInterval) -> FetchCache.Item {
        FetchCache.Item(
            value: .certificates([]), bytes: [1], fetchedAt: Date(), validUntil: Date(timeIntervalSinceNow: seconds),
            persist: false)
    }

    @Test func oneDownloadPerAddressIsInFlightAndWaitersShareIt() {
        let cache = cache()
        let calls = Tally()
        for _ in 0..<5 {
            cache.start("http://ca.example/a.crl") {
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
        let failing: @Sendable () throws -> FetchCache.Item = {
            calls.add()
            throw SMIMEError("refused")
        }
        let key = "http://down.example/a.crl"
        cache.start(key, failing)
        cache.wait(until: Date(timeIntervalSinceNow: 5)) { !cache.isInFlight(key) }
        let first = try #require(cache.failure(key))
        #expect(first.count == 1 && first.error.contains("refused"))
        cache.start(key, failing)  // backing off: not tried
        Thread.sleep(forTimeInterval: 0.05)
        #expect(calls.value == 1)
        Thread.sleep(forTimeInterval: 1.1)
        cache.start(key, failing)
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
        cache.start(key) {
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
}
