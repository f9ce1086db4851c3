internal import COpenSSL
import Foundation

/// Verifies S/MIME signatures (RFC 8551) against a `TrustStore` and turns every outcome into a
/// `Verdict`. Checks, in this order, so that the most serious problem is the one reported:
/// the CMS structure (`permerror`), the signature over the exact bytes (`fail`), the chain to
/// an anchor with validity now and revocation (`fail` when revoked, `temperror` when the
/// revocation source is unreachable, `policy` otherwise), key usage digitalSignature or
/// nonRepudiation and extended key usage emailProtection when present (`policy`), validity at
/// signing time (`policy`), and the signer's address against From (`policy`).
public struct Verifier: Sendable {
    public let trust: TrustStore

    public init(trust: TrustStore) {
        self.trust = trust
    }

    /// Verifies DER CMS SignedData; `detachedContent` is the signed bytes when not inside;
    /// `part` is copied into the verdict.
    public func verify(cms der: [UInt8], detachedContent: [UInt8]?, from: String?, part: String? = nil) -> Verdict {
        var verdict = check(cms: der, detachedContent: detachedContent, from: from)
        verdict.part = part
        return verdict
    }

    private func check(cms der: [UInt8], detachedContent: [UInt8]?, from: String?) -> Verdict {
        defer { ERR_clear_error() }
        let parsed = der.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var cursor = buffer.baseAddress
            return d2i_CMS_ContentInfo(nil, &cursor, buffer.count)
        }
        guard let cms = parsed else {
            return Verdict(result: .permerror, reason: "the signature is not a valid CMS structure")
        }
        defer { CMS_ContentInfo_free(cms) }
        guard OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_signed else {
            return Verdict(result: .permerror, reason: "the CMS structure is not SignedData")
        }
        guard let signerInfos = CMS_get0_SignerInfos(cms), OPENSSL_sk_num(signerInfos) > 0 else {
            return Verdict(result: .permerror, reason: "the SignedData has no signer")
        }

        // MARK: the signature over the exact bytes
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
                return Verdict(result: .fail, reason: "the content does not match the signed digest (altered in transit)")
            case CMS_R_VERIFICATION_FAILURE:
                return Verdict(result: .fail, reason: "the signature does not verify")
            case CMS_R_SIGNER_CERTIFICATE_NOT_FOUND:
                return Verdict(result: .neutral, reason: "the signer's certificate is not in the message")
            case CMS_R_NO_CONTENT:
                return Verdict(result: .permerror, reason: "the signature carries no content and none is detached")
            default:
                return Verdict(result: .neutral, reason: "the signature could not be processed: \(errors)")
            }
        }
        guard let signers = CMS_get0_signers(cms) else {
            return Verdict(result: .neutral, reason: "the signer's certificate is not in the message")
        }
        defer { OPENSSL_sk_free(signers) }
        guard let leafRaw = OPENSSL_sk_value(signers, 0) else {
            return Verdict(result: .neutral, reason: "the signer's certificate is not in the message")
        }
        let leaf = OpaquePointer(leafRaw)
        var verdict = Verdict(result: .pass)
        guard let certificate = try? Certificate(leaf) else {
            return Verdict(result: .neutral, reason: "the signer's certificate cannot be read")
        }
        verdict.describe(certificate)
        if let signerInfo = OPENSSL_sk_value(signerInfos, 0) {
            verdict.signingTime = Self.signingTime(OpaquePointer(signerInfo))
        }

        // MARK: the chain
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
        let chain = trust.verifyChain(leaf: leaf, messageCertificates: messageCertificates)
        verdict.chain = chain.chain
        verdict.reason = chain.reason  // for a pass, what was not checked or is stale
        if chain.result != .pass {
            verdict.result = chain.result
            return verdict
        }

        // MARK: usage, signing time, address
        if let problem = Self.usageProblem(leaf) {
            verdict.result = .policy
            verdict.reason = problem
            return verdict
        }
        if let time = verdict.signingTime, time < certificate.notBefore || time > certificate.notAfter {
            verdict.result = .policy
            verdict.reason = "signed at \(time) outside the certificate's validity"
            return verdict
        }
        if let from, !Self.matches(from, certificate.emailAddresses) {
            verdict.result = .policy
            let addresses = certificate.emailAddresses.isEmpty ? "none" : certificate.emailAddresses.joined(separator: ", ")
            verdict.reason = "the signer's address (\(addresses)) is not the From address \(from)"
            return verdict
        }
        return verdict
    }

    private func withContentBIO(_ content: [UInt8]?, _ body: (OpaquePointer?) -> Int32) -> Int32 {
        guard let content else { return body(nil) }
        return content.withUnsafeBufferPointer { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return 0 }
            defer { BIO_free(bio) }
            return body(bio)
        }
    }

    /// Key usage must allow digitalSignature or nonRepudiation (Government unit certificates
    /// carry nonRepudiation only); an extended key usage, when present, must name emailProtection.
    static func usageProblem(_ certificate: OpaquePointer) -> String? {
        let keyUsage = X509_get_key_usage(certificate)
        if keyUsage != UInt32.max && keyUsage & UInt32(KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION) == 0 {
            return "the certificate's key usage allows neither digitalSignature nor nonRepudiation"
        }
        let extended = X509_get_extended_key_usage(certificate)
        if extended != UInt32.max && extended & UInt32(XKU_SMIME) == 0 {
            return "the certificate's extended key usage does not include emailProtection"
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
