public import SMIME
import Token

/// Makes the signer a signing-table entry names: a token key (certificate from the token
/// unless `cert=` is given) or a PEM key file.
public enum SignerLoader {
    public static func signer(for entry: SigningTable.Entry, configuration: Configuration) throws -> any Signer {
        if entry.key.lowercased().hasPrefix("pkcs11:") {
            let key = try TokenKey(
                uri: PKCS11URI(parsing: entry.key), modulePath: configuration.pkcs11Module,
                poolSize: configuration.sessionPoolSize)
            let certificate = try entry.certificate.map { path -> [UInt8] in
                guard let first = try Certificate.load(pemFile: path).first else {
                    throw SMIMEError("no certificate in \(path)", hint: "fix cert= on line \(entry.line) of the signing table")
                }
                return first.der
            }
            return try TokenSigner(key: key, certificate: certificate, chainFile: entry.chain)
        }
        guard let certificate = entry.certificate else {
            throw SMIMEError("the PEM key \(entry.key) has no certificate", hint: "add cert=FILE on line \(entry.line)")
        }
        return try PEMKeySigner(keyFile: entry.key, certificateFile: certificate, chainFile: entry.chain)
    }

    /// The trust store a configuration describes.
    public static func trustStore(_ configuration: Configuration) throws -> TrustStore {
        try TrustStore(
            anchors: configuration.trustAnchors, intermediates: configuration.intermediates,
            crlDirectory: configuration.crlDirectory, revocation: configuration.revocationCheck,
            fetchTimeout: configuration.crlFetchTimeout)
    }
}
