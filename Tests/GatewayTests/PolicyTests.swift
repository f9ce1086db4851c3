import Foundation
import Gateway
import MIME
import SMIME
import TestSupport
import Testing

/// The failure policy for malformed mail (`OnMalformed`), the signing-time choice for mail that
/// waited (`SigningTimeSkew`) and `AllowSHA1Signatures`, through `Gateway.decide`.
@Suite(.serialized) struct PolicyTests {
    /// The configuration of `GatewayTests` with some lines added, loaded as the daemon does.
    static func gateway(_ extra: String = "") throws -> Gateway {
        let pki = try TestPKI.shared
        var text = """
            AuthservID         mail.dienbien.gov.vn
            SigningTable       \(try GatewayTests.gateway.configuration.signingTable!)
            PKCS11Module       \(pki.softHSMModule)
            TrustAnchors       \(pki.path("ca/root.pem"))
            CRLDirectory       \(pki.path("crl"))
            RevocationCheck    crl
            Intermediates      \(pki.path("ca/intermediate.pem"))
            StateDirectory     \(try pki.temporaryDirectory("policy"))

            """
        text += extra
        return try Gateway.load(Configuration.parse(text, file: "policy.conf"))
    }

    /// Multipart nested `depth` levels deep, from an address the PEM key line (`*`) signs for.
    static func nested(depth: Int, date: String? = nil) -> (headers: [HeaderField], body: [UInt8]) {
        var text = "From: vanphong.ubnd@dienbien.gov.vn\r\nTo: ubnd@muonglay.dienbien.gov.vn\r\nSubject: nested\r\n"
        if let date { text += "Date: \(date)\r\n" }
        text += "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"d0\"\r\n\r\n"
        var body = ""
        for level in 0..<depth {
            body += "--d\(level)\r\nContent-Type: multipart/mixed; boundary=\"d\(level + 1)\"\r\n\r\n"
        }
        body += "--d\(depth)\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        for level in stride(from: depth, through: 0, by: -1) { body += "--d\(level)--\r\n" }
        // The header alone, as the milter is given it; the body as it comes, unparsed.
        let header = try! Message(bytes: Array(text.utf8))
        return (header.root.headers, Array(body.utf8))
    }

    static let staff = Envelope(
        clientAddress: "127.0.0.1", sender: "vanphong.ubnd@dienbien.gov.vn", recipients: ["someone@example.org"], queueID: "5DEEP")

    // MARK: OnMalformed

    @Test func malformedStaffMailIsRejectedPermanentlyByDefault() throws {
        let (headers, body) = Self.nested(depth: 40)
        let decision = try Self.gateway().decide(envelope: Self.staff, headers: headers, body: body)
        #expect(decision.reply.disposition == .reject)
        #expect(decision.reply.code == "554" && decision.reply.enhancedCode == "5.6.0")
        #expect(decision.reply.text == "message cannot be signed because its parts are nested too deeply (messages forwarded inside one another); send it again in a simpler form")
        guard case .failed(let why, let detail) = decision.outcome else {
            Issue.record("not a failure: \(decision.outcome)")
            return
        }
        #expect(why == "malformed" && detail.hasPrefix("the message cannot be prepared for signing: "))
        #expect(!decision.actions.contains { if case .replaceBody = $0 { true } else { false } })
        #expect(decision.event?.reason == "malformed")
    }

    @Test func onMalformedAcceptDeliversItUnsignedAndRecordsWhy() throws {
        let (headers, body) = Self.nested(depth: 40)
        let decision = try Self.gateway("OnMalformed accept\n").decide(envelope: Self.staff, headers: headers, body: body)
        #expect(decision.reply == .accept)
        #expect(!decision.actions.contains { if case .replaceBody = $0 { true } else { false } })
        #expect(decision.event?.outcome == .unsigned && decision.event?.reason == "malformed")
        #expect(decision.counter == "failed.malformed")
        #expect(decision.summary.hasPrefix("failed (malformed) from=vanphong.ubnd@dienbien.gov.vn: the message cannot be prepared for signing"))
    }

    @Test func aTokenFaultStillGetsOnSignFailureNotOnMalformed() throws {
        let (headers, body) = GatewayTests.message(from: "chanh@absent.dienbien.gov.vn")
        let decision = try Self.gateway().decide(
            envelope: Envelope(clientAddress: "127.0.0.1", sender: "chanh@absent.dienbien.gov.vn"), headers: headers, body: body)
        #expect(decision.reply.disposition == .tempfail && decision.reply.code == "451")
    }

