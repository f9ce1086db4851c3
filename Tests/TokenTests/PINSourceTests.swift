import Foundation
import TestSupport
import Testing
import Token

@Suite struct PINSourceTests {
    let directory: String

    init() throws {
        directory = try TestPKI.shared.temporaryDirectory("pin")
    }

    func write(_ name: String, _ text: String, mode: Int) throws -> String {
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    @Test func readsAPrivateFileAndDropsTheNewline() throws {
        let path = try write("good", "123456\n", mode: 0o600)
        let source = try #require(try PINSource(uri: PKCS11URI(pinSource: "file:" + path)))
        #expect(source == .file(path))
        #expect(try source.read() == Array("123456".utf8))
    }

    @Test func refusesAFileOthersCanRead() throws {
        let path = try write("loose", "123456", mode: 0o644)
        let source = try #require(try PINSource(uri: PKCS11URI(pinSource: path)))
        #expect {
            try source.read()
        } throws: { error in
            let text = "\(error)"
            return (error as? TokenError)?.code == .pin && text.contains("chmod 0600 \(path)")
                && text.contains("0644") && !text.contains("123456")
        }
    }

    @Test func namesAMissingFile() throws {
        let source = try #require(try PINSource(uri: PKCS11URI(pinSource: "file:\(directory)/absent")))
        #expect {
            try source.read()
        } throws: { error in
            "\(error)".contains("\(directory)/absent") && "\(error)".contains("No such file")
        }
    }

    @Test func refusesAnEmptyFile() throws {
        let path = try write("empty", "\n", mode: 0o400)
        let source = try #require(try PINSource(uri: PKCS11URI(pinSource: path)))
        #expect { try source.read() } throws: { "\($0)".contains("empty") }
    }

    /// Outside systemd the error names the unit line to add; run by a service that has
    /// credentials of its own (CREDENTIALS_DIRECTORY set), the name is read from that directory,
    /// where no credential of this name exists. Either way the read is checked.
    @Test func credentialNeedsSystemd() throws {
        let name = "smime-milter-test-\(UUID().uuidString)"
        let source = try #require(try PINSource(uri: PKCS11URI(pinSource: "cred:" + name)))
        #expect(source == .credential(name))
        if let directory = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"] {
            #expect { try source.read() } throws: { "\($0)".contains("reading the PIN file \(directory)/\(name)") }
        } else {
            #expect { try source.read() } throws: { "\($0)".contains("add LoadCredential=\(name):/PATH to the service unit") }
        }
    }

    @Test func rejectsARelativeSource() {
        #expect { try PINSource(uri: PKCS11URI(pinSource: "pins/stttt")) } throws: {
            "\($0)".contains("file:/ABSOLUTE/PATH")
        }
    }

    @Test func noSourceMeansNoPIN() throws {
        #expect(try PINSource(uri: PKCS11URI(token: "T")) == nil)
    }
}
