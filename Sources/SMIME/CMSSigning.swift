internal import COpenSSL
public import Foundation
import Synchronization
public import Token

/// CMS SignedData (RFC 5652) made by OpenSSL with the signature made elsewhere (on a token).
public enum CMSSigning {
    /// Detached SignedData, DER, over exactly `content`.
    ///
    /// OpenSSL builds the structure from the certificate's *public* key (`CMS_PARTIAL`), with
    /// smimeCapabilities and ESS signingCertificateV2 (`CMS_CADES`); contentType, signingTime and
    /// messageDigest are added here; the DER of the signed attributes (a SET OF, sorted as DER
    /// requires) is signed by `signer`, and the result stored as the SignerInfo's signature.
    /// `signingTime` nil leaves the signingTime attribute out (RFC 5652 section 11.3 makes it
    /// optional): mail signed long after its Date would otherwise show as not valid.
    public static func sign(
        content: [UInt8], signer: any Signer, digest: DigestAlgorithm, signingTime: Date?
    ) throws -> [UInt8] {
        // The signer's structure, made once by the code below, with this message's values written in.
        if let template = try CMSTemplates.shared.template(for: signer, digest: digest, timed: signingTime != nil),
            let signed = try template.sign(content: content, signer: signer, signingTime: signingTime)
        {
            return signed
        }
        return try signWithOpenSSL(content: content, signer: signer, digest: digest, signingTime: signingTime)
    }

    /// The same structure built by OpenSSL from the start: how templates are made, and how a
    /// message whose signingTime no template holds is signed.
    static func signWithOpenSSL(
        content: [UInt8], signer: any Signer, digest: DigestAlgorithm, signingTime: Date?
    ) throws -> [UInt8] {
        let certificate = try ParsedCertificates.shared.handle(signer.certificate)
        defer { withExtendedLifetime(certificate) {} }
        guard let publicKey = X509_get0_pubkey(certificate.pointer) else {
            throw SMIMEError.drain("reading the signer certificate's public key")
        }
        let flags = UInt32(CMS_PARTIAL | CMS_DETACHED | CMS_BINARY | CMS_CADES)
        guard let cms = CMS_sign(nil, nil, nil, nil, flags) else { throw SMIMEError.drain("CMS_sign") }
        defer { CMS_ContentInfo_free(cms) }
        guard let signerInfo = CMS_add1_signer(cms, certificate.pointer, publicKey, Digest.evp(digest), flags) else {
            throw SMIMEError.drain("CMS_add1_signer", hint: "the certificate's key type may not suit \(digest.rawValue)")
        }
        for der in signer.chain {
            let extra = try ParsedCertificates.shared.handle(der)
            // CMS_add1_cert takes its own reference.
            guard CMS_add1_cert(cms, extra.pointer) == 1 else { throw SMIMEError.drain("adding a chain certificate") }
        }
        if signer.scheme == .rsaPSS {
            try setPSSAlgorithm(signerInfo, digest: digest)
        }

        // MARK: the three attributes OpenSSL adds only in CMS_final, which needs the private key
        guard CMS_signed_add1_attr_by_NID(signerInfo, NID_pkcs9_contentType, V_ASN1_OBJECT, UnsafeRawPointer(OBJ_nid2obj(NID_pkcs7_data)), -1) == 1
        else { throw SMIMEError.drain("adding contentType") }
        if let signingTime {
            guard let time = ASN1_TIME_set(nil, time_t(signingTime.timeIntervalSince1970)) else {
                throw SMIMEError.drain("encoding signingTime")
            }
            defer { ASN1_TIME_free(time) }
            // RFC 5652 section 11.3: UTCTime until 2049, which ASN1_TIME_set chooses.
            guard CMS_signed_add1_attr_by_NID(signerInfo, NID_pkcs9_signingTime, time.pointee.type, time, -1) == 1 else {
                throw SMIMEError.drain("adding signingTime")
            }
        }
        let messageDigest = try Digest.compute(digest, content)
        guard
            CMS_signed_add1_attr_by_NID(
                signerInfo, NID_pkcs9_messageDigest, V_ASN1_OCTET_STRING, messageDigest, Int32(messageDigest.count)) == 1
        else { throw SMIMEError.drain("adding messageDigest") }

        let signature = try signer.sign(try signedAttributesDER(signerInfo), digest: digest)
        guard let slot = CMS_SignerInfo_get0_signature(signerInfo),
            ASN1_STRING_set(slot, signature, Int32(signature.count)) == 1
        else { throw SMIMEError.drain("storing the signature") }

        var out: UnsafeMutablePointer<UInt8>?
        let length = i2d_CMS_ContentInfo(cms, &out)
        guard length > 0, let out else { throw SMIMEError.drain("encoding the CMS structure") }
        defer { CRYPTO_free(out, nil, 0) }
        return Array(UnsafeBufferPointer(start: out, count: Int(length)))
    }

