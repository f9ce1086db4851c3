import Foundation
import Glibc
import Synchronization
import Token

/// One signer's SignedData with the parts that change from message to message left open.
///
/// Everything else in the structure depends on the signer alone: the certificates, the
/// SignerInfo's identifier and algorithms, the contentType, smimeCapabilities and ESS
/// signingCertificateV2 attributes. OpenSSL builds it once (`CMSSigning.signWithOpenSSL`, the
/// same code that signs when there is no template); each message then writes its signingTime
/// and messageDigest into the signed attributes, has them signed, and the DER around them is
/// written again with the new lengths. Building the whole structure with OpenSSL for every
/// message cost about half as much again as the MIME work (BENCHMARKS.md).
///
/// The signed attributes keep their order: DER sorts a SET OF by the encoded attributes, which
/// differ in their lengths or object identifiers before any value, and the values written here
/// have the placeholders' lengths (a UTCTime is 13 characters until 2049, a digest its hash's
/// length). Times a UTCTime cannot hold go through OpenSSL as before.
struct CMSTemplate: Sendable {
    /// What a template is made for: the signer's certificate and chain, scheme, digest, and
    /// whether the signed attributes hold a signingTime.
    let certificate: [UInt8]
    let chain: [[UInt8]]
    let scheme: SignatureScheme
    let digest: DigestAlgorithm
    let timed: Bool

    /// ContentInfo's contents before `[0]` (the signedData object identifier).
    let contentInfoHead: [UInt8]
    /// SignedData's contents before the SET OF SignerInfo: version, digestAlgorithms,
    /// encapContentInfo (detached), certificates.
    let signedDataHead: [UInt8]
    /// SignerInfo's contents before the signed attributes: version, sid, digestAlgorithm.
    let signerInfoHead: [UInt8]
    /// The signed attributes' contents (the elements of the SET), with placeholders.
    let attributes: [UInt8]
    /// Where in `attributes` the signingTime's 13 characters and the messageDigest's octets go.
    let timeOffset: Int?
    let digestOffset: Int
    /// SignerInfo's signatureAlgorithm, whole.
    let signatureAlgorithm: [UInt8]

    /// The placeholder signing time: any time a UTCTime holds.
    static let placeholderTime = Date(timeIntervalSince1970: 1_700_000_000)

    /// Whether this template serves `signer` with these settings. Arrays compare by identity
    /// first, so a signer that is kept (the gateway keeps one per signing-table line) costs no
    /// comparison of its certificates' octets.
    func serves(_ signer: any Signer, digest: DigestAlgorithm, timed: Bool) -> Bool {
        self.digest == digest && self.timed == timed && scheme == signer.scheme && certificate == signer.certificate
            && chain == signer.chain
    }

    // MARK: making one

