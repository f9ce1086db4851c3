import Foundation
import Gateway
import MIME
import SMIME
import TestSupport
import Testing

/// `Gateway.decide` over every row of the decision table, with real keys: SoftHSM tokens for the
/// units, a PEM key for the default line, the test CA as trust anchor.
@Suite(.serialized) struct GatewayTests {
    static var pki: TestPKI {
        get throws { try TestPKI.shared }
    }

    /// A configuration and tables as a postmaster writes them, loaded the way the daemon does.
    /// Made once; if that fails, every test that uses it fails with the reason.
    static var gateway: Gateway {
        get throws { try sharedGateway.get() }
    }

    private static let sharedGateway = Result<Gateway, any Error> {
        let pki = try TestPKI.shared
        let directory = try pki.temporaryDirectory("gateway")
        let table = """
            vanthu.stttt@dienbien.gov.vn  \(pki.keyURI(token: "STTTT-DienBien", object: "vanthu"))  chain=\(pki.path("ca/chain.pem"))
            *@stttt.dienbien.gov.vn       \(pki.keyURI(token: "STTTT-DienBien", object: "unit-seal"))  chain=\(pki.path("ca/chain.pem"))
            *@.muonglay.dienbien.gov.vn   \(pki.keyURI(token: "UBND-MuongLay", object: "unit-seal"))  chain=\(pki.path("ca/chain.pem"))
            *@absent.dienbien.gov.vn      pkcs11:token=Absent-Token;object=unit-seal;type=private?pin-source=file:\(pki.pinFile(token: "PIN-Test"))
            *                             \(pki.path("certs/vanphong.key")) cert=\(pki.path("certs/vanphong.pem")) chain=\(pki.path("ca/chain.pem"))
            """
        try table.write(toFile: directory + "/signing-table", atomically: true, encoding: .utf8)
        try """
            # SMTP login -> addresses it may send as
            vanthu    vanthu.stttt@dienbien.gov.vn, *@stttt.dienbien.gov.vn
            """.write(toFile: directory + "/authorized-signers", atomically: true, encoding: .utf8)
        try "# the provincial LAN\n10.20.0.0/16\n2001:db8:20::/48   # IPv6 LAN\n".write(
            toFile: directory + "/internal-hosts", atomically: true, encoding: .utf8)
        let configuration = try Configuration.parse(
            """
            AuthservID         mail.dienbien.gov.vn
            InternalHosts      127.0.0.1, ::1, \(directory)/internal-hosts
            MTA                ORIGINATING
            SigningTable       \(directory)/signing-table
            AuthorizedSigners  \(directory)/authorized-signers
            PKCS11Module       \(pki.softHSMModule)
            TrustAnchors       \(pki.path("ca/root.pem"))
            CRLDirectory       \(pki.path("crl"))
            RevocationCheck    crl
            Intermediates      \(pki.path("ca/intermediate.pem"))
            MaximumSignSize    64K
            SubjectTag         [CHỮ KÝ SAI]
            """, file: directory + "/smime-milter.conf")
        return try Gateway.load(configuration)
    }

    static func message(from: String, contentType: String? = nil, extra: [String] = [], body: String = "Kính gửi các đơn vị.\r\n")
        -> (headers: [HeaderField], body: [UInt8])
    {
        var text = "From: \(from)\r\nTo: ubnd@muonglay.dienbien.gov.vn\r\nSubject: =?UTF-8?B?Q8O0bmcgdsSDbg==?=\r\n"
        if let contentType { text += "Content-Type: \(contentType)\r\n" }
        for line in extra { text += line + "\r\n" }
        let message = try! Message(bytes: Array((text + "\r\n" + body).utf8))
        return (message.root.headers, Array(message.bytes[message.root.bodyRange]))
    }

    static let outside = Envelope(clientAddress: "203.0.113.7", sender: "someone@example.org", recipients: ["stttt@stttt.dienbien.gov.vn"])

    // MARK: originating or not