    /// The DER of the signed attributes as the signature covers them (RFC 5652 section 5.4):
    /// an explicit SET OF tag, elements in DER order (OpenSSL's: bytewise, then by length,
    /// the order it writes them in).
    static func signedAttributesDER(_ signerInfo: OpaquePointer) throws -> [UInt8] {
        var elements: [[UInt8]] = []
        for index in 0..<CMS_signed_get_attr_count(signerInfo) {
            guard let attribute = CMS_signed_get_attr(signerInfo, index) else { continue }
            var out: UnsafeMutablePointer<UInt8>?
            let length = i2d_X509_ATTRIBUTE(attribute, &out)
            guard length > 0, let out else { throw SMIMEError.drain("encoding a signed attribute") }
            elements.append(Array(UnsafeBufferPointer(start: out, count: Int(length))))
            CRYPTO_free(out, nil, 0)
        }
        elements.sort { left, right in
            for (a, b) in zip(left, right) where a != b { return a < b }
            return left.count < right.count
        }
        return DER.tagged(0x31, elements.flatMap { $0 })
    }

    /// RSASSA-PSS with MGF1 over the same hash and a salt as long as the hash (RFC 4055
    /// section 3.1), written into the SignerInfo's signatureAlgorithm.
    static func setPSSAlgorithm(_ signerInfo: OpaquePointer, digest: DigestAlgorithm) throws {
        let hashAlgorithm = digest.algorithmIdentifier
        let mgf1: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x08]  // id-mgf1
        let maskGen = DER.tagged(0x30, mgf1 + hashAlgorithm)
        // RSASSA-PSS-params: [0] hashAlgorithm, [1] maskGenAlgorithm, [2] saltLength.
        let parameters = DER.tagged(
            0x30,
            DER.tagged(0xA0, hashAlgorithm) + DER.tagged(0xA1, maskGen) + DER.tagged(0xA2, DER.integer([UInt8(digest.length)])))

        var signatureAlgorithm: UnsafeMutablePointer<X509_ALGOR>?
        CMS_SignerInfo_get0_algs(signerInfo, nil, nil, nil, &signatureAlgorithm)
        guard let signatureAlgorithm, let value = ASN1_STRING_new() else {
            throw SMIMEError.drain("reading the signature algorithm")
        }
        guard ASN1_STRING_set(value, parameters, Int32(parameters.count)) == 1 else {
            ASN1_STRING_free(value)
            throw SMIMEError.drain("encoding RSA-PSS parameters")
        }
        // X509_ALGOR_set0 takes ownership of `value` only on success.
        guard X509_ALGOR_set0(signatureAlgorithm, OBJ_nid2obj(NID_rsassaPss), V_ASN1_SEQUENCE, value) == 1 else {
            ASN1_STRING_free(value)
            throw SMIMEError.drain("setting the RSA-PSS algorithm")
        }
    }
}

/// Signer certificates parsed once: every signed message names the same few, and parsing them
/// from DER each time is a measurable part of signing. Parsed `X509` objects are only read
/// (OpenSSL locks its own lazily computed fields), so they are shared between threads.
final class ParsedCertificates: Sendable {
    static let shared = ParsedCertificates()

    private let handles = Mutex<[[UInt8]: X509Handle]>([:])

    func handle(_ der: [UInt8]) throws -> X509Handle {
        try handles.withLock { handles in
            if let handle = handles[der] { return handle }
            let handle = try X509Handle(der: der)
            // Bounded: a configuration names a handful of signers; a reload may add more.
            if handles.count > 256 { handles.removeAll() }
            handles[der] = handle
            return handle
        }
    }
}
