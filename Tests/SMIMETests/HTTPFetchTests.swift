import Foundation
import TestSupport
import Testing

@testable import SMIME

/// The HTTP client over a socket it connected itself: a server that never answers costs a
/// fetch thread its timeout, not for ever.
@Suite struct HTTPFetchTests {
    @Test func aSilentServerTimesOut() throws {
        let port = UInt16(30000 + Int(getpid()) % 20000)
        let server = try SilentServer(port: port)
        defer { server.close() }
        let policy = try FetchPolicy(fetchHosts: ["127.0.0.1:\(port)"])
        let target = try policy.target("http://127.0.0.1:\(port)/a.crl").get()
        let started = Date()
        #expect(throws: SMIMEError.self) { _ = try HTTPFetch.get(target, timeout: 1, maximumBytes: 1 << 20) }
        let took = Date().timeIntervalSince(started)
        #expect(took >= 0.9 && took < 3, "\(took) s")
    }
}
