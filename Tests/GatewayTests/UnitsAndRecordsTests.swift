import Foundation
import Gateway
import MIME
import SMIME
import TestSupport
import Testing

/// Units, directions and records, and the headers internal recipients get: over the same keys
/// and test CA as `GatewayTests`.
@Suite struct UnitsAndRecordsTests {
    static var pki: TestPKI {
        get throws { try TestPKI.shared }
    }

    static let units = try! Units.parse(
        """
        # the province's units
        *@stttt.dienbien.gov.vn        Sở Thông tin và Truyền thông
        vanphong.ubnd@dienbien.gov.vn  Ủy ban nhân dân tỉnh
        *@.muonglay.dienbien.gov.vn    Ủy ban nhân dân thị xã Mường Lay
        """, file: "units")

    /// GatewayTests' tables without the catch-all `*` line, so that some mail has no signer.
    static var gateway: Gateway {
        get throws { try sharedGateway.get() }
    }

    private static let sharedGateway = Result<Gateway, any Error> {
        let shared = try GatewayTests.gateway
        return Gateway(
            configuration: shared.configuration,
            signingTable: SigningTable(entries: shared.signingTable!.entries.filter { $0.pattern != "*" }),
            authorizedSigners: nil, verifier: shared.verifier, units: units)
    }

    @Test func aUnitIsTheMostSpecificPatternElseTheDomain() throws {
        #expect(Self.units.unit(of: "ketoan@STTTT.dienbien.gov.vn") == "Sở Thông tin và Truyền thông")
        #expect(Self.units.unit(of: "vanphong.ubnd@dienbien.gov.vn") == "Ủy ban nhân dân tỉnh")
        #expect(Self.units.unit(of: "other@dienbien.gov.vn") == "dienbien.gov.vn")
        #expect(Self.units.unit(of: "a@ubnd.muonglay.dienbien.gov.vn") == "Ủy ban nhân dân thị xã Mường Lay")
        #expect(Self.units.names.count == 3)
    }

    @Test func theSampleNamesThePlansThirteenUnits() throws {
        let sample = try Units.load(path: TestPKI.repositoryRoot + "/conf/units.sample")
        #expect(sample.names.count == 13)
        #expect(sample.unit(of: "vanphong.ubnd@dienbien.gov.vn") == "Ủy ban nhân dân tỉnh")
        #expect(sample.unit(of: "chanhvp@muongang.dienbien.gov.vn") == "Ủy ban nhân dân huyện Mường Ảng")
    }

