import Foundation
import Testing

@testable import Milter

/// The envelope address a milter callback is given, without its angle brackets: read over the
/// argument's octets, with the answers the earlier `Character`-based reading gave.
@Suite struct EnvelopeAddressTests {
    @Test(arguments: [
        ("<ketoan@stttt.dienbien.gov.vn>", "ketoan@stttt.dienbien.gov.vn"),
        ("ketoan@stttt.dienbien.gov.vn", "ketoan@stttt.dienbien.gov.vn"),
        ("<>", ""),
        ("", ""),
        ("<<a@b>", "<a@b"),
        ("<a@b", "a@b"),
        ("<a@b>>", "a@b"),
        ("<kế.toán@sở.dienbien.gov.vn>", "kế.toán@sở.dienbien.gov.vn"),
        ("<\"a>b\"@c>", "\"a"),
    ])
    func theAngleBracketsAreTakenOff(argument: String, address: String) {
        var octets = Array(argument.utf8CString)
        let read = octets.withUnsafeMutableBufferPointer { Libmilter.address($0.baseAddress) }
        #expect(read == address)
        let characters = String(argument.trimmingPrefix("<").prefix(while: { $0 != ">" }))
        #expect(read == characters)
    }

    @Test func noArgumentIsAnEmptyAddress() {
        #expect(Libmilter.address(nil) == "")
    }
}
