internal import COpenSSL
public import Foundation

/// Verifies S/MIME signatures (RFC 8551) against a `TrustStore` and turns every outcome into a
/// `Verdict`. First the CMS structure (`permerror`) and every signature over the exact bytes
/// (`fail`); then each signer in turn goes through `checks`, in order, and the first check that
/// objects names the problem (see `SignerCheck`). The message passes when one signer passes; else
/// the verdict is that of the signer whose address is the From address, or of the first.
public struct Verifier: Sendable {
    public let trust: TrustStore
    /// How far the signing time may be from the message's Date header (Thunderbird allows an hour).
    public let signingTimeSkew: TimeInterval
    /// Whether a message signature made with SHA-1 may pass (`AllowSHA1Signatures`).
    public let allowSHA1Signatures: Bool

    /// Both settings come from the configuration (`SignerLoader.verifier` builds this from it).
    public init(trust: TrustStore, signingTimeSkew: TimeInterval, allowSHA1Signatures: Bool) {
        self.trust = trust
        self.signingTimeSkew = signingTimeSkew
        self.allowSHA1Signatures = allowSHA1Signatures
    }

    /// The checks each signer goes through, most serious first.
    var checks: [any SignerCheck] {
        [ChainCheck(trust: trust), SignatureAlgorithmCheck(allowSHA1: allowSHA1Signatures), KeyUsageCheck(),
         SigningTimeValidityCheck(), SigningTimeSkewCheck(skew: signingTimeSkew), AddressCheck()]
    }

    /// Verifies DER CMS SignedData; `detachedContent` is the signed bytes when not inside;
    /// `date` is the message's Date header; `part` is copied into the verdict.
    public func verify(cms der: [UInt8], detachedContent: [UInt8]?, from: String?, date: Date? = nil, part: String? = nil)
        -> Verdict
    {
        var verdict = check(cms: der, detachedContent: detachedContent, from: from, date: date)
        verdict.part = part
        return verdict
    }

    private func check(cms der: [UInt8], detachedContent: [UInt8]?, from: String?, date: Date?) -> Verdict {
        defer { ERR_clear_error() }
        let parsed = der.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var cursor = buffer.baseAddress
            return d2i_CMS_ContentInfo(nil, &cursor, buffer.count)
        }
        guard let cms = parsed else {
            return Verdict(result: .permerror, because: .notCMS)
        }
        defer { CMS_ContentInfo_free(cms) }
        guard OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_signed else {
            return Verdict(result: .permerror, because: .notSignedData)
        }
        guard let signerInfos = CMS_get0_SignerInfos(cms), OPENSSL_sk_num(signerInfos) > 0 else {
            return Verdict(result: .permerror, because: .noSigner)
        }

        // MARK: every signature over the exact bytes
        let extra = OPENSSL_sk_new_null()
        defer { OPENSSL_sk_free(extra) }
        for certificate in trust.intermediates { OPENSSL_sk_push(extra, UnsafeRawPointer(certificate.pointer)) }
        let ok = withContentBIO(detachedContent) { content in
            CMS_verify(cms, extra, nil, content, nil, UInt32(CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY))
        }
        if ok != 1 {
            let code = ERR_peek_last_error()
            let errors = OpenSSL.drainErrors().joined(separator: "; ")
            switch ERR_GET_REASON(code) {
            case CMS_R_CONTENT_VERIFY_ERROR:
                return Verdict(result: .fail, because: .altered)
            case CMS_R_VERIFICATION_FAILURE:
                return Verdict(result: .fail, because: .badSignature)
            case CMS_R_SIGNER_CERTIFICATE_NOT_FOUND:
                return Verdict(result: .neutral, because: .signerCertificateMissing)
            case CMS_R_NO_CONTENT:
                return Verdict(result: .permerror, because: .noContent)
            default:
                return Verdict(result: .neutral, because: .unprocessable(errors))
            }
        }
        guard let signers = CMS_get0_signers(cms) else {
            return Verdict(result: .neutral, because: .signerCertificateMissing)
        }
        defer { OPENSSL_sk_free(signers) }

