import Foundation
import Testing

@testable import SMIME

/// Where a download may go: hosts the configured CA certificates name or FetchHosts lists, port
/// 80 unless listed, public addresses unless the host is listed.
@Suite struct FetchPolicyTests {
    let policy = try! FetchPolicy(
        fetchHosts: ["crl.internal.example", "127.0.0.1:18080", "[::1]:8443"], named: ["ca.gov.vn"])

    func refusal(_ url: String) -> FetchPolicy.Refusal? {
        if case .failure(let refusal) = policy.target(url) { return refusal }
        return nil
    }

    @Test func hostsTheAnchorsNameAreFetchedOnPort80() throws {
        let target = try policy.target("http://CA.gov.vn./crl/root.crl").get()
        #expect(target == .init(host: "ca.gov.vn", port: 80, path: "/crl/root.crl", listed: false))
        #expect(refusal("http://ca.gov.vn:8080/crl") == .port("ca.gov.vn", 8080))
    }

    @Test func anyOtherHostIsRefused() {
        #expect(refusal("http://attacker.example/crl") == .hostNotNamed("attacker.example"))
        #expect(refusal("http://127.0.0.1:18777/internal-admin/secret") == .port("127.0.0.1", 18777))
        #expect(refusal("http://127.0.0.2/x") == .hostNotNamed("127.0.0.2"))
        #expect(refusal("http://10.1.2.3/crl") == .hostNotNamed("10.1.2.3"))
        #expect(refusal("http://[fe80::1]/crl") == .hostNotNamed("fe80::1"))
    }

    @Test func listedHostsAndPortsAreAllowedAndMayBeLoopback() throws {
        #expect(try policy.target("http://127.0.0.1:18080/ca/x.der").get().listed)
        #expect(try policy.target("http://crl.internal.example/a.crl").get().port == 80)
        #expect(try policy.target("http://[::1]:8443/").get().host == "::1")
        #expect(refusal("http://127.0.0.1/") == nil, "a listed host is allowed on port 80 too")
    }

    @Test func oddAddressesAreRefused() {
        #expect(refusal("https://ca.gov.vn/crl") == .notHTTP)
        #expect(refusal("ldap://ca.gov.vn/cn=crl") == .notHTTP)
        #expect(refusal("http://user@ca.gov.vn/crl") == .malformed)
        #expect(refusal("http://ca.gov.vn:99999/crl") == .malformed)
        #expect(refusal("http:///crl") == .malformed)
        #expect(refusal("http://ca.gov.vn/a b") == .malformed)
    }

    @Test func nonPublicAddressesAreRecognised() {
        let refused: [[UInt8]] = [
            [127, 0, 0, 1], [10, 9, 8, 7], [172, 20, 0, 1], [192, 168, 1, 1], [169, 254, 169, 254], [0, 0, 0, 0],
            [224, 0, 0, 1], [100, 64, 0, 1], [255, 255, 255, 255],
            [UInt8](repeating: 0, count: 15) + [1], [UInt8](repeating: 0, count: 16),
            [0xfe, 0x80] + [UInt8](repeating: 0, count: 14), [0xfd, 0x00] + [UInt8](repeating: 0, count: 14),
            [0xff, 0x02] + [UInt8](repeating: 0, count: 14),
            [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 10, 0, 0, 1],
        ]
        for address in refused { #expect(FetchPolicy.nonPublic(address) != nil, "\(address)") }
        #expect(FetchPolicy.nonPublic([8, 8, 8, 8]) == nil)
        #expect(FetchPolicy.nonPublic([0x20, 0x01, 0x48, 0x60] + [UInt8](repeating: 0, count: 12)) == nil)
    }

    @Test func aNameThatResolvesToLoopbackIsRefusedBeforeConnecting() throws {
        // localhost resolves to loopback: refused when named by a CA certificate, not listed.
        let named = try FetchPolicy(fetchHosts: [], named: ["localhost"])
        let target = try named.target("http://localhost/crl").get()
        #expect(throws: FetchPolicy.Refusal.self) { _ = try HTTPFetch.resolve(target) }
        let listed = try FetchPolicy(fetchHosts: ["localhost"])
        #expect(try HTTPFetch.resolve(listed.target("http://localhost/crl").get()).isEmpty == false)
    }

    @Test func badFetchHostsEntriesSayHowToWriteThem() {
        for entry in ["ca.example:http", "[::1", "", "ca example", "ca.example:0"] {
            #expect(throws: SMIMEError.self, "\(entry)") { _ = try FetchPolicy(fetchHosts: [entry]) }
        }
    }
}