    struct Origin: CustomTestStringConvertible, Sendable {
        let name: String
        let envelope: Envelope
        let originating: Bool
        var testDescription: String { name }
    }

    @Test(arguments: [
        Origin(name: "loopback (non_smtpd_milters)", envelope: Envelope(clientAddress: "127.0.0.1", sender: "a@b"), originating: true),
        Origin(name: "internal IPv4 range from a file", envelope: Envelope(clientAddress: "10.20.3.4", sender: "a@b"), originating: true),
        Origin(name: "internal IPv6 range", envelope: Envelope(clientAddress: "2001:db8:20::5", sender: "a@b"), originating: true),
        Origin(name: "IPv4-mapped IPv6", envelope: Envelope(clientAddress: "::ffff:10.20.0.9", sender: "a@b"), originating: true),
        Origin(name: "authenticated", envelope: Envelope(clientAddress: "198.51.100.1", authType: "PLAIN", authLogin: "vanthu", sender: "a@b"), originating: true),
        Origin(name: "ORIGINATING daemon", envelope: Envelope(clientAddress: "198.51.100.1", daemonName: "ORIGINATING", sender: "a@b"), originating: true),
        Origin(name: "external", envelope: Envelope(clientAddress: "10.21.0.1", daemonName: "smtpd", sender: "a@b"), originating: false),
    ])
    func originatingIsAuthenticatedInternalOrAnMTADaemon(origin: Origin) throws {
        #expect(try Self.gateway.isOriginating(origin.envelope) == origin.originating)
    }

    // MARK: signing

