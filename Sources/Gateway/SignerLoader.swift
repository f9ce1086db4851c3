public import SMIME
public import Token

/// Makes the signer a signing-table entry names: a token key (certificate from the token
/// unless `cert=` is given) or a PEM key file.
public enum SignerLoader {
    /// `lookingAgain`: an earlier attempt found no token (see `TokenKey.init`).
    public static func signer(for entry: SigningTable.Entry, configuration: Configuration, lookingAgain: Bool = false)
        throws -> any Signer
    {
        try signer(
            key: entry.key, certificate: entry.certificate, chain: entry.chain, modulePath: configuration.pkcs11Module,
            poolSize: configuration.sessionPoolSize, waitTimeout: Double(configuration.signingTimeout),
            lookingAgain: lookingAgain,
            pinGuard: pinGuard(configuration),
            certificateOption: "cert=FILE on line \(entry.line) of the signing table")
    }

    /// The same from its parts, as `smime-milter sign --key` gives them; `certificateOption`
    /// names where a certificate file is given, for the hints.
    public static func signer(
        key: String, certificate: String?, chain: String?, modulePath: String?, poolSize: Int, waitTimeout: Double,
        scheme: SignatureScheme? = nil, lookingAgain: Bool = false, pinGuard: PINGuard,
        certificateOption: String
    ) throws -> any Signer {
        if key.lowercased().hasPrefix("pkcs11:") {
            let tokenKey = try TokenKey(
                uri: PKCS11URI(parsing: key), modulePath: modulePath, poolSize: poolSize, waitTimeout: waitTimeout,
                lookingAgain: lookingAgain,
                pinGuard: pinGuard)
            let der = try certificate.map { path -> [UInt8] in
                guard let first = try Certificate.load(pemFile: path).first else {
                    throw SMIMEError("no certificate in \(path)", code: .certificate, hint: "fix \(certificateOption)")
                }
                return first.der
            }
            return try TokenSigner(key: tokenKey, certificate: der, chainFile: chain, scheme: scheme)
        }
        guard let certificate else {
            throw SMIMEError("the PEM key \(key) has no certificate", code: .certificate, hint: "add \(certificateOption)")
        }
        return try PEMKeySigner(keyFile: key, certificateFile: certificate, chainFile: chain, scheme: scheme)
    }

    /// The guard that keeps refused PINs under the configuration's state directory.
    public static func pinGuard(_ configuration: Configuration) -> PINGuard {
        .at(configuration.stateDirectory + "/pin-refusals")
    }

    /// The verifier a configuration describes.
    public static func verifier(_ configuration: Configuration) throws -> Verifier {
        Verifier(
            trust: try trustStore(configuration), signingTimeSkew: Double(configuration.signingTimeSkew),
            allowSHA1Signatures: configuration.allowSHA1Signatures)
    }

    /// The trust store a configuration describes.
    public static func trustStore(_ configuration: Configuration) throws -> TrustStore {
        try TrustStore(
            anchors: configuration.trustAnchors, intermediates: configuration.intermediates,
            crlDirectory: configuration.crlDirectory, revocation: configuration.revocationCheck,
            fetchTimeout: configuration.crlFetchTimeout, fetchHosts: configuration.fetchHosts,
            cacheDirectory: configuration.stateDirectory + "/crl-cache",
            gracePeriod: Double(configuration.crlGracePeriod))
    }
}
