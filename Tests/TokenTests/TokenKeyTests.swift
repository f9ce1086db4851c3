import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Token

@Suite struct TokenKeyTests {
    let pki: TestPKI
    let data = Array("signed attributes stand-in: Sở Thông tin và Truyền thông".utf8)

    init() throws {
        pki = try TestPKI.shared
    }

    func key(_ token: String, _ object: String, poolSize: Int = 2, waitTimeout: TimeInterval = 10) throws -> TokenKey {
        try TokenKey(
            uri: PKCS11URI(parsing: pki.keyURI(token: token, object: object)), modulePath: pki.softHSMModule,
            poolSize: poolSize, waitTimeout: waitTimeout, pinGuard: .at(nil))
    }

    // MARK: finding and logging in

    @Test func findsTheKeyAndItsCertificateByLabel() throws {
        let key = try key("STTTT-DienBien", "unit-seal")
        #expect(key.keyType == .rsa(bits: 2048))
        #expect(key.id == [0x01])
        #expect(key.tokenLabel == "STTTT-DienBien")
        let pem = try String(contentsOfFile: pki.path("certs/STTTT-DienBien-unit-seal.pem"), encoding: .utf8)
        let der = try TestPKI.run(["bash", "-c", "openssl x509 -outform DER | base64 -w0"], input: Array(pem.utf8))
        #expect(key.certificate.map { Data($0).base64EncodedString() } == der.output)
    }

    @Test func findsTheKeyByID() throws {
        let uri = try PKCS11URI(
            parsing: "pkcs11:token=STTTT-DienBien;id=%02?pin-source=file:\(pki.pinFile(token: "STTTT-DienBien"))")
        let key = try TokenKey(uri: uri, modulePath: pki.softHSMModule, poolSize: 2, waitTimeout: 10, pinGuard: .at(nil))
        #expect(key.label == "vanthu")
        #expect(key.certificate != nil)
    }