        // MARK: each signer through the checks
        var messageCertificates: [OpaquePointer] = []
        let certificates = CMS_get1_certs(cms)
        defer {
            if let certificates {
                while let raw = OPENSSL_sk_pop(certificates) { X509_free(OpaquePointer(raw)) }
                OPENSSL_sk_free(certificates)
            }
        }
        if let certificates {
            for index in 0..<OPENSSL_sk_num(certificates) {
                if let raw = OPENSSL_sk_value(certificates, index) { messageCertificates.append(OpaquePointer(raw)) }
            }
        }
        var verdicts: [Verdict] = []
        for index in 0..<OPENSSL_sk_num(signers) {
            guard let leafRaw = OPENSSL_sk_value(signers, index) else { continue }
            let signerInfo = OPENSSL_sk_value(signerInfos, index).map { OpaquePointer($0) }
            let verdict = judge(
                SignerFacts(
                    leaf: OpaquePointer(leafRaw), signingTime: signerInfo.flatMap(Self.signingTime),
                    usesSHA1: signerInfo.map(Self.usesSHA1) ?? false,
                    messageCertificates: messageCertificates, from: from, date: date))
            if verdict.result == .pass { return verdict }
            verdicts.append(verdict)
        }
        if let from, let matching = verdicts.first(where: { Self.matches(from, $0.emailAddresses) }) {
            return matching
        }
        return verdicts.first ?? Verdict(result: .neutral, because: .signerCertificateMissing)
    }

    /// One signer's verdict: described, then the first check that objects.
    private func judge(_ facts: SignerFacts) -> Verdict {
        guard let certificate = try? Certificate(facts.leaf) else {
            return Verdict(result: .neutral, because: .unreadableCertificate)
        }
        var verdict = Verdict(result: .pass)
        verdict.describe(certificate)
        verdict.signingTime = facts.signingTime
        var facts = facts
        facts.certificate = certificate
        for check in checks {
            let outcome = check.check(facts)
            if let chain = outcome.chain { verdict.chain = chain }
            if let note = outcome.note { verdict.set(.pass, because: note) }
            if let result = outcome.result {
                verdict.set(result, because: outcome.because)
                return verdict
            }
        }
        return verdict
    }

    private func withContentBIO(_ content: [UInt8]?, _ body: (OpaquePointer?) -> Int32) -> Int32 {
        guard let content else { return body(nil) }
        return content.withUnsafeBufferPointer { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return 0 }
            // Handed over behind a pass-through filter, not as a memory BIO: OpenSSL 3.0's
            // CMS_verify copies a memory BIO and leaks the copy when the signature's digest
            // cannot be set up (a mangled algorithm; found by VerifyFuzz).
            guard let filter = BIO_new(BIO_f_null()) else {
                BIO_free(bio)
                return 0
            }
            let chain = BIO_push(filter, bio)
            defer { BIO_free_all(chain) }
            return body(chain)
        }
    }

    /// Key usage must allow digitalSignature or nonRepudiation (Government unit certificates
    /// carry nonRepudiation only); an extended key usage, when present, must name emailProtection.
    static func usageProblem(_ certificate: OpaquePointer) -> VerdictReason? {
        let keyUsage = X509_get_key_usage(certificate)
        if keyUsage != UInt32.max && keyUsage & UInt32(KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION) == 0 {
            return .keyUsage
        }
        let extended = X509_get_extended_key_usage(certificate)
        if extended != UInt32.max && extended & UInt32(XKU_SMIME) == 0 {
            return .extendedKeyUsage
        }
        return nil
    }

    /// The From address against the certificate's: local part exact, domain case-insensitive.
    static func matches(_ from: String, _ addresses: [String]) -> Bool {
        func split(_ address: String) -> (Substring, String)? {
            guard let at = address.lastIndex(of: "@") else { return nil }
            return (address[..<at], address[address.index(after: at)...].lowercased())
        }
        guard let wanted = split(from.trimmingCharacters(in: .whitespaces)) else { return false }
        return addresses.contains { address in
            guard let have = split(address) else { return false }
            return have.0 == wanted.0 && have.1 == wanted.1
        }
    }

    /// Whether the SignerInfo's digest algorithm is SHA-1, or its signature algorithm one that
    /// hashes with SHA-1 (sha1WithRSAEncryption, ecdsa-with-SHA1, dsaWithSHA1, RSA-PSS over
    /// SHA-1). The certificates' own signatures are not looked at here: the chain check judges
    /// them, and a trust anchor is trusted by configuration, not by its signature.
    static func usesSHA1(_ signerInfo: OpaquePointer) -> Bool {
        var digestAlgorithm: UnsafeMutablePointer<X509_ALGOR>?
        var signatureAlgorithm: UnsafeMutablePointer<X509_ALGOR>?
        CMS_SignerInfo_get0_algs(signerInfo, nil, nil, &digestAlgorithm, &signatureAlgorithm)
        if let digestAlgorithm, OBJ_obj2nid(digestAlgorithm.pointee.algorithm) == NID_sha1 { return true }
        guard let signatureAlgorithm else { return false }
        let signatureNID = OBJ_obj2nid(signatureAlgorithm.pointee.algorithm)
        var hashNID: Int32 = NID_undef
        if OBJ_find_sigid_algs(signatureNID, &hashNID, nil) == 1 && hashNID == NID_sha1 { return true }
        if signatureNID == NID_rsassaPss, let parameters = signatureAlgorithm.pointee.parameter,
            parameters.pointee.type == V_ASN1_SEQUENCE, let sequence = parameters.pointee.value.sequence
        {
            // RSASSA-PSS-params with no [0] hashAlgorithm means SHA-1 (RFC 4055 section 3.1).
            let bytes = Array(UnsafeBufferPointer(start: sequence.pointee.data, count: Int(sequence.pointee.length)))
            return pssHashIsSHA1(bytes)
        }
        return false
    }

    /// Whether DER RSASSA-PSS-params name SHA-1 as their hash: explicitly, or by leaving the
    /// hashAlgorithm field out (its default).
    static func pssHashIsSHA1(_ der: [UInt8]) -> Bool {
        // SEQUENCE { [0] SEQUENCE { OID, NULL? } ... }: all short lengths at this size.
        let sha1: [UInt8] = [0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A]
        guard der.count >= 2, der[0] == 0x30, der[1] < 0x80 else { return false }
        guard der.count > 2, der[2] == 0xA0 else { return true }
        let oid = 6  // after 30 L A0 L 30 L
        return der.count >= oid + sha1.count && Array(der[oid..<(oid + sha1.count)]) == sha1
    }

    static func signingTime(_ signerInfo: OpaquePointer) -> Date? {
        let index = CMS_signed_get_attr_by_NID(signerInfo, NID_pkcs9_signingTime, -1)
        guard index >= 0, let attribute = CMS_signed_get_attr(signerInfo, index),
            let value = X509_ATTRIBUTE_get0_type(attribute, 0)
        else { return nil }
        let type = value.pointee.type
        guard type == V_ASN1_UTCTIME || type == V_ASN1_GENERALIZEDTIME else { return nil }
        return Certificate.date(UnsafePointer(value.pointee.value.utctime))
    }
}