    @Test(arguments: [
        ("*@stttt.dienbien.gov.vn\n", 1, "has no unit name"),
        ("# units\nstttt.dienbien.gov.vn  Sở\n", 2, "is not a pattern"),
        ("*@a.vn  A\n*@a.vn  B\n", 2, "appears twice"),
    ])
    func aBadUnitsLineNamesItsLineAndTheFix(text: String, line: Int, message: String) {
        #expect {
            try Units.parse(text, file: "/etc/smime-milter/units")
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.line == line && error.message.contains(message) && !error.hint.isEmpty
        }
    }

    @Test func localDomainsDefaultToTheTablesDomains() throws {
        #expect(try Self.gateway.localDomains.contains("stttt.dienbien.gov.vn"))
        #expect(try Self.gateway.localDomains.contains(".muonglay.dienbien.gov.vn"))
        #expect(try Self.gateway.isLocal("ubnd@ubnd.muonglay.dienbien.gov.vn"))
        #expect(try Self.gateway.isLocal("vanphong.ubnd@dienbien.gov.vn"))
        #expect(try !Self.gateway.isLocal("someone@example.org"))
    }

    static func edited(_ decision: Decision, _ headers: [HeaderField]) -> [HeaderField] {
        HeaderEdit.apply(decision.actions.compactMap { if case .header(let edit) = $0 { edit } else { nil } }, to: headers)
    }

    /// Internal mail (one unit to another) leaves signed, and its recipients get the headers for
    /// the signature just made; a forged copy in it is removed.
    @Test func internalMailIsSignedAndItsRecipientsSeeTheVerdict() throws {
        let (headers, body) = GatewayTests.message(
            from: "vanthu.stttt@dienbien.gov.vn", extra: ["Authentication-Results: mail.dienbien.gov.vn; smime=pass (forged)"])
        let envelope = Envelope(
            clientAddress: "127.0.0.1", sender: "vanthu.stttt@dienbien.gov.vn", recipients: ["ubnd@ubnd.muonglay.dienbien.gov.vn"],
            queueID: "4INT")
        let decision = try Self.gateway.decide(envelope: envelope, headers: headers, body: body)
        guard case .signed = decision.outcome else { Issue.record("\(decision.outcome)"); return }
        let result = Self.edited(decision, headers)
        #expect(result.filter { $0.hasName("Authentication-Results") }.count == 1)
        #expect(result[0].value.hasPrefix("mail.dienbien.gov.vn; smime=pass body.smime-identifier=vanthu.stttt@dienbien.gov.vn"))
        #expect(result[1].name == VerificationHeaders.readableName)
        let event = try #require(decision.event)
        #expect(event.direction == .internal && event.outcome == .signed && event.result == "pass")
        #expect(event.unit == "dienbien.gov.vn" && event.recipientUnits == ["Ủy ban nhân dân thị xã Mường Lay"])
        #expect(event.queueID == "4INT")
        #expect(event.signerSubject?.contains("CN=") == true && event.signerSerial != nil)
    }

    /// A unit's seal signing a member of staff's mail: the seal's address is not the From
    /// address, and the internal recipients are told so, as their mail client will.
    @Test func theSealOnStaffMailIsShownAsPolicyToInternalRecipients() throws {
        let (headers, body) = GatewayTests.message(from: "ketoan@stttt.dienbien.gov.vn")
        let envelope = Envelope(clientAddress: "127.0.0.1", sender: "ketoan@stttt.dienbien.gov.vn", recipients: ["a@stttt.dienbien.gov.vn"])
        let decision = try Self.gateway.decide(envelope: envelope, headers: headers, body: body)
        #expect(Self.edited(decision, headers)[0].value.contains("smime=policy"))
        #expect(decision.event?.outcome == .signed && decision.event?.result == "policy" && decision.event?.unit == "Sở Thông tin và Truyền thông")
    }

    /// The verdict on the gateway's own signature is reused within a minute for the same signer
    /// and From address only: another address on the same seal gets its own reason.
    @Test func aReusedVerdictIsNeverAnotherAddresss() throws {
        for from in ["ketoan@stttt.dienbien.gov.vn", "ketoan@stttt.dienbien.gov.vn", "vanthu2@stttt.dienbien.gov.vn"] {
            let (headers, body) = GatewayTests.message(from: from)
            let envelope = Envelope(clientAddress: "127.0.0.1", sender: from, recipients: ["a@stttt.dienbien.gov.vn"])
            let decision = try Self.gateway.decide(envelope: envelope, headers: headers, body: body)
            let results = Self.edited(decision, headers)[0].value
            #expect(results.contains("smime=policy") && results.contains("is not the From address \(from)"), "\(results)")
        }
    }

    @Test func mailOnlyToOutsideRecipientsGetsNoHeaders() throws {
        let (headers, body) = GatewayTests.message(from: "ketoan@stttt.dienbien.gov.vn")
        let envelope = Envelope(clientAddress: "127.0.0.1", sender: "ketoan@stttt.dienbien.gov.vn", recipients: ["a@example.org"])
        let decision = try Self.gateway.decide(envelope: envelope, headers: headers, body: body)
        #expect(!Self.edited(decision, headers).contains { $0.hasName("Authentication-Results") })
        #expect(decision.event?.direction == .outgoing && decision.event?.outcome == .signed && decision.event?.result == nil)
    }

    /// Staff who sign in their mail client: verified on the way out with its own verdict, the
    /// body untouched, internal recipients told the result.
    @Test func mailTheSenderSignedIsVerifiedOnTheWayOutAndLeftAsItIs() throws {
        let (headers, body) = try GatewayTests.signedIncoming()
        let envelope = Envelope(
            clientAddress: "127.0.0.1", sender: "vanphong.ubnd@dienbien.gov.vn", recipients: ["stttt@stttt.dienbien.gov.vn"])
        let decision = try Self.gateway.decide(envelope: envelope, headers: headers, body: body)
        guard case .signedBySender(let verdict) = decision.outcome else { Issue.record("\(decision.outcome)"); return }
        #expect(verdict.result == .pass)
        #expect(decision.counter == "sender-signed.pass")
        #expect(decision.summary.hasPrefix("signed by the sender, verified smime=pass from=vanphong.ubnd@dienbien.gov.vn"))
        #expect(!decision.actions.contains { if case .replaceBody = $0 { true } else { false } })
        #expect(Self.edited(decision, headers)[0].value.contains("smime=pass"))
        let event = try #require(decision.event)
        #expect(event.outcome == .senderSigned && event.result == "pass" && event.unit == "Ủy ban nhân dân tỉnh")

        let tampered = try GatewayTests.signedIncoming(tamper: true)
        let bad = try Self.gateway.decide(envelope: envelope, headers: tampered.headers, body: tampered.body)
        #expect(bad.counter == "sender-signed.fail" && bad.event?.result == "fail" && bad.reply == .accept)
    }

    @Test func unsignedInternalMailIsRecordedWithWhyAndShownAsNone() throws {
        let (headers, body) = GatewayTests.message(from: "nobody@elsewhere.vn")
        let envelope = Envelope(clientAddress: "127.0.0.1", sender: "nobody@elsewhere.vn", recipients: ["a@stttt.dienbien.gov.vn"])
        let decision = try Self.gateway.decide(envelope: envelope, headers: headers, body: body)
        #expect(decision.outcome == .skipped(why: "no-signer"))
        #expect(Self.edited(decision, headers)[0].value.contains("smime=none"))
        #expect(decision.event?.outcome == .unsigned && decision.event?.reason == "no-signer" && decision.event?.unit == "elsewhere.vn")
    }

    @Test func incomingMailIsRecordedForEachRecipientUnit() throws {
        let (headers, body) = try GatewayTests.signedIncoming()
        let envelope = Envelope(
            clientAddress: "203.0.113.7", sender: "x@example.org",
            recipients: ["a@stttt.dienbien.gov.vn", "b@stttt.dienbien.gov.vn", "vanphong.ubnd@dienbien.gov.vn"])
        let event = try #require(Self.gateway.decide(envelope: envelope, headers: headers, body: body).event)
        #expect(event.direction == .incoming && event.outcome == .verified && event.result == "pass" && event.unit == nil)
        #expect(event.recipientUnits == ["Sở Thông tin và Truyền thông", "Ủy ban nhân dân tỉnh"])
        #expect(event.ended(deferred: true, rejected: false, why: "tempfail").outcome == .deferred)
    }
}