    /// Builds the template for `signer` from a structure OpenSSL makes with placeholders; nil
    /// when that structure is not the shape this code writes (it then signs through OpenSSL).
    static func make(for signer: any Signer, digest: DigestAlgorithm, timed: Bool) throws -> CMSTemplate? {
        let capture = CapturingSigner(base: signer)
        let der = try CMSSigning.signWithOpenSSL(
            content: [], signer: capture, digest: digest, signingTime: timed ? placeholderTime : nil)
        guard let signed = capture.signed.withLock({ $0 }) else { return nil }
        let reader = DERReader(der)
        guard let contentInfo = reader.element(at: 0), contentInfo.tag == 0x30, contentInfo.end == der.count,
            let ciKids = reader.children(of: contentInfo), ciKids.count == 2, ciKids[1].tag == 0xA0,
            let explicit = reader.children(of: ciKids[1]), explicit.count == 1, explicit[0].tag == 0x30,
            let sdKids = reader.children(of: explicit[0]), let signerInfos = sdKids.last, signerInfos.tag == 0x31,
            let infos = reader.children(of: signerInfos), infos.count == 1, infos[0].tag == 0x30,
            let siKids = reader.children(of: infos[0]), siKids.count == 6, siKids[3].tag == 0xA0, siKids[4].tag == 0x30,
            siKids[5].tag == 0x04,
            let attributeList = reader.children(of: siKids[3])
        else { return nil }
        let attributes = Array(der[siKids[3].contentStart..<siKids[3].end])
        // The octets the token signed are the attributes as written, under a SET tag.
        guard DER.tagged(0x31, attributes) == signed else { return nil }
        var timeOffset: Int?
        var digestOffset: Int?
        for attribute in attributeList {
            guard attribute.tag == 0x30, let parts = reader.children(of: attribute), parts.count == 2, parts[0].tag == 0x06,
                parts[1].tag == 0x31, let values = reader.children(of: parts[1]), values.count == 1
            else { return nil }
            let oid = Array(der[parts[0].contentStart..<parts[0].end])
            let value = values[0]
            let offset = value.contentStart - siKids[3].contentStart
            if oid == signingTimeOID {
                guard value.tag == 0x17, value.end - value.contentStart == 13 else { return nil }
                timeOffset = offset
            } else if oid == messageDigestOID {
                guard value.tag == 0x04, value.end - value.contentStart == digest.length else { return nil }
                digestOffset = offset
            }
        }
        guard let digestOffset, (timeOffset != nil) == timed else { return nil }
        return CMSTemplate(
            certificate: signer.certificate, chain: signer.chain, scheme: signer.scheme, digest: digest, timed: timed,
            contentInfoHead: Array(der[contentInfo.contentStart..<ciKids[1].start]),
            signedDataHead: Array(der[explicit[0].contentStart..<signerInfos.start]),
            signerInfoHead: Array(der[infos[0].contentStart..<siKids[3].start]), attributes: attributes,
            timeOffset: timeOffset, digestOffset: digestOffset,
            signatureAlgorithm: Array(der[siKids[4].start..<siKids[4].end]))
    }

    /// pkcs-9 signingTime (1.2.840.113549.1.9.5) and messageDigest (1.2.840.113549.1.9.4).
    static let signingTimeOID: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x05]
    static let messageDigestOID: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04]

    // MARK: signing a message

    /// The SignedData over `content`, DER; nil when `signingTime` cannot be a UTCTime.
    func sign(content: [UInt8], signer: any Signer, signingTime: Date?) throws -> [UInt8]? {
        var attributes = self.attributes
        if let timeOffset {
            guard let signingTime, let text = Self.utcTime(signingTime) else { return nil }
            attributes.replaceSubrange(timeOffset..<timeOffset + text.count, with: text)
        }
        let messageDigest = try Digest.compute(digest, content)
        attributes.replaceSubrange(digestOffset..<digestOffset + messageDigest.count, with: messageDigest)
        let signature = try signer.sign(DER.tagged(0x31, attributes), digest: digest)
        let signerInfo = DER.tagged(
            0x30, signerInfoHead + DER.tagged(0xA0, attributes) + signatureAlgorithm + DER.tagged(0x04, signature))
        let signedData = DER.tagged(0x30, signedDataHead + DER.tagged(0x31, signerInfo))
        return DER.tagged(0x30, contentInfoHead + DER.tagged(0xA0, signedData))
    }

    /// `YYMMDDHHMMSSZ` in UTC (RFC 5652 section 11.3), as `ASN1_TIME_set` writes it: whole
    /// seconds, cut towards zero; nil outside 1950-2049, where signingTime is a GeneralizedTime.
    static func utcTime(_ date: Date) -> [UInt8]? {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return nil }
        let year = Int(parts.tm_year) + 1900
        guard (1950...2049).contains(year) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(13)
        for value in [year % 100, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec)] {
            out.append(0x30 + UInt8(value / 10))
            out.append(0x30 + UInt8(value % 10))
        }
        out.append(0x5A)  // Z
        return out
    }
}

