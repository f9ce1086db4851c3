public import Gateway
public import Logging
import MIME

/// What applying a decision needs from the MTA: its modifications (`smfi_chgheader`,
/// `smfi_insheader`, `smfi_addheader`, `smfi_replacebody`, `smfi_quarantine`, `smfi_setreply`),
/// each saying whether the MTA took it. libmilter is one implementation; the tests record calls.
public protocol MessageEditor {
    /// Changes, or with a nil value deletes, the `occurrence`-th field of that name.
    func changeHeader(_ name: String, occurrence: Int, value: String?) -> Bool
    func insertHeader(_ name: String, at index: Int, value: String) -> Bool
    func addHeader(_ name: String, value: String) -> Bool
    /// One piece of the new body, at most 65,535 octets; an empty piece when the body is empty.
    func replaceBody(_ piece: ArraySlice<UInt8>) -> Bool
    func quarantine(_ reason: String) -> Bool
    func setReply(code: String, enhancedCode: String, text: String)
}

/// How the message ends, for the MTA.
public enum MessageEnding: Sendable, Equatable {
    case accept, tempfail, reject
}

/// Applies a `Decision` through a `MessageEditor`: every action in order, then the reply. If
/// the MTA refuses an action, the message is tempfailed rather than let through half-changed
/// or unsigned.
public enum DecisionApplier {
    /// The largest body piece libmilter sends in one message.
    public static let bodyPiece = 65535

    /// - Parameter leadingSpace: the MTA keeps header values' leading space (SMFIP_HDR_LEADSPC).
    public static func apply(
        _ decision: Decision, to editor: some MessageEditor, leadingSpace: Bool, logger: Logger
    ) -> MessageEnding {
        var failed: String?
        for action in decision.actions where failed == nil {
            switch action {
            case .header(let edit):
                let taken: Bool
                switch edit {
                case .delete(let name, let occurrence):
                    taken = editor.changeHeader(name, occurrence: occurrence, value: nil)
                case .change(let name, let occurrence, let value):
                    taken = editor.changeHeader(name, occurrence: occurrence, value: folded(name, value, leadingSpace))
                case .insert(let index, let name, let value):
                    taken = editor.insertHeader(name, at: index, value: folded(name, value, leadingSpace))
                case .add(let name, let value):
                    taken = editor.addHeader(name, value: folded(name, value, leadingSpace))
                }
                if !taken { failed = "the MTA refused a header change (\(edit))" }
            case .replaceBody(let pieces):
                // A signed message's pieces (preamble, inner entity, signature part) are a few
                // kilobytes each: sent together where they fit in one piece, not as one milter
                // message (and one write) each. A full piece is sent from where it lies, uncopied.
                var pending: [UInt8] = []
                func send(_ piece: ArraySlice<UInt8>) {
                    if failed == nil && !editor.replaceBody(piece) { failed = "the MTA refused the new body" }
                }
                for piece in pieces {
                    var offset = 0
                    while offset < piece.count && failed == nil {
                        let end = min(piece.count, offset + bodyPiece)
                        if pending.count + (end - offset) > bodyPiece {
                            send(pending[...])
                            pending.removeAll(keepingCapacity: true)
                        }
                        if pending.isEmpty && end - offset == bodyPiece {
                            send(piece[offset..<end])
                        } else {
                            pending += piece[offset..<end]
                        }
                        offset = end
                    }
                }
                if !pending.isEmpty { send(pending[...]) }
                if failed == nil && pieces.allSatisfy(\.isEmpty) && !editor.replaceBody([]) {
                    failed = "the MTA refused the new body"
                }
            }
        }
        if let failed {
            logger.error("\(failed); the message is deferred")
            editor.setReply(code: "451", enhancedCode: "4.3.0", text: "message could not be processed, try again later")
            return .tempfail
        }
        let reply = decision.reply
        switch reply.disposition {
        case .accept:
            return .accept
        case .quarantine:
            _ = editor.quarantine(sanitized(reply.text))
            return .accept
        case .tempfail:
            editor.setReply(code: reply.code ?? "451", enhancedCode: reply.enhancedCode ?? "4.7.0", text: sanitized(reply.text))
            return .tempfail
        case .reject:
            editor.setReply(code: reply.code ?? "550", enhancedCode: reply.enhancedCode ?? "5.7.0", text: sanitized(reply.text))
            return .reject
        }
    }

    /// A header value as libmilter takes it: folded with LF line breaks, with the leading space
    /// when the MTA keeps header values' leading space.
    static func folded(_ name: String, _ value: String, _ leadingSpace: Bool) -> String {
        // Over octets (the name is ASCII, RFC 5322 section 3.6.8): Foundation's search for CRLF
        // was half the time of applying a signed message's header edits.
        // Through a pointer into the folded text's storage, not a walk of its UTF-8 view.
        var whole = HeaderField.fold(name: name, value: value)
        return whole.withUTF8 { octets in
            var out: [UInt8] = []
            out.reserveCapacity(octets.count)
            var previous: UInt8 = 0
            for byte in octets[min(octets.count, name.utf8.count + 1)...] {
                if byte == 0x0A && previous == 0x0D { out.removeLast() }
                out.append(byte)
                previous = byte
            }
            let start = leadingSpace ? 0 : out.firstIndex(where: { $0 != 0x20 }) ?? out.count
            return String(decoding: out[start...], as: UTF8.self)
        }
    }

    /// Reply text: printable ASCII, no `%` (libmilter formats it), at most 900 octets.
    static func sanitized(_ text: String) -> String {
        String(String(text.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0 != "%" ? Character($0) : "?" }).prefix(900))
    }
}
