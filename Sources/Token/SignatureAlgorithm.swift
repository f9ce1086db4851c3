internal import CP11Kit

/// The hash a signature is made over.
public enum DigestAlgorithm: String, Sendable, CaseIterable {
    case sha256 = "sha-256"
    case sha384 = "sha-384"
    case sha512 = "sha-512"

    /// Output length in octets.
    public var length: Int {
        switch self {
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        }
    }

    var digestMechanism: CK_MECHANISM_TYPE {
        switch self {
        case .sha256: CK_MECHANISM_TYPE(CKM_SHA256)
        case .sha384: CK_MECHANISM_TYPE(CKM_SHA384)
        case .sha512: CK_MECHANISM_TYPE(CKM_SHA512)
        }
    }

    var mgf: CK_RSA_PKCS_MGF_TYPE {
        switch self {
        case .sha256: CK_RSA_PKCS_MGF_TYPE(CKG_MGF1_SHA256)
        case .sha384: CK_RSA_PKCS_MGF_TYPE(CKG_MGF1_SHA384)
        case .sha512: CK_RSA_PKCS_MGF_TYPE(CKG_MGF1_SHA512)
        }
    }

    /// The DER DigestInfo prefix that precedes the hash in an RSA PKCS#1 v1.5 signature
    /// (RFC 8017 section 9.2, note 1).
    var digestInfoPrefix: [UInt8] {
        let hashLength = UInt8(length)
        return [0x30, UInt8(algorithmIdentifier.count) + 2 + hashLength] + algorithmIdentifier + [0x04, hashLength]
    }

    /// `AlgorithmIdentifier ::= SEQUENCE { id-sha256/384/512, NULL }` (RFC 5754 section 2: the
    /// OID under 2.16.840.1.101.3.4.2 with explicit NULL parameters), DER.
    public var algorithmIdentifier: [UInt8] {
        let oidLast: UInt8
        switch self {
        case .sha256: oidLast = 1
        case .sha384: oidLast = 2
        case .sha512: oidLast = 3
        }
        return DER.tagged(0x30, [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, oidLast, 0x05, 0x00])
    }
}

/// The signature scheme; which ones a key offers follows from its type.
public enum SignatureScheme: String, Sendable {
    /// RSASSA-PKCS1-v1_5, the default for RSA keys (what every mail client verifies).
    case rsaPKCS1 = "rsa"
    /// RSASSA-PSS with MGF1 over the same hash and a salt as long as the hash.
    case rsaPSS = "rsa-pss"
    /// ECDSA; the signature is returned DER-encoded (`Ecdsa-Sig-Value`).
    case ecdsa
}

/// The type and size of a key on a token.
public enum KeyType: Sendable, Equatable, CustomStringConvertible {
    case rsa(bits: Int)
    case ec(curve: String, bits: Int)
    case other(UInt)

    public var description: String {
        switch self {
        case .rsa(let bits): "RSA-\(bits)"
        case .ec(let curve, _): "EC \(curve)"
        case .other(let type): "key type 0x\(String(type, radix: 16))"
        }
    }

    /// The scheme used when the configuration names none.
    public var defaultScheme: SignatureScheme? {
        switch self {
        case .rsa: .rsaPKCS1
        case .ec: .ecdsa
        case .other: nil
        }
    }

    /// Named curves by the DER of their OID (the value of CKA_EC_PARAMS).
    static func curve(ecParams: [UInt8]) -> (String, Int) {
        switch ecParams {
        case [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]: ("P-256", 256)
        case [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22]: ("P-384", 384)
        case [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23]: ("P-521", 521)
        default: ("unknown curve", 0)
        }
    }
}

/// DER helpers: the one structure the token gives us raw (an ECDSA signature), and lengths.
public enum DER {
    /// CKM_ECDSA returns r || s, each as long as the curve order; CMS wants
    /// `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 5753 section 7.2).
    static func ecdsaSignature(raw: [UInt8]) -> [UInt8] {
        let half = raw.count / 2
        return tagged(0x30, integer(Array(raw[..<half])) + integer(Array(raw[half...])))
    }

    /// A DER INTEGER from an unsigned big-endian magnitude: minimal, and positive.
    public static func integer(_ magnitude: [UInt8]) -> [UInt8] {
        var bytes = Array(magnitude.drop(while: { $0 == 0 }))
        if bytes.isEmpty || bytes[0] & 0x80 != 0 {
            bytes.insert(0, at: 0)
        }
        return tagged(0x02, bytes)
    }

    /// A DER element: tag, length, contents.
    public static func tagged(_ tag: UInt8, _ contents: [UInt8]) -> [UInt8] {
        [tag] + length(contents.count) + contents
    }

    /// A DER length field (X.690 section 8.1.3): short form below 128, long form above.
    public static func length(_ count: Int) -> [UInt8] {
        if count < 0x80 { return [UInt8(count)] }
        var bytes: [UInt8] = []
        var value = count
        while value > 0 {
            bytes.insert(UInt8(value & 0xFF), at: 0)
            value >>= 8
        }
        return [0x80 | UInt8(bytes.count)] + bytes
    }
}
