public import Foundation
public import MIME
public import SMIME
public import Token

/// Signing a whole message: MIME prepares the inner entity, SMIME signs it, MIME wraps it in
/// `multipart/signed`; the result is the header edits and the new body the milter applies.
public enum Signing {
    public struct Result: Sendable {
        public let headerEdits: [HeaderEdit]
        /// The new body, in pieces (see `MultipartSigned.pieces`).
        public let body: [[UInt8]]
        /// The signed entity (CRLF canonical) and the detached CMS signature over it.
        public let inner: [UInt8]
        public let signature: [UInt8]
    }

    public static func sign(
        headers: [HeaderField], body: [UInt8], signer: any Signer, digest: DigestAlgorithm = .sha256,
        limits: MIMELimits = .default, signingTime: Date = Date()
    ) throws -> Result {
        let prepared = try SigningPreparation(headers: headers, body: body, limits: limits)
        let signature = try CMSSigning.sign(content: prepared.inner, signer: signer, digest: digest, signingTime: signingTime)
        let signed = MultipartSigned(inner: prepared.inner, signatureDER: signature, micalg: digest.rawValue)
        var edits = prepared.movedHeaders.map { HeaderEdit.delete(name: $0.name, occurrence: $0.occurrence) }
        if prepared.needsMIMEVersion {
            edits.append(.add(name: "MIME-Version", value: "1.0"))
        }
        edits.append(.add(name: "Content-Type", value: signed.contentType))
        return Result(headerEdits: edits, body: signed.pieces, inner: prepared.inner, signature: signature)
    }

    /// Signs a message file: the same work, with the edits applied and the message written out
    /// in CRLF form.
    public static func sign(message bytes: [UInt8], signer: any Signer, digest: DigestAlgorithm = .sha256) throws
        -> [UInt8]
    {
        let message = try Message(bytes: bytes)
        let result = try sign(
            headers: message.root.headers, body: Array(message.bytes[message.root.bodyRange]), signer: signer,
            digest: digest)
        var out: [UInt8] = []
        for field in HeaderEdit.apply(result.headerEdits, to: message.root.headers) {
            out += field.canonicalBytes
        }
        out += [0x0D, 0x0A]
        for piece in result.body { out += piece }
        return out
    }
}
