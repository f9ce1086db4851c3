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
        /// The signingTime attribute written, nil when it was left out (see `signingTime(for:now:skew:)`).
        public let signingTime: Date?
    }

    /// `digest` and `signingTimeSkew` come from the configuration (`DigestAlgorithm`,
    /// `SigningTimeSkew`); `now` is the signing time unless the message's Date is further from it
    /// than the skew.
    public static func sign(
        headers: [HeaderField], body: [UInt8], signer: any Signer, digest: DigestAlgorithm, signingTimeSkew: TimeInterval,
        limits: MIMELimits = .default, now: Date = Date()
    ) throws -> Result {
        try sign(
            prepared: SigningPreparation(headers: headers, body: body, limits: limits), headers: headers, signer: signer,
            digest: digest, signingTimeSkew: signingTimeSkew, now: now)
    }

    /// The same for a message already prepared (the milter prepares it before it asks the
    /// token for anything: malformed mail gets its answer whether or not the token is there).
    public static func sign(
        prepared: SigningPreparation, headers: [HeaderField], signer: any Signer, digest: DigestAlgorithm,
        signingTimeSkew: TimeInterval, now: Date = Date()
    ) throws -> Result {
        let signingTime = signingTime(for: headers, now: now, skew: signingTimeSkew)
        let signature = try CMSSigning.sign(content: prepared.inner, signer: signer, digest: digest, signingTime: signingTime)
        let signed = MultipartSigned(inner: prepared.inner, signatureDER: signature, micalg: digest.rawValue)
        // The first Content-Type becomes the multipart/signed one where it stands: one
        // modification for the MTA (one milter message, one queue-file edit) instead of a delete
        // and an add. The other moved fields go.
        var edits: [HeaderEdit] = []
        var replaced = false
        for moved in prepared.movedHeaders {
            if moved.occurrence == 1 && moved.name.lowercased() == "content-type" {
                edits.append(.change(name: "Content-Type", occurrence: 1, value: signed.contentType))
                replaced = true
            } else {
                edits.append(.delete(name: moved.name, occurrence: moved.occurrence))
            }
        }
        if prepared.needsMIMEVersion {
            edits.append(.add(name: "MIME-Version", value: "1.0"))
        }
        if !replaced { edits.append(.add(name: "Content-Type", value: signed.contentType)) }
        return Result(
            headerEdits: edits, body: signed.pieces, inner: prepared.inner, signature: signature, signingTime: signingTime)
    }

    /// The signing time to write: `now`, or nil when the message's Date is more than `skew` from
    /// it. Mail that waited (a token was out, Postfix retried) would otherwise carry a signing
    /// time far from its Date, which Thunderbird shows as not valid; RFC 5652 makes the
    /// attribute optional. A Date as far in the future is treated the same: the two would
    /// disagree just as much.
    public static func signingTime(for headers: [HeaderField], now: Date, skew: TimeInterval) -> Date? {
        guard let date = Verification.date(of: headers), abs(now.timeIntervalSince(date)) > skew else { return now }
        return nil
    }

    /// Signs a message file: the same work, with the edits applied and the message written out
    /// in CRLF form.
    public static func sign(
        message bytes: [UInt8], signer: any Signer, digest: DigestAlgorithm, signingTimeSkew: TimeInterval,
        now: Date = Date()
    ) throws -> [UInt8] {
        // The body's structure is parsed once, by `SigningPreparation`.
        let (headers, bodyStart) = try Message.headerSection(bytes)
        let result = try sign(
            headers: headers, body: Array(bytes[bodyStart...]), signer: signer, digest: digest,
            signingTimeSkew: signingTimeSkew, now: now)
        var out: [UInt8] = []
        for field in HeaderEdit.apply(result.headerEdits, to: headers) {
            out += field.canonicalBytes
        }
        out += [0x0D, 0x0A]
        for piece in result.body { out += piece }
        return out
    }
}