/// The templates made so far, a few per signer (with and without signingTime).
final class CMSTemplates: Sendable {
    static let shared = CMSTemplates()

    private let templates = Mutex<[CMSTemplate]>([])
    /// Signers whose structure this code does not write (`CMSTemplate.make` said nil): they sign
    /// through OpenSSL without asking again.
    private let declined = Mutex<[CMSTemplate.Key]>([])

    /// The template for `signer`, made on first use.
    func template(for signer: any Signer, digest: DigestAlgorithm, timed: Bool) throws -> CMSTemplate? {
        if let found = templates.withLock({ $0.first { $0.serves(signer, digest: digest, timed: timed) } }) { return found }
        let key = CMSTemplate.Key(signer, digest: digest, timed: timed)
        if declined.withLock({ $0.contains(key) }) { return nil }
        // Made outside the lock: two threads may both make the first one, which costs nothing
        // but a second OpenSSL structure. No token call is made (the placeholder is not signed).
        guard let made = try CMSTemplate.make(for: signer, digest: digest, timed: timed) else {
            declined.withLock { list in
                if list.count >= 64 { list.removeAll() }
                list.append(key)
            }
            return nil
        }
        templates.withLock { list in
            // Bounded: a configuration names a handful of signers; reloads may add more.
            if list.count >= 64 { list.removeAll() }
            if !list.contains(where: { $0.serves(signer, digest: digest, timed: timed) }) { list.append(made) }
        }
        return made
    }
}

extension CMSTemplate {
    /// A signer and settings, for the list of those without a template.
    struct Key: Equatable, Sendable {
        let certificate: [UInt8]
        let chain: [[UInt8]]
        let scheme: SignatureScheme
        let digest: DigestAlgorithm
        let timed: Bool

        init(_ signer: any Signer, digest: DigestAlgorithm, timed: Bool) {
            certificate = signer.certificate
            chain = signer.chain
            scheme = signer.scheme
            self.digest = digest
            self.timed = timed
        }
    }
}

/// Stands in for the signer while the template is made: keeps the octets it was given and
/// returns a placeholder, so that making a template costs no token call.
private final class CapturingSigner: Signer {
    let base: any Signer
    let signed = Mutex<[UInt8]?>(nil)

    init(base: any Signer) {
        self.base = base
    }

    var certificate: [UInt8] { base.certificate }
    var chain: [[UInt8]] { base.chain }
    var scheme: SignatureScheme { base.scheme }

    func sign(_ data: [UInt8], digest: DigestAlgorithm) throws -> [UInt8] {
        signed.withLock { $0 = data }
        return [0]
    }
}

/// Just enough of a DER reader to take a template apart: definite lengths only.
struct DERReader {
    struct Element {
        let tag: UInt8
        /// Where the tag is, where the contents start, and the end of the contents.
        let start: Int
        let contentStart: Int
        let end: Int
    }

    let bytes: [UInt8]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    func element(at offset: Int) -> Element? {
        guard offset + 2 <= bytes.count, bytes[offset] & 0x1F != 0x1F else { return nil }
        var length = Int(bytes[offset + 1])
        var contentStart = offset + 2
        if length & 0x80 != 0 {
            let octets = length & 0x7F
            guard octets >= 1, octets <= 4, contentStart + octets <= bytes.count else { return nil }
            length = 0
            for index in contentStart..<contentStart + octets { length = length << 8 | Int(bytes[index]) }
            contentStart += octets
        }
        guard contentStart + length <= bytes.count else { return nil }
        return Element(tag: bytes[offset], start: offset, contentStart: contentStart, end: contentStart + length)
    }

    /// The elements inside a constructed one; nil when they do not fill it exactly.
    func children(of parent: Element) -> [Element]? {
        var found: [Element] = []
        var offset = parent.contentStart
        while offset < parent.end {
            guard let child = element(at: offset), child.end <= parent.end else { return nil }
            found.append(child)
            offset = child.end
        }
        return found
    }
}
