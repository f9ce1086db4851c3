import Gateway
import Logging
import MIME
import Testing

@testable import Milter

/// Applying a decision without libmilter: a recording editor stands where the MTA would be.
@Suite struct DecisionApplierTests {
    final class Recorder: MessageEditor {
        var calls: [String] = []
        var bodyPieces: [Int] = []
        var body: [UInt8] = []
        var refuse: String?

        func record(_ call: String) -> Bool {
            calls.append(call)
            return refuse.map { !call.hasPrefix($0) } ?? true
        }

        func changeHeader(_ name: String, occurrence: Int, value: String?) -> Bool {
            record("change \(name) \(occurrence) \(value ?? "(delete)")")
        }
        func insertHeader(_ name: String, at index: Int, value: String) -> Bool { record("insert \(index) \(name):\(value)") }
        func addHeader(_ name: String, value: String) -> Bool { record("add \(name):\(value)") }
        func replaceBody(_ piece: ArraySlice<UInt8>) -> Bool {
            bodyPieces.append(piece.count)
            body += piece
            return record("body \(piece.count)")
        }
        func quarantine(_ reason: String) -> Bool { record("quarantine \(reason)") }
        func setReply(code: String, enhancedCode: String, text: String) { _ = record("reply \(code) \(enhancedCode) \(text)") }
    }

    let logger = Logger(label: "test")

    @Test func editsGoInOrderAndALargeBodyInPiecesLibmilterTakes() {
        let body: [[UInt8]] = [Array(repeating: 0x41, count: 100_000), [], Array(repeating: 0x42, count: 10)]
        let decision = Decision(
            outcome: .signed(signer: "x"),
            actions: [
                .header(.delete(name: "Content-Type", occurrence: 1)),
                .header(.insert(index: 0, name: "Content-Type", value: "multipart/signed; boundary=b")),
                .replaceBody(body),
            ],
            units: [], address: nil)
        let recorder = Recorder()
        #expect(DecisionApplier.apply(decision, to: recorder, leadingSpace: true, logger: logger) == .accept)
        #expect(recorder.calls.prefix(2) == ["change Content-Type 1 (delete)", "insert 0 Content-Type: multipart/signed; boundary=b"])
        #expect(recorder.bodyPieces == [65535, 100_000 - 65535 + 10])
        #expect(recorder.body == body.flatMap { $0 })
    }

