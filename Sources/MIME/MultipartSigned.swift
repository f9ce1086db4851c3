import Glibc

/// The RFC 8551 section 3.5.3 `multipart/signed` body around a signed inner entity.
public struct MultipartSigned: Sendable {
    /// The new top-level `Content-Type` value.
    public let contentType: String
    /// The new body in three pieces, to be written in order: the preamble and first delimiter,
    /// the inner entity exactly as signed (shared with the caller's array, not copied), and the
    /// signature part with the close delimiter.
    public let pieces: [[UInt8]]
    public let boundary: String

    /// The new body in one piece.
    public var body: [UInt8] { Array(pieces.joined()) }

    /// Builds the body: the inner entity exactly as signed, then the signature part
    /// (`application/pkcs7-signature`, base64), then the close delimiter and nothing after it.
    ///
    /// - Parameter micalg: `sha-256`, `sha-384` or `sha-512` (RFC 8551 section 3.5.3.2).
    public init(inner: [UInt8], signatureDER: [UInt8], micalg: String) {
        self.init(inner: inner, signatureDER: signatureDER, micalg: micalg, boundaries: MultipartSigned.newBoundary)
    }

    /// The body with boundaries drawn from `boundaries` until one does not occur in `inner`
    /// (the tests draw boundaries that collide).
    init(inner: [UInt8], signatureDER: [UInt8], micalg: String, boundaries: () -> String) {
        var boundary = boundaries()
        while MultipartSigned.contains(inner, Array(("--" + boundary).utf8)) {
            boundary = boundaries()
        }
        self.boundary = boundary
        contentType =
            "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=\(micalg); boundary=\"\(boundary)\""
        var signature = Array(
            ("\r\n--\(boundary)\r\n"
                + "Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
                + "Content-Transfer-Encoding: base64\r\n"
                + "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n"
                + "Content-Description: S/MIME Cryptographic Signature\r\n\r\n").utf8)
        Base64.encode(signatureDER[...], into: &signature)
        signature += Array("--\(boundary)--\r\n".utf8)
        pieces = [
            Array("This is a cryptographically signed message in MIME format.\r\n\r\n--\(boundary)\r\n".utf8),
            inner, signature,
        ]
    }

    static func newBoundary() -> String {
        // Seven digits from each random word: `SystemRandomNumberGenerator` asks the kernel once
        // per `next()`, and one system call per character was a visible part of signing
        // (BENCHMARKS.md). 62^7 is far below 2^64, so the digits stay as good as uniform.
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        var characters: [UInt8] = []
        characters.reserveCapacity(28)
        for _ in 0..<4 {
            var word = generator.next()
            for _ in 0..<7 {
                characters.append(digits[Int(word % UInt64(digits.count))])
                word /= UInt64(digits.count)
            }
        }
        return "----=_smime_" + String(decoding: characters, as: UTF8.self)
    }

    /// Whether `needle` occurs in `haystack`: glibc's `memchr` finds each candidate first octet
    /// many octets at a time, `memcmp` checks the rest (an octet-by-octet loop was a visible part
    /// of signing).
    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, haystack.count >= needle.count else { return false }
        return haystack.withUnsafeBufferPointer { haystack in
            needle.withUnsafeBufferPointer { needle in
                let base = haystack.baseAddress!
                let last = haystack.count - needle.count  // the last place the needle can start
                var index = 0
                while index <= last {
                    guard let found = memchr(base + index, Int32(first), last - index + 1) else { return false }
                    index = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                    if memcmp(base + index, needle.baseAddress!, needle.count) == 0 { return true }
                    index += 1
                }
                return false
            }
        }
    }
}