    @Test func aWrongPINIsRefusedByItsName() throws {
        let directory = try pki.temporaryDirectory("wrong-pin")
        let pinFile = directory + "/pin"
        try "999999".write(toFile: pinFile, atomically: false, encoding: .utf8)
        chmod(pinFile, 0o600)
        let uri = try PKCS11URI(parsing: "pkcs11:token=PIN-Test;object=pin-test?pin-source=file:\(pinFile)")
        #expect {
            try TokenKey(uri: uri, modulePath: pki.softHSMModule, poolSize: 2, waitTimeout: 10, pinGuard: .at(nil))
        } throws: { error in
            let error = error as? TokenError
            return error?.code == .pin && error?.returnValueName == "CKR_PIN_INCORRECT"
                && error?.operation == "C_Login to token PIN-Test" && error?.description.contains("999999") == false
        }
    }

    @Test func aMissingPINSourceSaysWhatToAdd() throws {
        let uri = try PKCS11URI(parsing: "pkcs11:token=PIN-Test;object=pin-test")
        #expect {
            try TokenKey(uri: uri, modulePath: pki.softHSMModule, poolSize: 2, waitTimeout: 10, pinGuard: .at(nil))
        } throws: { error in
            (error as? TokenError)?.code == .pin && "\(error)".contains("pin-source=file:")
        }
    }

    @Test func aWorldReadablePINFileIsRefusedBeforeLogin() throws {
        let directory = try pki.temporaryDirectory("loose-pin")
        let pinFile = directory + "/pin"
        try pki.pin.write(toFile: pinFile, atomically: false, encoding: .utf8)
        chmod(pinFile, 0o644)
        let uri = try PKCS11URI(parsing: "pkcs11:token=PIN-Test;object=pin-test?pin-source=file:\(pinFile)")
        #expect {
            try TokenKey(uri: uri, modulePath: pki.softHSMModule, poolSize: 2, waitTimeout: 10, pinGuard: .at(nil))
        } throws: { "\($0)".contains("chmod 0600") }
    }

    @Test func anAbsentTokenIsNamedWithTheTokensPresent() throws {
        #expect {
            try key("No-Such-Token", "unit-seal")
        } throws: { error in
            (error as? TokenError)?.code == .notFound && "\(error)".contains("STTTT-DienBien")
        }
    }

    @Test func anAbsentKeyPointsToTheTokensCommand() throws {
        #expect {
            try key("STTTT-DienBien", "no-such-key")
        } throws: { "\($0)".contains("smime-milter tokens") }
    }

    // MARK: mechanisms, each checked by OpenSSL against the certificate

    @Test(arguments: [DigestAlgorithm.sha256, .sha384, .sha512])
    func rsaPKCS1SignatureVerifiesInOpenSSL(digest: DigestAlgorithm) throws {
        let key = try key("STTTT-DienBien", "unit-seal")
        let signature = try key.sign(data, scheme: .rsaPKCS1, digest: digest)
        #expect(signature.count == 256)
        let result = try OpenSSLTool.verify(
            signature: signature, data: data, certificatePEM: pki.path("certs/STTTT-DienBien-unit-seal.pem"),
            digest: digest.rawValue.replacingOccurrences(of: "-", with: ""), in: try pki.temporaryDirectory("pkcs1"))
        #expect(result.ok, "\(result.output)")
    }

    @Test(arguments: [DigestAlgorithm.sha256, .sha512])
    func rsaPSSSignatureVerifiesInOpenSSL(digest: DigestAlgorithm) throws {
        let key = try key("STTTT-DienBien", "vanthu")
        let signature = try key.sign(data, scheme: .rsaPSS, digest: digest)
        let result = try OpenSSLTool.verify(
            signature: signature, data: data, certificatePEM: pki.path("certs/STTTT-DienBien-vanthu.pem"),
            digest: digest.rawValue.replacingOccurrences(of: "-", with: ""), pss: true,
            in: try pki.temporaryDirectory("pss"))
        #expect(result.ok, "\(result.output)")
    }

    @Test(arguments: [DigestAlgorithm.sha256, .sha384])
    func ecdsaSignatureIsDEREncodedAndVerifiesInOpenSSL(digest: DigestAlgorithm) throws {
        let key = try key("UBND-MuongLay", "unit-seal")
        #expect(key.keyType == .ec(curve: "P-256", bits: 256))
        #expect(key.schemes == [.ecdsa])
        let signature = try key.sign(data, digest: digest)
        #expect(signature.first == 0x30)
        let result = try OpenSSLTool.verify(
            signature: signature, data: data, certificatePEM: pki.path("certs/UBND-MuongLay-unit-seal.pem"),
            digest: digest.rawValue.replacingOccurrences(of: "-", with: ""), in: try pki.temporaryDirectory("ecdsa"))
        #expect(result.ok, "\(result.output)")
    }

    @Test func anECKeyRefusesRSASchemes() throws {
        let key = try key("UBND-MuongLay", "unit-seal")
        #expect { try key.sign(data, scheme: .rsaPSS) } throws: { ($0 as? TokenError)?.code == .unsupported }
    }

    @Test func derIntegersAreMinimalAndPositive() {
        #expect(DER.integer([0x00, 0x00, 0x7F]) == [0x02, 0x01, 0x7F])
        #expect(DER.integer([0x80]) == [0x02, 0x02, 0x00, 0x80])
        #expect(DER.integer([0x00]) == [0x02, 0x01, 0x00])
        #expect(DER.length(200) == [0x81, 200])
        #expect(DER.length(300) == [0x82, 0x01, 0x2C])
    }

    // MARK: the pool

    @Test func eightThreadsSignAtOnceThroughAPoolOfTwo() throws {
        let key = try key("STTTT-DienBien", "unit-seal", poolSize: 2)
        // PKCS#1 v1.5 is deterministic: every signature must equal the reference.
        let reference = try key.sign(data)
        let results = Results()
        // Real threads, as libmilter gives each connection: concurrentPerform may run the
        // iterations one after another on a busy machine.
        let group = DispatchGroup()
        let data = data
        for _ in 0..<8 {
            group.enter()
            Thread.detachNewThread {
                for _ in 0..<10 {
                    results.add(Result { try key.sign(data) })
                }
                group.leave()
            }
        }
        group.wait()
        let all = results.all
        #expect(all.count == 80)
        for result in all {
            #expect(try result.get() == reference)
        }
        #expect(key.peakSessions <= 2)
        #expect(key.peakSessions == 2)
    }

    @Test func aSignerWaitingPastTheDeadlineGetsAClearTimeout() throws {
        let key = try key("UBND-MuongLay", "unit-seal", poolSize: 1, waitTimeout: 0.3)
        let held = try key.acquire()
        defer { key.release(held, broken: false) }
        let start = Date()
        #expect {
            try key.sign(data)
        } throws: { error in
            (error as? TokenError)?.code == .timeout && "\(error)".contains("all 1 sessions stayed busy")
        }
        let waited = Date().timeIntervalSince(start)
        #expect(waited >= 0.3 && waited < 5)
    }

    // MARK: recovery

    /// A private copy of the SoftHSM library, so that a test's module restarts stay away from the
    /// other tests running at the same time.
    func privateModuleCopy(_ name: String) throws -> String {
        let moduleCopy = try pki.temporaryDirectory(name) + "/libsofthsm2-copy.so"
        let library = URL(fileURLWithPath: pki.softHSMModule).resolvingSymlinksInPath().path
        try FileManager.default.copyItem(atPath: library, toPath: moduleCopy)
        return moduleCopy
    }

    /// A module restart made for one key (its token went missing) must not leave another key on
    /// the same module signing through stale handles: SoftHSM numbers sessions and objects from 1
    /// again, so an old handle can name the other token's key. RSA PKCS#1 v1.5 is deterministic:
    /// the same key gives the same signature. The token is one no other test uses: this second
    /// SoftHSM instance's logins rewrite the token's file, which another instance in the same
    /// process could read half-written (SoftHSM's file locks are per process).
    @Test func aModuleRestartForAnotherKeyNeverSignsWithTheWrongKey() throws {
        let moduleCopy = try privateModuleCopy("restart")
        let unit = try TokenKey(
            uri: PKCS11URI(parsing: pki.keyURI(token: "Restart-Test", object: "first")), modulePath: moduleCopy, poolSize: 2, waitTimeout: 10, pinGuard: .at(nil))
        let before = try unit.sign(data)
        #expect(try PKCS11Module.load(path: moduleCopy).reinitialize(notWithin: 0))
        // Another key takes the first handles of the new incarnation.
        let other = try TokenKey(
            uri: PKCS11URI(parsing: pki.keyURI(token: "Restart-Test", object: "second")), modulePath: moduleCopy, poolSize: 2, waitTimeout: 10, pinGuard: .at(nil))
        _ = try other.sign(data)
        #expect(try unit.sign(data) == before)
        #expect(try other.sign(data) != before)
    }
}

final class Results: Sendable {
    private let results = Mutex<[Result<[UInt8], any Error>]>([])

    func add(_ result: Result<[UInt8], any Error>) { results.withLock { $0.append(result) } }
    var all: [Result<[UInt8], any Error>] { results.withLock { $0 } }
}