// MARK: - the checks

/// What the checks of one signer look at.
struct SignerFacts {
    let leaf: OpaquePointer
    let signingTime: Date?
    /// The message signature was made with SHA-1 (`Verifier.usesSHA1`).
    let usesSHA1: Bool
    let messageCertificates: [OpaquePointer]
    let from: String?
    /// The message's Date header.
    let date: Date?
    var certificate: Certificate?
}

/// What a check found: nothing (`result` nil), or the result and reason it sets; a chain and a
/// note may come with either.
struct CheckOutcome {
    var result: Verdict.Result?
    var because: VerdictReason?
    var chain: [String]?
    var note: VerdictReason?

    static let fine = CheckOutcome()
    static func objects(_ result: Verdict.Result, _ because: VerdictReason?) -> CheckOutcome {
        CheckOutcome(result: result, because: because)
    }
}

/// One rule a signer must meet; the verifier runs them in order and the first that objects
/// names itself in the verdict.
protocol SignerCheck: Sendable {
    func check(_ facts: SignerFacts) -> CheckOutcome
}

/// The chain to a trust anchor, validity now, and revocation (`TrustStore.verifyChain`).
struct ChainCheck: SignerCheck {
    let trust: TrustStore

    func check(_ facts: SignerFacts) -> CheckOutcome {
        let chain = trust.verifyChain(leaf: facts.leaf, messageCertificates: facts.messageCertificates)
        var outcome = chain.result == .pass ? CheckOutcome.fine : .objects(chain.result, chain.because)
        outcome.chain = chain.chain
        if chain.result == .pass { outcome.note = chain.because }
        return outcome
    }
}

/// No SHA-1 in the message signature unless `AllowSHA1Signatures yes`: current mail clients show
/// such a signature as not valid, so the recipient is told the same here.
struct SignatureAlgorithmCheck: SignerCheck {
    let allowSHA1: Bool

    func check(_ facts: SignerFacts) -> CheckOutcome {
        facts.usesSHA1 && !allowSHA1 ? .objects(.policy, .sha1Signature) : .fine
    }
}

/// Key usage digitalSignature or nonRepudiation (Government unit certificates carry
/// nonRepudiation only); extended key usage, when present, emailProtection.
struct KeyUsageCheck: SignerCheck {
    func check(_ facts: SignerFacts) -> CheckOutcome {
        Verifier.usageProblem(facts.leaf).map { .objects(.policy, $0) } ?? .fine
    }
}

/// The signing time inside the certificate's validity.
struct SigningTimeValidityCheck: SignerCheck {
    func check(_ facts: SignerFacts) -> CheckOutcome {
        guard let time = facts.signingTime, let certificate = facts.certificate,
            time < certificate.notBefore || time > certificate.notAfter
        else { return .fine }
        return .objects(.policy, .signedOutsideValidity(time))
    }
}

/// The signing time near the message's Date header: Thunderbird shows a signature whose signing
/// time is more than an hour from Date as not valid, so the recipient is told the same here.
struct SigningTimeSkewCheck: SignerCheck {
    let skew: TimeInterval

    func check(_ facts: SignerFacts) -> CheckOutcome {
        guard let time = facts.signingTime, let date = facts.date, abs(time.timeIntervalSince(date)) > skew else {
            return .fine
        }
        let minutes = Int(abs(time.timeIntervalSince(date)) / 60)
        return .objects(.policy, .signingTimeSkew(minutes: minutes, allowed: Int(skew / 60)))
    }
}

/// The signer's e-mail address (subjectAltName rfc822Name, else emailAddress) is the From address.
struct AddressCheck: SignerCheck {
    func check(_ facts: SignerFacts) -> CheckOutcome {
        guard let from = facts.from, let certificate = facts.certificate,
            !Verifier.matches(from, certificate.emailAddresses)
        else { return .fine }
        return .objects(.policy, .addressMismatch(certificate: certificate.emailAddresses, from: from))
    }
}
