internal import COpenSSL
public import Token

/// What CMS signing needs from a key: its certificate, the chain to send with it, the scheme,
/// and a way to sign bytes. The token key is one; a PEM key file is the other.
public protocol Signer: Sendable {
    /// The signer's certificate, DER.
    var certificate: [UInt8] { get }
    /// Intermediate certificates to include, DER (the root is left out).
    var chain: [[UInt8]] { get }
    var scheme: SignatureScheme { get }
    /// Signs `data` (the DER of the signed attributes) with the scheme over `digest`.
    func sign(_ data: [UInt8], digest: DigestAlgorithm) throws -> [UInt8]
}

/// A key on a PKCS#11 token with its certificate (from the token, or a file) and chain.
public struct TokenSigner: Signer {
    public let key: TokenKey
    public let certificate: [UInt8]
    public let chain: [[UInt8]]
    public let scheme: SignatureScheme

    /// - Parameters:
    ///   - certificate: DER; nil takes the certificate stored on the token beside the key.
    ///   - chainFile: a PEM file of intermediates; self-signed certificates in it are skipped.
    public init(key: TokenKey, certificate: [UInt8]? = nil, chainFile: String? = nil, scheme: SignatureScheme? = nil)
        throws
    {
        guard let certificate = certificate ?? key.certificate else {
            throw SMIMEError(
                "no certificate for key \(key.label ?? "") on token \(key.tokenLabel)",
                hint: "store it on the token with the key's CKA_ID, or give cert=FILE in the signing table")
        }
        self.key = key
        self.certificate = certificate
        self.chain = try chainFile.map(Chain.load) ?? []
        guard let chosen = scheme ?? key.keyType.defaultScheme, key.schemes.contains(chosen) else {
            throw SMIMEError("key \(key.label ?? "") (\(key.keyType)) cannot sign with \(scheme?.rawValue ?? "any scheme")")
        }
        self.scheme = chosen
        try Chain.checkKeyMatches(certificate: certificate, keyType: key.keyType)
    }

    public func sign(_ data: [UInt8], digest: DigestAlgorithm) throws -> [UInt8] {
        try key.sign(data, scheme: scheme, digest: digest)
    }
}

/// Reading chain files.
public enum Chain {
    /// The certificates of a PEM file, DER, without self-signed ones (roots are not sent).
    public static func load(_ path: String) throws -> [[UInt8]] {
        try X509Handle.load(pemFile: path).filter { X509_check_issued($0.pointer, $0.pointer) != X509_V_OK }
            .map { try Certificate($0.pointer).der }
    }

    /// Refuses a certificate whose public key type cannot belong to the key.
    static func checkKeyMatches(certificate: [UInt8], keyType: KeyType) throws {
        let x509 = try X509Handle(der: certificate)
        defer { withExtendedLifetime(x509) {} }
        guard let publicKey = X509_get0_pubkey(x509.pointer) else {
            throw SMIMEError.drain("reading the certificate's public key", code: .certificate)
        }
        let id = EVP_PKEY_get_base_id(publicKey)
        let matches: Bool
        switch keyType {
        case .rsa(let bits): matches = id == EVP_PKEY_RSA && Int(EVP_PKEY_get_bits(publicKey)) == bits
        case .ec: matches = id == EVP_PKEY_EC
        case .other: matches = false
        }
        if !matches {
            throw SMIMEError(
                "the certificate's public key does not belong to the \(keyType) key",
                hint: "pair the key with its own certificate (same CKA_ID, or cert=FILE)")
        }
    }
}

/// A private key in a PEM file: the second key source, never a silent fallback for a token.
public final class PEMKeySigner: Signer, @unchecked Sendable {
    // @unchecked: immutable after init; the key is only read (signing makes a context per call).
    public let certificate: [UInt8]
    public let chain: [[UInt8]]
    public let scheme: SignatureScheme
    private let keyHandle: PrivateKeyHandle
    private var key: OpaquePointer { keyHandle.pointer }

