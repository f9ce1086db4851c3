import Testing
import Token

@Suite struct PKCS11URITests {
    @Test func parsesEveryAttributeRFC7512Names() throws {
        let uri = try PKCS11URI(
            parsing: "pkcs11:token=STTTT-DienBien;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;serial=f84e;"
                + "object=unit-seal;id=%01%a2;type=private?pin-source=file:/etc/smime-milter/pins/stttt"
                + "&module-path=/usr/lib/softhsm/libsofthsm2.so")
        #expect(uri.token == "STTTT-DienBien")
        #expect(uri.manufacturer == "SoftHSM project")
        #expect(uri.model == "SoftHSM v2")
        #expect(uri.serial == "f84e")
        #expect(uri.object == "unit-seal")
        #expect(uri.id == [0x01, 0xA2])
        #expect(uri.type == .privateKey)
        #expect(uri.pinSource == "file:/etc/smime-milter/pins/stttt")
        #expect(uri.modulePath == "/usr/lib/softhsm/libsofthsm2.so")
        #expect(uri.pinValue == nil)
    }

    @Test func decodesPercentEncodedUTF8Labels() throws {
        let uri = try PKCS11URI(parsing: "pkcs11:token=S%E1%BB%9F%20TT;object=d%E1%BA%A5u?module-name=softhsm2&pin-value=1234")
        #expect(uri.token == "Sở TT")
        #expect(uri.object == "dấu")
        #expect(uri.moduleName == "softhsm2")
        #expect(uri.pinValue == "1234")
    }

    @Test(arguments: [
        "file:/etc/key.pem",
        "pkcs11:token=%zz",
        "pkcs11:id=%0",
        "pkcs11:type=nonsense",
        "pkcs11:token=a?pin-source=%",
    ])
    func rejectsMalformedURIs(text: String) {
        #expect {
            try PKCS11URI(parsing: text)
        } throws: { error in
            let error = error as? TokenError
            return error?.code == .uri && error?.description.contains("pkcs11:") == true
        }
    }

    @Test func writesAURIThatParsesBackToTheSameValue() throws {
        let original = PKCS11URI(
            token: "Sở Thông tin; TT", serial: "42", object: "unit seal", id: [0, 255], type: .privateKey,
            pinSource: "file:/etc/smime-milter/pins/stttt")
        let reparsed = try PKCS11URI(parsing: original.description)
        #expect(reparsed == original)
    }

    @Test func neverWritesAPINValue() throws {
        let uri = try PKCS11URI(parsing: "pkcs11:token=T;object=k?pin-value=secret99")
        #expect(!uri.description.contains("secret99"))
        #expect {
            try PKCS11URI(parsing: "pkcs11:token=%zz?pin-value=secret99")
        } throws: { error in
            !"\(error)".contains("secret99")
        }
    }
}
