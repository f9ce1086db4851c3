import Foundation
import TestSupport
import Testing

@testable import SMIME

/// Failures carry codes that callers and tests match, and where they were raised.
@Suite struct SMIMEErrorTests {
    let pki: TestPKI

    init() throws {
        pki = try TestPKI.shared
    }

    func code(_ body: () throws -> Void) -> SMIMEError.Code? {
        do {
            try body()
            return nil
        } catch {
            return (error as? SMIMEError)?.code
        }
    }

    @Test func eachFailureHasItsCode() throws {
        #expect(code { _ = try PEMKeySigner(keyFile: "/nonexistent/key.pem", certificateFile: pki.path("certs/vanphong.pem")) } == .file)
        #expect(code { _ = try PEMKeySigner(keyFile: pki.path("certs/vanphong.pem"), certificateFile: pki.path("certs/vanphong.pem")) } == .key)
        #expect(code { _ = try PEMKeySigner(keyFile: pki.path("certs/vanphong.key"), certificateFile: pki.path("certs/revoked.pem")) } == .key)
        #expect(code { _ = try X509Handle(der: [0x30, 0x03, 0x02, 0x01, 0x01]) } == .certificate)
        let empty = try pki.temporaryDirectory("no-anchors")
        #expect(code { _ = try TrustStore(anchors: [empty], intermediates: [], crlDirectory: nil, revocation: .none, fetchTimeout: 5, fetchHosts: [], cacheDirectory: nil, gracePeriod: 0) } == .trust)
        #expect(code { _ = try TrustStore(anchors: ["/nonexistent/trust"], intermediates: [], crlDirectory: nil, revocation: .none, fetchTimeout: 5, fetchHosts: [], cacheDirectory: nil, gracePeriod: 0) } == .file)
        #expect(code { _ = try FetchPolicy(fetchHosts: ["ca.example:http"]) } == .fetchRefused)
    }

    @Test func anErrorSaysWhereItWasRaised() {
        let error = SMIMEError("testing")
        #expect(error.location.hasPrefix("SMIMETests/SMIMEErrorTests.swift:"), "\(error.location)")
        #expect(error.code == .openssl)
    }
}
