import Foundation
import Gateway
import MIME
import TestSupport
import Testing
import Token

@testable import SMIME

/// A message signature made with SHA-1 is `policy` unless `AllowSHA1Signatures yes`; SHA-1
/// signatures on CA certificates (the Government root is SHA-1 self-signed) are not affected.
@Suite struct SHA1SignatureTests {
    static let entity = Fixtures.entity

    /// `openssl cms -sign -md MD` of the shared entity with the test PKI's file key, detached, DER.
    static func opensslSignature(md: String, key: String? = nil, certificate: String? = nil, extra: [String] = [])
        throws -> [UInt8]
    {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sha1-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let input = directory + "/entity"
        let output = directory + "/signature.der"
        try Data(entity).write(to: URL(fileURLWithPath: input))
        let result = try TestPKI.run(
            [
                "openssl", "cms", "-sign", "-binary", "-md", md, "-in", input, "-signer",
                certificate ?? Fixtures.pki.path("certs/vanphong.pem"), "-inkey", key ?? Fixtures.pki.path("certs/vanphong.key"),
                "-outform", "DER", "-out", output,
            ] + extra)
        #expect(result.status == 0, "\(result.output)")
        return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
    }

    static func verifier(allowSHA1: Bool, anchors: [String]? = nil, intermediates: [String] = []) throws -> Verifier {
        Verifier(
            trust: try TrustStore(
                anchors: anchors ?? [Fixtures.pki.path("ca/root.pem")],
                intermediates: intermediates.isEmpty ? [Fixtures.pki.path("ca/chain.pem")] : intermediates,
                crlDirectory: anchors == nil ? Fixtures.pki.path("crl") : nil, revocation: anchors == nil ? .crl : .none,
                fetchTimeout: 2, fetchHosts: [], cacheDirectory: nil, gracePeriod: 86400),
            signingTimeSkew: 3600, allowSHA1Signatures: allowSHA1)
    }

    @Test func aSHA1DigestIsPolicyWithItsReasonInBothLanguages() throws {
        let message = Fixtures.wrap(content: Self.entity, signature: try Self.opensslSignature(md: "sha1"))
        let verdict = try Fixtures.verdict(message, verifier: Self.verifier(allowSHA1: false))
        #expect(verdict.result == .policy)
        #expect(verdict.because == .sha1Signature)
        #expect(verdict.reason == "SHA-1 is no longer accepted for signatures")
        #expect(VerdictReason.sha1Signature.text(.vi) == "chữ ký số dùng thuật toán SHA-1, không còn được chấp nhận")
        #expect(verdict.commonName != nil, "the signer is still described")
    }

    @Test func allowSHA1SignaturesLetsItPass() throws {
        let message = Fixtures.wrap(content: Self.entity, signature: try Self.opensslSignature(md: "sha1"))
        let verdict = try Fixtures.verdict(message, verifier: Self.verifier(allowSHA1: true))
        #expect(verdict.result == .pass, "\(verdict.reason)")
    }

    @Test func theSameSignatureWithSHA256Passes() throws {
        let message = Fixtures.wrap(content: Self.entity, signature: try Self.opensslSignature(md: "sha256"))
        let verdict = try Fixtures.verdict(message, verifier: Self.verifier(allowSHA1: false))
        #expect(verdict.result == .pass, "\(verdict.reason)")
    }

    @Test func aSHA1RSAPSSSignatureIsPolicy() throws {
        let signature = try Self.opensslSignature(
            md: "sha1", extra: ["-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_mgf1_md:sha1"])
        let verdict = try Fixtures.verdict(
            Fixtures.wrap(content: Self.entity, signature: signature), verifier: Self.verifier(allowSHA1: false))
        #expect(verdict.result == .policy)
        #expect(verdict.because == .sha1Signature)
    }

    @Test func pssParametersNameTheirHash() {
        // An empty RSASSA-PSS-params: every field at its default, SHA-1.
        #expect(Verifier.pssHashIsSHA1([0x30, 0x00]))
        let sha256: [UInt8] = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]
        let explicit256 = DER.tagged(0x30, DER.tagged(0xA0, DER.tagged(0x30, sha256 + [0x05, 0x00])))
        #expect(!Verifier.pssHashIsSHA1(explicit256))
        let sha1: [UInt8] = [0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A]
        #expect(Verifier.pssHashIsSHA1(DER.tagged(0x30, DER.tagged(0xA0, DER.tagged(0x30, sha1 + [0x05, 0x00])))))
    }

    /// A hierarchy shaped like the Government's: a SHA-1 self-signed root and a SHA-1-signed
    /// intermediate; the leaf signs the message with SHA-256 and passes.
    @Test func sha1SignedCACertificatesDoNotMatter() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sha1ca-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func run(_ arguments: [String]) throws {
            let result = try TestPKI.run(arguments)
            #expect(result.status == 0, "\(arguments.joined(separator: " ")): \(result.output)")
        }
        let d = directory
        try Data("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n".utf8)
            .write(to: URL(fileURLWithPath: d + "/ca.ext"))
        try Data(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,nonRepudiation\nsubjectAltName=email:sha1.test@dienbien.gov.vn\n".utf8
        ).write(to: URL(fileURLWithPath: d + "/leaf.ext"))
        try run([
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha1", "-days", "30", "-subj",
            "/C=VN/O=SHA1 Root TEST/CN=SHA1 Root", "-keyout", d + "/root.key", "-out", d + "/root.pem",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        try run([
            "openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/C=VN/O=SHA1 Root TEST/CN=SHA1 Sub",
            "-keyout", d + "/sub.key", "-out", d + "/sub.csr",
        ])
        try run([
            "openssl", "x509", "-req", "-sha1", "-days", "30", "-in", d + "/sub.csr", "-CA", d + "/root.pem", "-CAkey",
            d + "/root.key", "-set_serial", "2", "-extfile", d + "/ca.ext", "-out", d + "/sub.pem",
        ])
        try run([
            "openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/C=VN/O=Unit/CN=SHA1 Leaf",
            "-keyout", d + "/leaf.key", "-out", d + "/leaf.csr",
        ])
        try run([
            "openssl", "x509", "-req", "-sha1", "-days", "30", "-in", d + "/leaf.csr", "-CA", d + "/sub.pem", "-CAkey",
            d + "/sub.key", "-set_serial", "3", "-extfile", d + "/leaf.ext", "-out", d + "/leaf.pem",
        ])
        let signature = try Self.opensslSignature(
            md: "sha256", key: d + "/leaf.key", certificate: d + "/leaf.pem", extra: ["-certfile", d + "/sub.pem"])
        let message = Fixtures.wrap(content: Self.entity, signature: signature, from: "sha1.test@dienbien.gov.vn")
        let verifier = try Self.verifier(allowSHA1: false, anchors: [d + "/root.pem"], intermediates: [d + "/sub.pem"])
        let verdict = try Fixtures.verdict(message, verifier: verifier)
        #expect(verdict.result == .pass, "\(verdict.reason)")
    }
}
