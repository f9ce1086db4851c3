/// What the milter does to a message, in order: header edits and a new body. How the message
/// ends is `Decision.reply`.
public enum MilterAction: Sendable, Equatable {
    case header(HeaderEdit)
    /// The new body, in pieces to be sent in order (the signed entity is one of them, not copied).
    case replaceBody([[UInt8]])

    /// The reply that ends a message: the disposition and, for tempfail and reject, the SMTP
    /// code, enhanced status code (RFC 3463) and text Postfix passes on to the client.
    public struct Reply: Sendable, Equatable, CustomStringConvertible {
        public enum Disposition: String, Sendable {
            case accept, tempfail, reject, quarantine
        }

        public let disposition: Disposition
        public let code: String?
        public let enhancedCode: String?
        public let text: String

        public init(_ disposition: Disposition, code: String? = nil, enhancedCode: String? = nil, text: String = "") {
            self.disposition = disposition
            self.code = code
            self.enhancedCode = enhancedCode
            self.text = text
        }

        public static let accept = Reply(.accept)

        /// The reply for a failure under the configured action: 451 4.x.x for tempfail, 550 5.x.x
        /// for reject (the class digit of `enhancedSubject` is filled in), the text as reason
        /// for quarantine.
        public static func failure(_ action: FailureAction, enhancedSubject: String, text: String) -> Reply {
            switch action {
            case .accept: return .accept
            case .tempfail: return Reply(.tempfail, code: "451", enhancedCode: "4." + enhancedSubject, text: text)
            case .reject: return Reply(.reject, code: "550", enhancedCode: "5." + enhancedSubject, text: text)
            case .quarantine: return Reply(.quarantine, text: text)
            }
        }

        public var description: String {
            [disposition.rawValue, code, enhancedCode, text.isEmpty ? nil : text].compactMap { $0 }.joined(separator: " ")
        }
    }
}