    /// A signed message's pieces go in as few calls as fit, in order, each at most 65,535 octets.
    @Test(arguments: [[70, 6_500, 2_800], [70, 200_000, 2_800], [65_535, 65_535, 1], [1, 65_535, 65_534, 2], [0, 0, 5]])
    func smallPiecesGoTogether(sizes: [Int]) {
        let body = sizes.enumerated().map { index, size in [UInt8](repeating: UInt8(0x41 + index), count: size) }
        let decision = Decision(outcome: .signed(signer: "x"), actions: [.replaceBody(body)], units: [], address: nil)
        let recorder = Recorder()
        #expect(DecisionApplier.apply(decision, to: recorder, leadingSpace: true, logger: logger) == .accept)
        #expect(recorder.body == body.flatMap { $0 })
        #expect(recorder.bodyPieces.allSatisfy { $0 > 0 && $0 <= 65535 })
        let total = sizes.reduce(0, +)
        #expect(recorder.bodyPieces.count <= (total + 65534) / 65535 + 1)
        if total <= 65535 { #expect(recorder.bodyPieces == [total]) }
    }

    @Test func anEmptyNewBodyIsSentAsOneEmptyPiece() {
        let decision = Decision(outcome: .signed(signer: "x"), actions: [.replaceBody([[]])], units: [], address: nil)
        let recorder = Recorder()
        _ = DecisionApplier.apply(decision, to: recorder, leadingSpace: false, logger: logger)
        #expect(recorder.bodyPieces == [0])
    }

    /// The MTA refuses a change while signing: the message is deferred, never let through
    /// half-changed, and nothing after the refusal is attempted.
    @Test func aRefusedChangeDefersTheMessage() {
        let decision = Decision(
            outcome: .signed(signer: "x"),
            actions: [.header(.add(name: "X-A", value: "1")), .replaceBody([[0x41]])], units: [], address: nil)
        let recorder = Recorder()
        recorder.refuse = "add"
        #expect(DecisionApplier.apply(decision, to: recorder, leadingSpace: false, logger: logger) == .tempfail)
        #expect(recorder.calls == ["add X-A:1", "reply 451 4.3.0 message could not be processed, try again later"])
    }

    @Test(arguments: [
        (MilterAction.Reply.failure(.tempfail, enhancedSubject: "7.0", text: "token 100% gone\r\n"), MessageEnding.tempfail,
         Optional("reply 451 4.7.0 token 100? gone??")),
        (.failure(.reject, enhancedSubject: "7.1", text: "no"), .reject, "reply 550 5.7.1 no"),
        (.failure(.quarantine, enhancedSubject: "7.1", text: "bad signature"), .accept, "quarantine bad signature"),
        (.accept, .accept, nil),
    ])
    func theReplyEndsTheMessage(reply: MilterAction.Reply, ending: MessageEnding, call: String?) {
        let decision = Decision(outcome: .skipped(why: "x"), reply: reply, units: [], address: nil)
        let recorder = Recorder()
        #expect(DecisionApplier.apply(decision, to: recorder, leadingSpace: false, logger: logger) == ending)
        #expect(recorder.calls == (call.map { [$0] } ?? []))
    }

    @Test func headerValuesKeepTheLeadingSpaceOnlyWhenTheMTADoes() {
        let decision = Decision(
            outcome: .skipped(why: "x"), actions: [.header(.add(name: "X-A", value: "v"))], units: [], address: nil)
        let with = Recorder()
        _ = DecisionApplier.apply(decision, to: with, leadingSpace: true, logger: logger)
        let without = Recorder()
        _ = DecisionApplier.apply(decision, to: without, leadingSpace: false, logger: logger)
        #expect(with.calls == ["add X-A: v"] && without.calls == ["add X-A:v"])
    }

    /// A value as libmilter takes it (folded with LF, the leading space as the MTA wants it) is
    /// what the earlier walk of the folded text's UTF-8 view gave, for values that fold, that do
    /// not, that start with spaces, and that are not ASCII.
    @Test func foldedValuesAreWhatTheUTF8WalkGave() {
        func reference(_ name: String, _ value: String, _ leadingSpace: Bool) -> String {
            let whole = HeaderField.fold(name: name, value: value).utf8
            var out: [UInt8] = []
            var previous: UInt8 = 0
            for byte in whole.dropFirst(name.utf8.count + 1) {
                if byte == 0x0A && previous == 0x0D { out.removeLast() }
                out.append(byte)
                previous = byte
            }
            let start = leadingSpace ? 0 : out.firstIndex(where: { $0 != 0x20 }) ?? out.count
            return String(decoding: out[start...], as: UTF8.self)
        }
        let words = ["smime=pass", "body.smime-identifier=vanthu@stttt.dienbien.gov.vn", "  ", "Ủy ban nhân dân", "x", "\t", ""]
        var generator = SystemRandomNumberGenerator()
        var folds = 0
        for _ in 0..<2_000 {
            let value = (0..<Int.random(in: 0...40, using: &generator)).map { _ in words.randomElement(using: &generator)! }
                .joined(separator: " ")
            for name in ["Authentication-Results", "X"] {
                for leadingSpace in [true, false] {
                    let folded = DecisionApplier.folded(name, value, leadingSpace)
                    #expect(folded == reference(name, value, leadingSpace))
                    if folded.contains("\n") { folds += 1 }
                }
            }
        }
        #expect(folds > 1_000)
    }
}
