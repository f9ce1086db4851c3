/// The signed data of an S/MIME message, found for verification.
public enum SignedContent: Sendable, Equatable {
    /// `multipart/signed`: the exact signed bytes of the first part (CRLF canonical) and the
    /// decoded signature (DER CMS SignedData without content).
    case detached(content: [UInt8], signature: [UInt8], part: String?)
    /// `application/pkcs7-mime; smime-type=signed-data`: the CMS with its content inside.
    case opaque(cms: [UInt8], part: String?)

    /// The body part number, `1` for the first part of a top-level `multipart/mixed`; nil when
    /// the whole message is the signed entity.
    public var part: String? {
        switch self {
        case .detached(_, _, let part), .opaque(_, let part): part
        }
    }

    /// Looks for a signature at the top level, then one level down in a `multipart/mixed`
    /// (where a mailing list added a footer). Nil when the message is not signed; an error when
    /// it claims to be but its structure is unusable.
    public static func find(in message: Message) throws -> SignedContent? {
        if let found = try signed(message.root, in: message, part: nil) { return found }
        if message.root.contentType.value == "multipart/mixed" {
            for (index, child) in message.root.parts.enumerated() {
                if let found = try signed(child, in: message, part: String(index + 1)) { return found }
            }
        }
        return nil
    }

    private static func signed(_ entity: Entity, in message: Message, part: String?) throws -> SignedContent? {
        let type = entity.contentType
        if type.value == "multipart/signed" {
            let proto = type["protocol"]?.lowercased() ?? ""
            guard proto == "application/pkcs7-signature" || proto == "application/x-pkcs7-signature" else {
                return nil  // PGP/MIME or something else: not ours
            }
            guard entity.parts.count >= 2 else {
                throw MIMEError("multipart/signed has \(entity.parts.count) part(s), needs the content and the signature")
            }
            let signature = message.decodedBody(of: entity.parts[1])
            let content = Bytes.canonicalCRLF(message.bytes(of: entity.parts[0]))
            return .detached(content: content, signature: signature, part: part)
        }
        if type.value == "application/pkcs7-mime" || type.value == "application/x-pkcs7-mime" {
            let smimeType = type["smime-type"]?.lowercased()
            let name = type["name"]?.lowercased() ?? ""
            // Older agents omit smime-type; the .p7m name with no other hint is taken as signed data.
            if smimeType == "signed-data" || (smimeType == nil && name.hasSuffix(".p7m")) {
                return .opaque(cms: message.decodedBody(of: entity), part: part)
            }
        }
        return nil
    }
}