    /// Staff signing with the unit seal carry the unit's address in the certificate, not their
    /// own: the signature is sound and the verdict is `policy` for the address, as a mail client
    /// would show it.
    @Test(arguments: [
        ("vanthu.stttt@dienbien.gov.vn", "object=vanthu", "Nguyễn Thị Thư", Verdict.Result.pass),  // exact address: own certificate
        ("ketoan@stttt.dienbien.gov.vn", "object=unit-seal", "Sở Thông tin và Truyền thông", .policy),  // *@domain: the unit seal
        ("chutich@xa.muonglay.dienbien.gov.vn", "token=UBND-MuongLay", "Ủy ban nhân dân thị xã Mường Lay", .policy),  // *@.parent, ECDSA
        ("vanphong.ubnd@dienbien.gov.vn", "vanphong.key", "Văn phòng Ủy ban nhân dân tỉnh", .pass),  // *: the default PEM key
    ])
    func internalMailIsSignedWithTheTableEntryAndVerifies(from: String, signer: String, name: String, result: Verdict.Result) throws {
        let (headers, body) = Self.message(from: from)
        let decision = try Self.gateway.decide(envelope: Envelope(clientAddress: "10.20.1.1", sender: from), headers: headers, body: body)
        guard case .signed(let label) = decision.outcome else {
            Issue.record("not signed: \(decision.summary)")
            return
        }
        #expect(label.contains(signer))
        #expect(!label.contains("pin-source"), "the log line must not carry PIN sources")
        #expect(decision.reply == .accept)

        // The edits and new body make a message that openssl accepts and our verifier calls pass.
        var newBody: [UInt8] = []
        var edits: [HeaderEdit] = []
        for action in decision.actions {
            if case .replaceBody(let pieces) = action { newBody = Array(pieces.joined()) }
            if case .header(let edit) = action { edits.append(edit) }
        }
        let signed = HeaderEdit.apply(edits, to: headers).flatMap(\.canonicalBytes) + [13, 10] + newBody
        let openssl = try IndependentTools.shared.opensslVerify(message: signed)
        #expect(openssl.ok, "\(openssl.output)")
        let incoming = try Message(bytes: signed)
        let verify = try Self.gateway.decide(envelope: Self.outside, headers: incoming.root.headers, body: Array(signed[incoming.root.bodyRange]))
        guard case .verified(let verdict) = verify.outcome else {
            Issue.record("not verified: \(verify.summary)")
            return
        }
        #expect(verdict.result == result, "\(verdict.reason)")
        if result == .policy { #expect(verdict.reason.contains(from)) }
        #expect(verdict.commonName == name)
    }

    @Test func noTableMatchLeavesTheMessageAlone() throws {
        var configuration = try Self.gateway.configuration
        configuration.signingTable = nil
        let gateway = Gateway(
            configuration: configuration, signingTable: try SigningTable.parse("*@stttt.dienbien.gov.vn /k cert=/c", file: "t"),
            authorizedSigners: nil, verifier: nil)
        let (headers, body) = Self.message(from: "x@gmail.com")
        let decision = gateway.decide(envelope: Envelope(clientAddress: "127.0.0.1", sender: "x@gmail.com"), headers: headers, body: body)
        #expect(decision.outcome == .skipped(why: "no-signer"))
        #expect(decision.actions.isEmpty && decision.reply == .accept)
    }

    struct Skip: CustomTestStringConvertible, Sendable {
        let why: String
        let contentType: String?
        let sender: String
        let body: String
        var testDescription: String { why }
    }

    @Test(arguments: [
        Skip(why: "encrypted", contentType: "application/pkcs7-mime; smime-type=enveloped-data", sender: "a@b", body: "x"),
        Skip(why: "encrypted", contentType: "multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b", sender: "a@b", body: "x"),
        Skip(why: "bounce", contentType: nil, sender: "", body: "x"),
        Skip(why: "oversize", contentType: nil, sender: "a@b", body: String(repeating: "0123456789abcdef\r\n", count: 4000)),
    ])
    func whatIsNotSigned(skip: Skip) throws {
        let (headers, body) = Self.message(from: "ketoan@stttt.dienbien.gov.vn", contentType: skip.contentType, body: skip.body)
        let decision = try Self.gateway.decide(
            envelope: Envelope(clientAddress: "127.0.0.1", sender: skip.sender), headers: headers, body: body)
        #expect(decision.outcome == .skipped(why: skip.why))
        #expect(decision.actions.isEmpty && decision.reply == .accept, "to outside recipients only: no headers")
        #expect(decision.event?.outcome == .unsigned && decision.event?.reason == skip.why)
    }

    @Test func aFromWithSeveralAddressesSignsAsTheSender() throws {
        let (headers, body) = Self.message(
            from: "a@example.org, ketoan@stttt.dienbien.gov.vn", extra: ["Sender: vanthu.stttt@dienbien.gov.vn"])
        let decision = try Self.gateway.decide(envelope: Envelope(clientAddress: "::1", sender: "x@y"), headers: headers, body: body)
        guard case .signed(let label) = decision.outcome else {
            Issue.record("\(decision.summary)")
            return
        }
        #expect(label.contains("object=vanthu"))
        #expect(decision.address == "vanthu.stttt@dienbien.gov.vn")
    }

    @Test func anAuthorisedLoginSignsAndAnotherIsRefused() throws {
        let (headers, body) = Self.message(from: "ketoan@stttt.dienbien.gov.vn")
        let allowed = try Self.gateway.decide(
            envelope: Envelope(clientAddress: "198.51.100.9", authType: "PLAIN", authLogin: "vanthu", sender: "x@y"), headers: headers,
            body: body)
        #expect(allowed.counter == "signed")

        let refused = try Self.gateway.decide(
            envelope: Envelope(clientAddress: "198.51.100.9", authType: "PLAIN", authLogin: "ketoan.sotc", sender: "x@y"),
            headers: headers, body: body)
        #expect(refused.outcome == .failed(why: "unauthorized", detail: "login ketoan.sotc may not send as ketoan@stttt.dienbien.gov.vn (AuthorizedSigners)"))
        #expect(refused.reply == MilterAction.Reply(.reject, code: "550", enhancedCode: "5.7.1", text: "ketoan.sotc may not send as ketoan@stttt.dienbien.gov.vn"))
        #expect(!refused.actions.contains { if case .replaceBody = $0 { true } else { false } })
    }

    @Test func aMissingTokenTempfailsWithAClearText() throws {
        let (headers, body) = Self.message(from: "chanhvanphong@absent.dienbien.gov.vn")
        let decision = try Self.gateway.decide(envelope: Envelope(clientAddress: "127.0.0.1", sender: "x@y"), headers: headers, body: body)
        guard case .failed(let why, let detail) = decision.outcome else {
            Issue.record("\(decision.summary)")
            return
        }
        #expect(why == "token")
        #expect(detail.contains("Absent-Token"))
        #expect(decision.actions.isEmpty)
        #expect(decision.reply == MilterAction.Reply(.tempfail, code: "451", enhancedCode: "4.7.0", text: "signing token unavailable, try again later"))
        #expect(decision.summary.contains("reply tempfail 451 4.7.0 signing token unavailable, try again later"))
    }

    // MARK: verifying

    /// Signed by a unit elsewhere (the default PEM key), then arriving from outside.
    static func signedIncoming(extra: [String] = [], tamper: Bool = false) throws -> (headers: [HeaderField], body: [UInt8]) {
        let signer = try PEMKeySigner(keyFile: pki.path("certs/vanphong.key"), certificateFile: pki.path("certs/vanphong.pem"))
        var text = extra.map { $0 + "\r\n" }.joined()
        text += "From: vanphong.ubnd@dienbien.gov.vn\r\nTo: stttt@stttt.dienbien.gov.vn\r\nSubject: =?UTF-8?B?Q8O0bmcgdsSDbg==?=\r\n\r\nNội dung công văn.\r\n"
        var signed = try Signing.sign(message: Array(text.utf8), signer: signer, digest: .sha256, signingTimeSkew: 3600)
        if tamper, let range = signed.firstRange(of: Array("N=E1=BB=99i dung".utf8)) {
            signed.replaceSubrange(range, with: Array("N=E1=BB=99I dung".utf8))
        }
        let message = try Message(bytes: signed)
        return (message.root.headers, Array(signed[message.root.bodyRange]))
    }

    @Test func externalSignedMailGetsPassAndAVietnameseReadableHeader() throws {
        let (headers, body) = try Self.signedIncoming()
        let decision = try Self.gateway.decide(envelope: Self.outside, headers: headers, body: body)
        #expect(decision.counter == "verified.pass")
        #expect(!decision.actions.contains { if case .replaceBody = $0 { true } else { false } }, "incoming bodies are never changed")
        let result = HeaderEdit.apply(decision.actions.compactMap { if case .header(let edit) = $0 { edit } else { nil } }, to: headers)
        #expect(result[0].name == "Authentication-Results")
        #expect(result[0].value.hasPrefix("mail.dienbien.gov.vn; smime=pass body.smime-identifier=vanphong.ubnd@dienbien.gov.vn"))
        #expect(result[1].name == VerificationHeaders.readableName)
        #expect(result[1].value.utf8.allSatisfy { $0 < 0x80 })
        #expect(result[1].decodedValue.contains("signer: Văn phòng Ủy ban nhân dân tỉnh <vanphong.ubnd@dienbien.gov.vn>"))
        #expect(result[1].decodedValue.contains("organization: Văn phòng UBND tỉnh Điện Biên"))
    }

    @Test func forgedHeadersWithOurIDAreRemovedAndOtherServersKept() throws {
        let (headers, body) = try Self.signedIncoming(extra: [
            "Authentication-Results: mail.dienbien.gov.vn; smime=pass body.smime-identifier=forged@dienbien.gov.vn",
            "Authentication-Results: mx.example.org; dkim=pass header.d=example.org",
            "X-SMIME-Verification: pass; signer: forged",
            "authentication-results: (comment) MAIL.DIENBIEN.GOV.VN; smime=pass",
        ])
        let decision = try Self.gateway.decide(envelope: Self.outside, headers: headers, body: body)
        let result = HeaderEdit.apply(decision.actions.compactMap { if case .header(let edit) = $0 { edit } else { nil } }, to: headers)
        let results = result.filter { $0.hasName("Authentication-Results") }.map(\.value)
        #expect(results.count == 2)
        #expect(results[0].hasPrefix("mail.dienbien.gov.vn; smime=pass body.smime-identifier=vanphong.ubnd@"))
        #expect(results[1] == "mx.example.org; dkim=pass header.d=example.org")
        #expect(result.filter { $0.hasName(VerificationHeaders.readableName) }.count == 1)
        #expect(!result.contains { $0.value.contains("forged") })
    }

    @Test func unsignedExternalMailGetsNone() throws {
        let (headers, body) = Self.message(from: "someone@example.org")
        let decision = try Self.gateway.decide(envelope: Self.outside, headers: headers, body: body)
        #expect(decision.counter == "verified.none")
        #expect(decision.reply == .accept)
    }

    @Test func aTamperedMessageFailsIsAcceptedByDefaultAndTaggedInTheSubject() throws {
        let (headers, body) = try Self.signedIncoming(tamper: true)
        let decision = try Self.gateway.decide(envelope: Self.outside, headers: headers, body: body)
        #expect(decision.counter == "verified.fail")
        #expect(decision.reply == .accept)
        let result = HeaderEdit.apply(decision.actions.compactMap { if case .header(let edit) = $0 { edit } else { nil } }, to: headers)
        let subject = try #require(result.first { $0.hasName("Subject") })
        #expect(subject.decodedValue == "[CHỮ KÝ SAI] Công văn")

        var configuration = try Self.gateway.configuration
        configuration.onBadSignature = .reject
        let strict = try Gateway(configuration: configuration, signingTable: nil, authorizedSigners: nil, verifier: Self.gateway.verifier)
        let rejected = strict.decide(envelope: Self.outside, headers: headers, body: body)
        #expect(rejected.reply.disposition == .reject)
        #expect(rejected.reply.code == "550" && rejected.reply.enhancedCode == "5.7.1")
        #expect(rejected.reply.text.hasPrefix("S/MIME signature verification failed"))
    }

    @Test func garbageCMSIsAPermerrorAndStillAccepted() throws {
        let (headers, body) = Self.message(
            from: "someone@example.org", contentType: "application/pkcs7-mime; smime-type=signed-data", extra: ["Content-Transfer-Encoding: base64"],
            body: "bm90IGEgQ01TIG1lc3NhZ2U=\r\n")
        let decision = try Self.gateway.decide(envelope: Self.outside, headers: headers, body: body)
        #expect(decision.counter == "verified.permerror")
        #expect(decision.reply == .accept)
    }

    // MARK: counters

    @Test func countersAreKeptPerUnitAndWrittenAsJSON() throws {
        let statistics = Statistics()
        let gateway = try Gateway(
            configuration: Self.gateway.configuration, signingTable: Self.gateway.signingTable, authorizedSigners: nil,
            verifier: Self.gateway.verifier, statistics: statistics)
        let (headers, body) = Self.message(from: "ketoan@stttt.dienbien.gov.vn")
        _ = gateway.decide(envelope: Envelope(clientAddress: "127.0.0.1", sender: "a@b"), headers: headers, body: body)
        _ = gateway.decide(envelope: Envelope(clientAddress: "127.0.0.1", sender: ""), headers: headers, body: body)
        _ = gateway.decide(envelope: Self.outside, headers: headers, body: body)
        let units = statistics.snapshot.units
        #expect(units["stttt.dienbien.gov.vn"] == ["signed": 1, "skipped.bounce": 1, "verified.none": 1])

        let path = try Self.pki.temporaryDirectory("statistics") + "/statistics.json"
        try statistics.write(to: path)
        let read = try Statistics.read(from: path)
        #expect(read.units == units)
        let table = Statistics.table(read)
        #expect(table.contains("unit                   signed  verified.none  skipped.bounce"))
        #expect(table.contains("stttt.dienbien.gov.vn       1              1               1"))
    }
}
