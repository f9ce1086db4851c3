import Foundation
import Gateway
import MIME
import SMIME
import TestSupport
import Token

/// Signers, messages and the verifier the S/MIME tests share.
enum Fixtures {
    static var pki: TestPKI {
        get throws { try TestPKI.shared }
    }
    static var tools: IndependentTools {
        get throws { try IndependentTools.shared }
    }

    /// A corpus message, its Date header set to now: signed now, it must not read as signed
    /// long after it was written (`SigningTimeSkewCheck`).
    static func corpus(_ name: String) throws -> [UInt8] {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: TestPKI.repositoryRoot + "/Tests/MIMETests/Corpus/" + name)))
        let marker = Array("\r\nDate: ".utf8)
        guard let start = bytes.firstRange(of: marker)?.upperBound,
            let end = bytes[start...].firstRange(of: Array("\r\n".utf8))?.lowerBound
        else { return bytes }
        return Array(bytes[..<start]) + Array(DateText.rfc5322(Date(), offset: 0).utf8) + Array(bytes[end...])
    }

    static func tokenSigner(_ token: String, _ object: String, scheme: SignatureScheme? = nil) throws -> TokenSigner {
        let key = try TokenKey(uri: PKCS11URI(parsing: pki.keyURI(token: token, object: object)), modulePath: pki.softHSMModule, poolSize: 2, waitTimeout: 10, pinGuard: .at(nil))
        return try TokenSigner(key: key, chainFile: pki.path("ca/chain.pem"), scheme: scheme)
    }

    static func fileSigner(_ name: String) throws -> PEMKeySigner {
        try PEMKeySigner(
            keyFile: pki.path("certs/\(name).key"), certificateFile: pki.path("certs/\(name).pem"),
            chainFile: pki.path("ca/chain.pem"))
    }

    static let entity = Array("Content-Type: text/plain; charset=us-ascii\r\n\r\nBao cao thang 11.\r\n".utf8)

    /// A message signed with a file-only certificate of the test PKI, From set to its address;
    /// without `chain` the intermediate is left out of the signature.
    static func signed(by name: String, from: String, chain: Bool = true) throws -> [UInt8] {
        let signer = try PEMKeySigner(
            keyFile: pki.path("certs/\(name).key"), certificateFile: pki.path("certs/\(name).pem"),
            chainFile: chain ? pki.path("ca/chain.pem") : nil)
        let signature = try CMSSigning.sign(content: entity, signer: signer, digest: .sha256, signingTime: Date())
        return wrap(content: entity, signature: signature, from: from)
    }

    static func verifier(revocation: RevocationCheck = .crl, fetchTimeout: Int = 2) throws -> Verifier {
        Verifier(
            trust: try TrustStore(
                anchors: [pki.path("ca/root.pem")], intermediates: [], crlDirectory: pki.path("crl"), revocation: revocation,
                fetchTimeout: fetchTimeout, fetchHosts: pki.fetchHosts, cacheDirectory: nil,
                gracePeriod: 86400),
            signingTimeSkew: 3600, allowSHA1Signatures: false)
    }

    /// Verifies a whole message as the gateway does.
    static func verdict(_ message: [UInt8], verifier: Verifier? = nil, from: String? = nil) throws -> Verdict {
        let parsed = try Message(bytes: message)
        let author = from ?? Verification.authorAddress(parsed.root.headers)
        return Verification.verify(message: parsed, from: author, verifier: try verifier ?? Self.verifier())
    }

    /// The detached content and signature of a signed message (our MIME code, checked by the
    /// MIME tests), for the tools that take them apart.
    static func parts(_ message: [UInt8]) throws -> (content: [UInt8], signature: [UInt8]) {
        guard case .detached(let content, let signature, _) = try SignedContent.find(in: Message(bytes: message)) else {
            throw NSError(domain: "Fixtures", code: 1, userInfo: [NSLocalizedDescriptionKey: "not a detached signature"])
        }
        return (content, signature)
    }

    /// Wraps a detached signature made elsewhere into multipart/signed, with a From header.
    static func wrap(content: [UInt8], signature: [UInt8], from: String = "vanphong.ubnd@dienbien.gov.vn") -> [UInt8] {
        let signed = MultipartSigned(inner: content, signatureDER: signature, micalg: "sha-256")
        return Array("From: \(from)\r\nSubject: test\r\nMIME-Version: 1.0\r\nContent-Type: \(signed.contentType)\r\n\r\n".utf8)
            + signed.body
    }
}
