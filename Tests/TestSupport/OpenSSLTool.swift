import Foundation

/// The `openssl` command line, as an independent check of what our code produced.
public enum OpenSSLTool {
    /// Verifies a raw signature over `data` with the public key of the certificate in `certificatePEM`.
    /// `digest` is `sha256`, `sha384` or `sha512`; `pss` selects RSA-PSS with a salt as long as the hash.
    public static func verify(
        signature: [UInt8], data: [UInt8], certificatePEM: String, digest: String = "sha256", pss: Bool = false,
        in directory: String
    ) throws -> (ok: Bool, output: String) {
        let base = directory + "/" + UUID().uuidString
        try Data(signature).write(to: URL(fileURLWithPath: base + ".sig"))
        try Data(data).write(to: URL(fileURLWithPath: base + ".data"))
        let pub = try TestPKI.run(["openssl", "x509", "-in", certificatePEM, "-pubkey", "-noout"])
        try pub.output.write(toFile: base + ".pub", atomically: true, encoding: .utf8)
        var arguments = ["openssl", "dgst", "-" + digest, "-verify", base + ".pub", "-signature", base + ".sig"]
        if pss {
            arguments += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
        }
        let result = try TestPKI.run(arguments + [base + ".data"])
        return (result.status == 0 && result.output.contains("Verified OK"), result.output)
    }
}