    @Test func malformedMailForAMissingTokenIsRejectedNotDeferred() throws {
        let (nested, body) = Self.nested(depth: 40)
        let headers = nested.map {
            $0.hasName("From") ? HeaderField(name: "From", value: " chanh@absent.dienbien.gov.vn") : $0
        }
        let decision = try Self.gateway().decide(
            envelope: Envelope(clientAddress: "127.0.0.1", sender: "chanh@absent.dienbien.gov.vn"), headers: headers, body: body)
        #expect(decision.reply.code == "554" && decision.reply.enhancedCode == "5.6.0")
    }

    @Test func onMalformedTakesAcceptOrRejectOnly() throws {
        #expect(throws: ConfigurationError.self) { try Self.gateway("OnMalformed tempfail\n") }
        #expect(try Self.gateway().configuration.onMalformed == .reject)
        #expect(try Self.gateway("OnMalformed accept\n").configuration.onMalformed == .accept)
    }

    // MARK: signing time

    static func signedBody(_ decision: Decision) -> [UInt8]? {
        for action in decision.actions {
            if case .replaceBody(let pieces) = action { return pieces.flatMap { $0 } }
        }
        return nil
    }

    /// The verdict on the message as the gateway signed it, by the gateway's own verifier.
    static func verdictOnSigned(_ decision: Decision, headers: [HeaderField], gateway: Gateway) throws -> Verdict {
        let body = try #require(signedBody(decision))
        var edited = headers
        for action in decision.actions {
            if case .header(let edit) = action { edited = HeaderEdit.apply([edit], to: edited) }
        }
        let bytes = edited.flatMap(\.canonicalBytes) + [0x0D, 0x0A] + body
        let message = try Message(bytes: bytes)
        return Verification.verify(
            message: message, from: "vanphong.ubnd@dienbien.gov.vn", verifier: try #require(gateway.verifier))
    }

    static func rfc5322(_ date: Date) -> String {
        DateText.rfc5322(date, offset: 0)
    }

    @Test func mailThatWaitedIsSignedWithoutSigningTime() throws {
        let gateway = try Self.gateway()
        let (headers, body) = Self.nested(depth: 1, date: Self.rfc5322(Date(timeIntervalSinceNow: -3 * 3600)))
        let decision = gateway.decide(envelope: Self.staff, headers: headers, body: body)
        let key = try TestPKI.shared.path("certs/vanphong.key")
        #expect(decision.outcome == .signed(signer: "\(key) (signing table line 5)"))
        let verdict = try Self.verdictOnSigned(decision, headers: headers, gateway: gateway)
        #expect(verdict.result == .pass, "\(verdict.reason)")
        #expect(verdict.signingTime == nil)
    }

    @Test func freshMailKeepsItsSigningTime() throws {
        let gateway = try Self.gateway()
        let (headers, body) = Self.nested(depth: 1, date: Self.rfc5322(Date(timeIntervalSinceNow: -600)))
        let decision = gateway.decide(envelope: Self.staff, headers: headers, body: body)
        let verdict = try Self.verdictOnSigned(decision, headers: headers, gateway: gateway)
        #expect(verdict.result == .pass, "\(verdict.reason)")
        #expect(verdict.signingTime.map { abs($0.timeIntervalSinceNow) < 600 } == true)
    }

    @Test func theSkewIsTheConfiguredOne() throws {
        let now = Date()
        let headers = Self.nested(depth: 1, date: Self.rfc5322(now.addingTimeInterval(-600))).headers
        #expect(Signing.signingTime(for: headers, now: now, skew: 3600) == now)
        #expect(Signing.signingTime(for: headers, now: now, skew: 300) == nil)
        #expect(Signing.signingTime(for: Self.nested(depth: 1).headers, now: now, skew: 60) == now, "no Date: nothing to disagree with")
        let gateway = try Self.gateway("SigningTimeSkew 300\n")
        let (signedHeaders, body) = Self.nested(depth: 1, date: Self.rfc5322(now.addingTimeInterval(-600)))
        let decision = gateway.decide(envelope: Self.staff, headers: signedHeaders, body: body)
        #expect(try Self.verdictOnSigned(decision, headers: signedHeaders, gateway: gateway).signingTime == nil)
    }

    // MARK: AllowSHA1Signatures

    @Test func allowSHA1SignaturesReachesTheVerifier() throws {
        #expect(try Self.gateway().verifier?.allowSHA1Signatures == false)
        #expect(try Self.gateway("AllowSHA1Signatures yes\n").verifier?.allowSHA1Signatures == true)
    }
}
