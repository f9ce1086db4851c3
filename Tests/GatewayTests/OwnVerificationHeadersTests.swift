import Foundation
import MIME
import SMIME
import Testing

@testable import Gateway

/// The header texts kept for the gateway's own verdicts are those a fresh rendering writes:
/// reused only for the same verdict in the same second of signing time.
@Suite struct OwnVerificationHeadersTests {
    static func gateway() -> Gateway {
        var configuration = Configuration()
        configuration.headerLanguage = .vi
        return Gateway(configuration: configuration, signingTable: nil, authorizedSigners: nil, verifier: nil)
    }

    static func verdict(_ result: Verdict.Result, serial: String, at time: TimeInterval) -> Verdict {
        var verdict = Verdict(result: result, because: .notSigned)
        verdict.commonName = "Sở Thông tin và Truyền thông"
        verdict.emailAddresses = ["stttt@dienbien.gov.vn"]
        verdict.serial = serial
        verdict.issuer = "CN=Test CA,O=Ban Cơ yếu Chính phủ,C=VN"
        verdict.signingTime = Date(timeIntervalSince1970: time)
        return verdict
    }

    @Test func keptTextsAreWhatAFreshRenderingWrites() {
        let gateway = Self.gateway()
        let forged = [HeaderField(name: "X-SMIME-Verification", value: "pass; forged")]
        let verdicts = [
            Self.verdict(.pass, serial: "1A", at: 1_733_356_800.1),
            Self.verdict(.pass, serial: "1A", at: 1_733_356_800.9),  // the same second: kept
            Self.verdict(.pass, serial: "1A", at: 1_733_356_801.0),  // the next second
            Self.verdict(.policy, serial: "1A", at: 1_733_356_801.2),  // another verdict
            Self.verdict(.policy, serial: "2B", at: 1_733_356_801.3),
            Self.verdict(.pass, serial: "1A", at: 1_733_356_800.5),  // back to the first
        ]
        for verdict in verdicts {
            #expect(gateway.ownVerificationHeaders(verdict, line: 3, headers: forged) == gateway.verificationHeaders(verdict, headers: forged))
        }
        // Without a signing time (signed long after its Date): none shown, still the same texts.
        var untimed = verdicts[0]
        untimed.signingTime = nil
        #expect(gateway.ownVerificationHeaders(untimed, line: 3, headers: []) == gateway.verificationHeaders(untimed, headers: []))
    }
}
