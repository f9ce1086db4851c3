import Foundation
import MIME
import SMIME
import TestSupport
import Testing
import Token

@Test func smokeSignVerifiesInOpenSSL() throws {
    let pki = TestPKI.shared
    let key = try TokenKey(uri: PKCS11URI(parsing: pki.keyURI(token: "STTTT-DienBien", object: "unit-seal")), modulePath: pki.softHSMModule)
    let signer = try TokenSigner(key: key, chainFile: pki.path("ca/chain.pem"))
    let inner = Array("Content-Type: text/plain; charset=us-ascii\r\n\r\nHello.\r\n".utf8)
    let der = try CMSSigning.sign(content: inner, signer: signer)
    let signed = MultipartSigned(inner: inner, signatureDER: der, micalg: "sha-256")
    let message = Array("From: stttt@dienbien.gov.vn\r\nMIME-Version: 1.0\r\nContent-Type: \(signed.contentType)\r\n\r\n".utf8) + signed.body
    let dir = try pki.temporaryDirectory("smoke")
    try Data(message).write(to: URL(fileURLWithPath: dir + "/m.eml"))
    let result = try TestPKI.run(["openssl", "cms", "-verify", "-in", dir + "/m.eml", "-CAfile", pki.path("ca/root.pem"), "-out", "/dev/null"])
    print(result.output)
    #expect(result.status == 0)
}