    public init(keyFile: String, certificateFile: String, chainFile: String? = nil, scheme: SignatureScheme? = nil)
        throws
    {
        guard let bio = BIO_new_file(keyFile, "r") else {
            throw SMIMEError.drain("opening key file \(keyFile)", code: .file, hint: "check the path and that the daemon's user can read it")
        }
        defer { BIO_free(bio) }
        guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
            throw SMIMEError.drain("reading key file \(keyFile)", code: .key, hint: "it must hold an unencrypted PEM private key")
        }
        // Owned from here on: a throw below (a certificate that is not the key's) frees it with
        // the partly made object, where a bare pointer leaked one key per message.
        keyHandle = PrivateKeyHandle(takingOwnershipOf: key)
        guard let first = try X509Handle.load(pemFile: certificateFile).first else {
            throw SMIMEError("no certificate in \(certificateFile)", code: .certificate)
        }
        defer { withExtendedLifetime(first) {} }
        guard X509_check_private_key(first.pointer, key) == 1 else {
            ERR_clear_error()
            throw SMIMEError("the key in \(keyFile) does not belong to the certificate in \(certificateFile)", code: .key)
        }
        certificate = try Certificate(first.pointer).der
        chain = try chainFile.map(Chain.load) ?? []
        let isRSA = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA
        self.scheme = scheme ?? (isRSA ? .rsaPKCS1 : .ecdsa)
    }


    public func sign(_ data: [UInt8], digest: DigestAlgorithm) throws -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { throw SMIMEError.drain("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer?
        guard EVP_DigestSignInit(context, &keyContext, Digest.evp(digest), nil, key) == 1 else {
            throw SMIMEError.drain("starting a signature with the PEM key")
        }
        if scheme == .rsaPSS {
            guard EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING) == 1,
                EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, RSA_PSS_SALTLEN_DIGEST) == 1
            else { throw SMIMEError.drain("setting RSA-PSS parameters") }
        }
        var length = 0
        guard EVP_DigestSign(context, nil, &length, data, data.count) == 1 else {
            throw SMIMEError.drain("signing with the PEM key")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &signature, &length, data, data.count) == 1 else {
            throw SMIMEError.drain("signing with the PEM key")
        }
        return Array(signature.prefix(length))
    }
}

/// OpenSSL digests by our names.
enum Digest {
    /// The implementation, fetched once: given `EVP_sha256()` and its kind, every `EVP_Digest`
    /// looks its implementation up again in the default provider, under a lock every thread
    /// shares (a third of the time of hashing a signed 4 KB message). The kind is the fallback
    /// should a fetch fail.
    static func evp(_ digest: DigestAlgorithm) -> OpaquePointer? {
        switch digest {
        case .sha256: fetched.sha256 ?? EVP_sha256()
        case .sha384: fetched.sha384 ?? EVP_sha384()
        case .sha512: fetched.sha512 ?? EVP_sha512()
        }
    }

    private struct Fetched: @unchecked Sendable {
        // @unchecked: an `EVP_MD` OpenSSL has fetched is read only, and may be used by any thread.
        let sha256 = EVP_MD_fetch(nil, "SHA256", nil)
        let sha384 = EVP_MD_fetch(nil, "SHA384", nil)
        let sha512 = EVP_MD_fetch(nil, "SHA512", nil)
    }
    private static let fetched = Fetched()

    static func compute(_ digest: DigestAlgorithm, _ data: [UInt8]) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_Digest(data, data.count, &output, &length, evp(digest), nil) == 1 else {
            throw SMIMEError.drain("computing \(digest.rawValue)")
        }
        return Array(output.prefix(Int(length)))
    }
}

/// The one owner of an OpenSSL `EVP_PKEY`.
final class PrivateKeyHandle: @unchecked Sendable {
    // @unchecked: the key is only read after loading; OpenSSL allows concurrent signing with it.
    let pointer: OpaquePointer

    init(takingOwnershipOf pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit { EVP_PKEY_free(pointer) }
}
