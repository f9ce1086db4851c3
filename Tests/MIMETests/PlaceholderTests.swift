import MIME
import Testing

@Test func mimeErrorDescribesItself() {
    #expect(MIMEError("bad boundary").description == "bad boundary")
}
